"""The embedded "toy planet": a dry Held-Suarez atmosphere with seasons.

No real global reanalysis can be reached offline, so minigencast ships a small,
honest stand-in made by a real dynamical core: Google's `dinosaur` [1] integrating
the dry hydrostatic primitive equations in sigma coordinates with Held-Suarez
forcing [2] (Newtonian relaxation of temperature towards an equilibrium profile
T_eq, Rayleigh friction in the boundary layer), flat lower boundary.

Our additions to Held-Suarez (documented choices, all in `_ToyPlanetForcing`):

  T_eq = max(T_min, (p/p0)^kappa * (T_max - dT_y sin^2(phi)
                                    - dTh_z ln(p/p0) cos^2(phi)
                                    + eps(t) (1 + land) sin(phi)
                                    + A_day land c(sigma) cos(2 pi (d - 14/24))))

  * seasons: eps(t) = EPS_SEASON * cos(2 pi (y(t) - y_solstice)) with y the
    year progress of docs/design.md §1.5 (the model calendar is the Gregorian one, the
    year 365.24219 days long) and y_solstice = 171.5 / 365.24219 (21 June); the
    northern hemisphere's equilibrium is warmest at the June solstice. The
    sin(phi) term is Polvani & Kushner's asymmetric term [3] made periodic;
  * land: a smooth analytic land mask (`land_fraction`, three idealised
    continents) doubles the seasonal term and carries a boundary-layer diurnal
    cycle (A_day, peak at 14 h local solar time d = day progress, c(sigma) the
    Held-Suarez boundary-layer factor max(0, (sigma - 0.7)/0.3)), so that the
    day-progress forcings carry (small) signal and the static land-sea mask is
    not decorative;
  * the surface is flat: geopotential_at_surface is 0 everywhere.

Output (`simulate`): the spectral state is evaluated exactly on an equiangular
grid with poles (default 33 x 64, 5.625 deg), interpolated linearly in ln(p) to
pressure levels, every 12 h, in the canonical layout with GenCast's names:

  temperature, geopotential, u/v_component_of_wind  on levels  (default 250/500/850 hPa)
  2m_temperature            T of the lowest model level brought dry-adiabatically
                            to the surface: T_low (p_s / p_low)^kappa
  10m_u/v_component_of_wind 0.8 x the lowest-level (sigma ~ 0.96, ~350 m) wind,
                            a fixed log-law reduction
  mean_sea_level_pressure   = surface pressure (the surface is at sea level)
  geopotential_at_surface   0;  land_sea_mask  land_fraction(lat, lon) (static)

Geopotential is integrated hydrostatically from the surface (Phi_s = 0):
Phi_K = R T_K ln(1/sigma_K) at the lowest level and
Phi_k = Phi_{k+1} + R (T_k + T_{k+1})/2 ln(sigma_{k+1}/sigma_k) upwards.

Winds at the pole rows (where u = (u cos phi)/cos phi is undefined) are the
Cartesian mean of the adjacent ring's wind vector projected on each pole
longitude's local east/north frame.

`write_dataset` packs the splits as compressed int16 NetCDF with fixed, documented
scale factors (`PACKING`), computes the training split's normalisation statistics
in DeepMind's layout, and writes a sha256 manifest and a data card.

References:
  [1] Hoyer, Kochkov et al., dinosaur, github.com/google-research/dinosaur.
  [2] Held & Suarez 1994, BAMS 75, 1825-1830.
  [3] Polvani & Kushner 2002, GRL 29(7), 1114.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time as time_lib

import numpy as np
import xarray

from minigencast import data as data_lib
from minigencast import variables
from minigencast.data import downloads

log = logging.getLogger(__name__)

# Physical constants (dinosaur's SI values).
R_DRY = 287.0  # J kg-1 K-1
KAPPA = 2.0 / 7.0
P0 = 1e5  # Pa

EPS_SEASON = 15.0  # K, amplitude of the seasonal hemispheric asymmetry
A_DAY = 8.0  # K, boundary-layer diurnal amplitude of T_eq over land
Y_SOLSTICE = 171.5 / 365.24219
TEN_METRE_WIND_FACTOR = 0.8
YEAR_DAYS = 365.24219  # as DeepMind's data_utils year progress (docs/design.md §1.5)

# int16 packing: value = add_offset + scale_factor * stored (stored in [-32767, 32767]).
PACKING = {
    "temperature": (250.0, 0.01),
    "2m_temperature": (250.0, 0.01),
    "geopotential": (60000.0, 4.0),
    "u_component_of_wind": (0.0, 0.01),
    "v_component_of_wind": (0.0, 0.01),
    "10m_u_component_of_wind": (0.0, 0.01),
    "10m_v_component_of_wind": (0.0, 0.01),
    "mean_sea_level_pressure": (100000.0, 1.0),
}


@dataclasses.dataclass(frozen=True)
class ToyPlanetConfig:
    """What `simulate` integrates and writes.

    Attributes:
      years: simulated years written after spin-up (730.5 x 12 h steps per year).
      resolution: output grid spacing in degrees; 180/resolution + 1 latitudes incl.
        poles, 360/resolution longitudes from 0.
      levels: output pressure levels, hPa.
      seed: PRNG seed of the initial surface-pressure perturbation.
      spinup_days: days integrated (and discarded) before the first output.
      start: first output time (UTC); the model calendar is real dates.
      truncation: spectral truncation (T21: max total wavenumber 21).
      layers: equidistant sigma layers.
      dt_minutes: time step.
      num_steps: if given, overrides `years`: number of 12-hourly outputs.
    """

    years: float = 1.0
    resolution: float = 5.625
    levels: tuple[int, ...] = variables.TOY_PLANET_LEVELS
    seed: int = 0
    spinup_days: float = 200.0
    start: str = "2000-01-01T00:00"
    truncation: int = 21
    layers: int = 12
    dt_minutes: float = 20.0
    num_steps: int | None = None

    def output_steps(self) -> int:
        if self.num_steps is not None:
            return int(self.num_steps)
        return int(round(self.years * YEAR_DAYS * 2))


def land_fraction(lat_deg, lon_deg):
    """Idealised land fraction in [0, 1], analytic in (lat, lon): three smooth continents.

    Super-Gaussian bumps b_i = exp(-a^4 - b^4) (a, b: scaled distances in lat, lon):
    a north-south "America-like" band (0N, 285E, half-widths 60 x 22 deg), a wide
    "Eurasia" block (35N, 60E, 30 x 70) and an "Africa" (5S, 20E, 25 x 20); then
    land = clip(3 (b_1 + b_2 + b_3) - 1, 0, 1). The forcing uses this fraction on the
    model's Gaussian grid; the static `land_sea_mask` is it thresholded at 0.5.
    """
    lat = np.deg2rad(np.asarray(lat_deg, dtype=np.float64))
    lon = np.deg2rad(np.asarray(lon_deg, dtype=np.float64))

    def bump(lat0, lon0, half_lat, half_lon):
        dlon = np.angle(np.exp(1j * (lon - np.deg2rad(lon0))))
        a = (lat - np.deg2rad(lat0)) / np.deg2rad(half_lat)
        b = dlon / np.deg2rad(half_lon)
        return np.exp(-(a**4) - b**4)

    b = bump(0.0, 285.0, 60.0, 22.0) + bump(35.0, 60.0, 30.0, 70.0) + bump(-5.0, 20.0, 25.0, 20.0)
    return np.clip(3.0 * b - 1.0, 0.0, 1.0)


def land_sea_mask(lat_deg, lon_deg):
    """The static `land_sea_mask` field: 1 on land, 0 over sea. [lat, lon]."""
    lat2, lon2 = np.meshgrid(lat_deg, lon_deg, indexing="ij")
    return (land_fraction(lat2, lon2) >= 0.5).astype(np.float32)


def _phase_at(start: np.datetime64):
    """Year and day progress at `start` (float64, docs/design.md §1.5)."""
    seconds = (np.datetime64(start, "s") - np.datetime64("1970-01-01T00:00:00", "s")).astype(
        np.int64
    )
    year = np.mod(seconds / 86400.0 / YEAR_DAYS, 1.0)
    day = np.mod(seconds % 86400, 86400) / 86400.0
    return float(year), float(day)


def _make_forcing_class():
    from dinosaur import held_suarez, primitive_equations

    class _ToyPlanetForcing(held_suarez.HeldSuarezForcingSigma):
        """Held-Suarez forcing with a seasonal, land and diurnal term (module docstring)."""

        def __init__(self, coords, physics_specs, reference_temperature, year0, day0):
            super().__init__(coords, physics_specs, reference_temperature)
            lon, sin_lat = coords.horizontal.nodal_mesh
            self.lon = lon
            self.land = land_fraction(np.rad2deg(self.lat), np.rad2deg(lon))
            self.eps = physics_specs.nondimensionalize(EPS_SEASON * _units().degK)
            self.a_day = physics_specs.nondimensionalize(A_DAY * _units().degK)
            self.day = physics_specs.nondimensionalize(1.0 * _units().day)
            self.year0, self.day0 = year0, day0
            sigma = self.sigma[:, None, None]
            self.boundary = np.maximum(0.0, (sigma - self.sigma_b) / (1 - self.sigma_b))

        def equilibrium_temperature_at(self, nodal_surface_pressure, sim_time):
            import jax.numpy as jnp

            t_days = sim_time / self.day
            year = self.year0 + t_days / YEAR_DAYS
            day = self.day0 + t_days + np.rad2deg(self.lon) / 360.0
            season = self.eps * jnp.cos(2 * np.pi * (year - Y_SOLSTICE))
            diurnal = self.a_day * jnp.cos(2 * np.pi * (day - 14.0 / 24.0))
            p_over_p0 = self.sigma[:, None, None] * nodal_surface_pressure / self.p0
            t = p_over_p0**self.physics_specs.kappa * (
                self.maxT
                - self.dTy * np.sin(self.lat) ** 2
                - self.dThz * jnp.log(p_over_p0) * np.cos(self.lat) ** 2
                + season * (1.0 + self.land) * np.sin(self.lat)
                + diurnal * self.land * self.boundary
            )
            return jnp.maximum(self.minT, t)

        def explicit_terms(self, state):
            import jax.numpy as jnp

            aux = primitive_equations.compute_diagnostic_state_sigma(
                state=state, coords=self.coords
            )
            cos2 = self.coords.horizontal.cos_lat**2
            velocity = [-self.kv() * x / cos2 for x in aux.cos_lat_u]
            temperature = self.reference_temperature[:, None, None] + aux.temperature_variation
            ps = jnp.exp(self.coords.horizontal.to_nodal(state.log_surface_pressure))
            teq = self.equilibrium_temperature_at(ps, state.sim_time)
            t_tendency = -self.kt() * (temperature - teq)
            h = self.coords.horizontal
            v_modal = h.to_modal(velocity)
            return primitive_equations.State(
                vorticity=h.curl_cos_lat(v_modal),
                divergence=h.div_cos_lat(v_modal),
                temperature_variation=h.to_modal(t_tendency),
                log_surface_pressure=jnp.zeros_like(state.log_surface_pressure),
                sim_time=0.0,
            )

    return _ToyPlanetForcing


def _units():
    from dinosaur import scales

    return scales.units


def output_grid(resolution: float):
    """Equiangular grid with poles: (lat [n_lat] ascending, lon [n_lon] from 0), degrees."""
    n_lat = int(round(180.0 / resolution)) + 1
    n_lon = int(round(360.0 / resolution))
    lat = np.linspace(-90.0, 90.0, n_lat)
    lon = np.arange(n_lon) * (360.0 / n_lon)
    return lat, lon


def _interp_log_p(log_p_nodes, values, log_p_target):
    """Per-column linear interpolation in ln p with linear extrapolation.

    log_p_nodes, values: [node, ...] increasing along node; log_p_target: scalar.
    Returns [...].
    """
    n = log_p_nodes.shape[0]
    idx = np.sum(log_p_nodes < log_p_target, axis=0)  # first node >= target
    idx = np.clip(idx, 1, n - 1)
    x0 = np.take_along_axis(log_p_nodes, idx[None] - 1, 0)[0]
    x1 = np.take_along_axis(log_p_nodes, idx[None], 0)[0]
    y0 = np.take_along_axis(values, idx[None] - 1, 0)[0]
    y1 = np.take_along_axis(values, idx[None], 0)[0]
    w = (log_p_target - x0) / (x1 - x0)
    return y0 + w * (y1 - y0)


def _pole_winds(u, v, lat, lon):
    """Replace the pole rows of u, v [..., lat, lon] by the adjacent ring's mean vector."""
    lam = np.deg2rad(lon)
    for row, ring, sign in ((0, 1, -1.0), (-1, -2, 1.0)):
        phi = np.deg2rad(lat[ring])
        ur, vr = u[..., ring, :], v[..., ring, :]
        # Cartesian components of the ring's wind vectors, averaged around the ring.
        x = (-np.sin(lam) * ur - np.sin(phi) * np.cos(lam) * vr).mean(-1, keepdims=True)
        y = (np.cos(lam) * ur - np.sin(phi) * np.sin(lam) * vr).mean(-1, keepdims=True)
        # Local frame at the pole (phi = sign * 90): east = (-sin l, cos l, 0),
        # north = (-sign cos l, -sign sin l, 0).
        u[..., row, :] = -np.sin(lam) * x + np.cos(lam) * y
        v[..., row, :] = -sign * (np.cos(lam) * x + np.sin(lam) * y)
    return u, v


def simulate(config: ToyPlanetConfig = ToyPlanetConfig(), progress: bool = True) -> xarray.Dataset:
    """Integrate the toy planet and return the canonical dataset (in memory, float32).

    Returns a Dataset with dims (time, level, lat, lon), 12-hourly `time` from
    `config.start`, GenCast variable names (module docstring) and static
    `geopotential_at_surface`, `land_sea_mask`.
    """
    import jax

    # dinosaur relies on implicit rank promotion; our tests make it an error.
    with jax.numpy_rank_promotion("allow"):
        return _simulate(config, progress)


def _simulate(config: ToyPlanetConfig, progress: bool) -> xarray.Dataset:
    import jax
    from dinosaur import (
        coordinate_systems,
        primitive_equations,
        primitive_equations_states,
        sigma_coordinates,
        spherical_harmonic,
        time_integration,
        xarray_utils,
    )

    units = _units()
    t_start = time_lib.time()
    grid = spherical_harmonic.Grid.with_wavenumbers(config.truncation + 1, latitude_spacing="gauss")
    coords = coordinate_systems.CoordinateSystem(
        horizontal=grid,
        vertical=sigma_coordinates.SigmaCoordinates.equidistant(config.layers),
    )
    specs = primitive_equations.PrimitiveEquationsSpecs.from_si()
    init_fn, aux = primitive_equations_states.isothermal_rest_atmosphere(
        coords, specs, p0=P0 * units.pascal, p1=5e3 * units.pascal
    )
    ref_temps = aux[xarray_utils.REF_TEMP_KEY]
    orography = primitive_equations.truncated_modal_orography(aux[xarray_utils.OROGRAPHY], coords)
    state = init_fn(rng_key=jax.random.PRNGKey(config.seed))

    start = np.datetime64(config.start, "s")
    sim_start = start - np.timedelta64(int(round(config.spinup_days * 86400)), "s")
    year0, day0 = _phase_at(sim_start)
    state = dataclasses.replace(state, sim_time=0.0)

    forcing = _make_forcing_class()(coords, specs, ref_temps, year0, day0)
    dynamics = primitive_equations.PrimitiveEquations(ref_temps, orography, coords, specs)
    equation = time_integration.compose_equations([dynamics, forcing])
    dt = specs.nondimensionalize(config.dt_minutes * units.minute)
    step = time_integration.imex_rk_sil3(equation, dt)
    step = time_integration.step_with_filters(
        step, [time_integration.exponential_step_filter(grid, dt)]
    )
    inner = int(round(12 * 60 / config.dt_minutes))
    spinup_steps = int(round(config.spinup_days * 24 * 60 / config.dt_minutes))

    # Spin-up in chunks of ~10 days (one compiled function), remainder step by step.
    chunk = inner * 20
    run_chunk = jax.jit(time_integration.repeated(step, chunk))
    run_one = jax.jit(step)
    done = 0
    while done + chunk <= spinup_steps:
        state = run_chunk(state)
        done += chunk
    while done < spinup_steps:
        state = run_one(state)
        done += 1
    log.info("spin-up %.0f days done in %.1f s", config.spinup_days, time_lib.time() - t_start)

    n_out = config.output_steps()
    block = 60  # outputs per compiled trajectory call (30 days)
    traj_fn = {}
    frames = []
    iterator = range(0, n_out, block)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="toy planet", unit="block of 30 d")
    for b in iterator:
        n = min(block, n_out - b)
        if n not in traj_fn:
            traj_fn[n] = jax.jit(
                time_integration.trajectory_from_step(step, n, inner, start_with_input=True)
            )
        state, traj = traj_fn[n](state)
        frames.append(jax.tree.map(np.asarray, traj))
    traj = jax.tree.map(lambda *x: np.concatenate(x, 0), *frames)
    log.info("integration done in %.1f s", time_lib.time() - t_start)

    lat, lon = output_grid(config.resolution)
    out_grid = spherical_harmonic.Grid(
        longitude_wavenumbers=grid.longitude_wavenumbers,
        total_wavenumbers=grid.total_wavenumbers,
        longitude_nodes=len(lon),
        latitude_nodes=len(lat),
        latitude_spacing="equiangular_with_poles",
    )
    ds = _diagnose(traj, out_grid, coords, specs, ref_temps, lat, lon, config)
    times = start + np.arange(n_out) * np.timedelta64(12, "h")
    ds = ds.assign_coords(time=("time", times.astype("datetime64[ns]")))
    ds.attrs.update(
        title="minigencast toy planet (dry Held-Suarez with seasons, dinosaur)",
        source=f"dinosaur {_dinosaur_version()}, T{config.truncation} L{config.layers}, "
        f"dt {config.dt_minutes} min, spin-up {config.spinup_days} d, seed {config.seed}",
        Conventions="CF-1.8",
        spectral_truncation=np.int32(config.truncation),
    )
    log.info("toy planet done in %.1f s", time_lib.time() - t_start)
    return ds


def spectral_truncation(ds: xarray.Dataset) -> int | None:
    """The triangular truncation T of a toy-planet dataset (its fields hold l <= T), or None.

    Read from the `spectral_truncation` attribute, or, for files written before that
    attribute existed (the embedded year), from "T<n>" in the dinosaur `source`
    attribute. The `cpu` preset's noise is band-limited to it
    (`config.NoiseConfig.spherical_truncation`).
    """
    if "spectral_truncation" in ds.attrs:
        return int(ds.attrs["spectral_truncation"])
    match = re.match(r"dinosaur \S+, T(\d+) ", str(ds.attrs.get("source", "")))
    return int(match.group(1)) if match else None


def _dinosaur_version():
    import dinosaur

    return getattr(dinosaur, "__version__", "unknown")


def _diagnose(traj, out_grid, coords, specs, ref_temps, lat, lon, config):
    """Modal trajectory -> canonical physical fields on the output grid (NumPy)."""
    import jax
    from dinosaur import spherical_harmonic

    units = _units()
    sigma = np.asarray(coords.vertical.centers)  # [layers], top -> bottom

    @jax.jit
    def fields(vor, div, tvar, lsp):
        u_cos, v_cos = spherical_harmonic.get_cos_lat_vector(vor, div, out_grid)
        return (
            out_grid.to_nodal(u_cos),
            out_grid.to_nodal(v_cos),
            out_grid.to_nodal(tvar),
            out_grid.to_nodal(lsp),
        )

    u_cos, v_cos, tvar, lsp = (
        np.swapaxes(np.asarray(a), -1, -2)
        for a in fields(
            traj.vorticity, traj.divergence, traj.temperature_variation, traj.log_surface_pressure
        )
    )
    cos_lat = np.cos(np.deg2rad(lat))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(cos_lat > 1e-6, u_cos / cos_lat, 0.0)
        v = np.where(cos_lat > 1e-6, v_cos / cos_lat, 0.0)
    u, v = _pole_winds(u, v, lat, lon)
    # Dimensionalise. Velocity scale: radius / time.
    vel = specs.dimensionalize(1.0, units.meter / units.second).magnitude
    u, v = u * vel, v * vel
    temp = (np.asarray(ref_temps)[None, :, None, None] + tvar) * specs.dimensionalize(
        1.0, units.degK
    ).magnitude  # [time, layer, lat, lon]
    ps = np.exp(lsp[:, 0]) * specs.dimensionalize(1.0, units.pascal).magnitude  # [time, lat, lon]

    # Hydrostatic geopotential at layer centres (Phi_s = 0).
    phi = np.empty_like(temp)
    phi[:, -1] = R_DRY * temp[:, -1] * np.log(1.0 / sigma[-1])
    for k in range(len(sigma) - 2, -1, -1):
        phi[:, k] = phi[:, k + 1] + R_DRY * 0.5 * (temp[:, k] + temp[:, k + 1]) * np.log(
            sigma[k + 1] / sigma[k]
        )
    t_surface = temp[:, -1] * (1.0 / sigma[-1]) ** KAPPA

    # Columns including the surface as the lowest node, in increasing ln p.
    log_p = np.log(sigma[None, :, None, None] * ps[:, None])  # [time, layer, lat, lon]
    log_p_all = np.concatenate([log_p, np.log(ps)[:, None]], 1)
    t_all = np.concatenate([temp, t_surface[:, None]], 1)
    phi_all = np.concatenate([phi, np.zeros_like(ps)[:, None]], 1)
    u_all = np.concatenate([u, u[:, -1:]], 1)
    v_all = np.concatenate([v, v[:, -1:]], 1)

    def on_levels(values):
        out = [
            _interp_log_p(
                np.moveaxis(log_p_all, 1, 0), np.moveaxis(values, 1, 0), np.log(p * 100.0)
            )
            for p in config.levels
        ]
        return np.stack(out, 1).astype(np.float32)  # [time, level, lat, lon]

    dims3 = ("time", "level", "lat", "lon")
    dims2 = ("time", "lat", "lon")
    data = {
        "temperature": (dims3, on_levels(t_all)),
        "geopotential": (dims3, on_levels(phi_all)),
        "u_component_of_wind": (dims3, on_levels(u_all)),
        "v_component_of_wind": (dims3, on_levels(v_all)),
        "2m_temperature": (dims2, t_surface.astype(np.float32)),
        "mean_sea_level_pressure": (dims2, ps.astype(np.float32)),
        "10m_u_component_of_wind": (dims2, (TEN_METRE_WIND_FACTOR * u[:, -1]).astype(np.float32)),
        "10m_v_component_of_wind": (dims2, (TEN_METRE_WIND_FACTOR * v[:, -1]).astype(np.float32)),
        "geopotential_at_surface": (("lat", "lon"), np.zeros((len(lat), len(lon)), np.float32)),
        "land_sea_mask": (("lat", "lon"), land_sea_mask(lat, lon)),
    }
    coords_ = {
        "level": ("level", np.asarray(config.levels, dtype=np.int64)),
        "lat": ("lat", lat.astype(np.float32)),
        "lon": ("lon", lon.astype(np.float32)),
    }
    ds = xarray.Dataset(data, coords=coords_)
    return variables.add_cf_attrs(ds)


# --------------------------------------------------------------------------- writing
SPLITS = data_lib.SPLITS  # the file names `load_embedded(split)` reads
# Fractions of the output period, in time order (1 year: Jan-Aug, Sep-Oct, Nov-Dec).
SPLIT_FRACTIONS = (8 / 12, 2 / 12, 2 / 12)
MANIFEST = "MANIFEST.sha256"
DATACARD = "DATACARD.md"


def split_by_time(ds: xarray.Dataset) -> dict[str, xarray.Dataset]:
    """Contiguous train / validation / test pieces in time order (SPLIT_FRACTIONS)."""
    n = ds.sizes["time"]
    edges = np.round(np.cumsum((0.0,) + SPLIT_FRACTIONS) * n).astype(int)
    if np.any(np.diff(edges) < 3):
        raise ValueError(
            f"{n} time steps are too few for three splits of >= 3 steps each "
            "(one window). Fix: ask for at least 18 steps (--num_steps 18 or more)."
        )
    return {
        name: ds.isel(time=slice(int(edges[i]), int(edges[i + 1]))) for i, name in enumerate(SPLITS)
    }


def encoding(ds: xarray.Dataset) -> dict:
    """int16 packing with fixed scale factors (PACKING) and zlib level 9."""
    enc = {}
    for name in ds.data_vars:
        if name in PACKING:
            offset, scale = PACKING[name]
            enc[name] = dict(
                dtype="int16",
                add_offset=offset,
                scale_factor=scale,
                _FillValue=-32768,
                zlib=True,
                complevel=9,
                shuffle=True,
            )
        else:
            enc[name] = dict(zlib=True, complevel=9)
    return enc


def write_manifest(directory) -> str:
    """sha256 of every file below `directory` (except the manifest), `sha256sum -c` format."""
    lines = []
    for root, _, files in sorted(os.walk(directory)):
        for f in sorted(files):
            path = os.path.join(root, f)
            rel = os.path.relpath(path, directory)
            if rel == MANIFEST:
                continue
            lines.append(f"{downloads.sha256sum(path)}  {rel}")
    out = os.path.join(directory, MANIFEST)
    with open(out, "w") as fh:
        fh.write("\n".join(sorted(lines, key=lambda x: x.split("  ")[1])) + "\n")
    return out


def verify_manifest(directory) -> list[str]:
    """Return the files whose sha256 differs from the manifest (empty: all good)."""
    bad = []
    with open(os.path.join(directory, MANIFEST)) as fh:
        for line in fh:
            digest, rel = line.rstrip("\n").split("  ", 1)
            path = os.path.join(directory, rel)
            if not os.path.exists(path) or downloads.sha256sum(path) != digest:
                bad.append(rel)
    return bad


def command_line(config: ToyPlanetConfig, out_dir: str) -> str:
    levels = ",".join(str(x) for x in config.levels)
    cmd = (
        f"minigencast data toy-planet --out {out_dir} --years {config.years:g} "
        f"--resolution {config.resolution:g} --levels {levels} --seed {config.seed} "
        f"--spinup_days {config.spinup_days:g}"
    )
    if config.num_steps is not None:
        cmd += f" --num_steps {config.num_steps}"
    return cmd


def write_dataset(ds: xarray.Dataset, out_dir: str, config: ToyPlanetConfig) -> list[str]:
    """Write splits, training statistics, data card and manifest; return the paths."""
    from minigencast import normalization

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    pieces = split_by_time(ds)
    for name, piece in pieces.items():
        path = os.path.join(out_dir, f"{name}.nc")
        piece.to_netcdf(path, encoding=encoding(piece))
        paths.append(path)
    # Statistics of the training split as stored (i.e. after int16 packing).
    train = xarray.load_dataset(os.path.join(out_dir, "train.nc"))
    paths += normalization.write_stats(
        normalization.compute_stats(train), os.path.join(out_dir, "stats")
    )
    card = os.path.join(out_dir, DATACARD)
    with open(card, "w") as fh:
        fh.write(datacard(pieces, config, out_dir))
    paths.append(card)
    paths.append(write_manifest(out_dir))
    return paths


def generate(
    out_dir: str = "data/toy_planet",
    *,
    years: float = 1.0,
    resolution: float = 5.625,
    levels=variables.TOY_PLANET_LEVELS,
    seed: int = 0,
    spinup_days: float = 200.0,
    num_steps: int | None = None,
    progress: bool = True,
) -> list[str]:
    """Simulate the toy planet and write it (the API twin of `minigencast data toy-planet`)."""
    config = ToyPlanetConfig(
        years=years,
        resolution=resolution,
        levels=tuple(int(x) for x in levels),
        seed=seed,
        spinup_days=spinup_days,
        num_steps=num_steps,
    )
    ds = simulate(config, progress=progress)
    return write_dataset(ds, out_dir, config)


def datacard(pieces, config: ToyPlanetConfig, out_dir: str) -> str:
    rows = "\n".join(
        f"| {name} | {str(p.time.values[0])[:16]} | {str(p.time.values[-1])[:16]} "
        f"| {p.sizes['time']} |"
        for name, p in pieces.items()
    )
    first = next(iter(pieces.values()))
    grid = f"{first.sizes['lat']} x {first.sizes['lon']}"
    return DATACARD_TEMPLATE.format(
        command=command_line(config, out_dir),
        rows=rows,
        grid=grid,
        resolution=config.resolution,
        levels=", ".join(str(x) for x in config.levels),
        config=config,
        eps=EPS_SEASON,
        a_day=A_DAY,
        dinosaur=_dinosaur_version(),
    )


DATACARD_TEMPLATE = """# Data card: the minigencast toy planet

A small, honest stand-in for a global reanalysis, made offline by a real dynamical
core. **It is not Earth and not ERA5.**

## How it was made

    {command}

Python API twin: `minigencast.data.toy_planet.generate(...)`. Code:
`minigencast/data/toy_planet.py` (all formulas in its docstring).

- Model: `dinosaur` {dinosaur} (Google's JAX spectral dynamical core), dry hydrostatic
  primitive equations in sigma coordinates, T{config.truncation} spectral truncation,
  {config.layers} equidistant sigma layers, {config.dt_minutes:g}-minute IMEX RK (SIL3) step
  with dinosaur's exponential spectral filter, flat surface (geopotential_at_surface = 0).
- Forcing: Held & Suarez (1994) relaxation and boundary-layer friction, plus our choices:
  a seasonal hemispheric asymmetry eps(t) sin(lat) in the equilibrium temperature,
  eps = {eps:g} K x cos(2 pi (year_progress - June solstice)), doubled over land; and a
  boundary-layer diurnal cycle of {a_day:g} K over land peaking at 14 h local solar time.
  The land mask is analytic and idealised (three smooth continents).
- Start: isothermal rest atmosphere with a seeded surface-pressure bump (seed {config.seed}),
  {config.spinup_days:g} days of spin-up discarded, then 12-hourly output from {config.start}.
- Output: spectral fields evaluated exactly on a {grid} equiangular grid with poles
  ({resolution:g} deg), interpolated linearly in ln p to {levels} hPa. 2 m temperature =
  lowest-level temperature brought dry-adiabatically to the surface; 10 m wind = 0.8 x
  lowest-level wind; mean sea-level pressure = surface pressure (flat surface).
- Storage: NetCDF-4, int16 with fixed scale factors (0.01 K, 0.01 m/s, 4 m2/s2, 1 Pa), zlib 9.
- Statistics in `stats/`: DeepMind's four files computed from the training split
  (`minigencast.normalization.compute_stats`). Integrity: `MANIFEST.sha256`
  (`sha256sum -c MANIFEST.sha256` in this folder).

## Splits (contiguous in time)

| split | first time | last time | 12 h steps |
|---|---|---|---|
{rows}

## Variables

temperature, geopotential, u_component_of_wind, v_component_of_wind on levels;
2m_temperature, mean_sea_level_pressure, 10m_u/v_component_of_wind; static
geopotential_at_surface (zero), land_sea_mask. The task is
`minigencast.config.TOY_PLANET_TASK` (16 target channels). Absent, because a dry
Held-Suarez planet has none: humidity, vertical velocity, precipitation, SST.

## Good for

- Running and testing the whole GenCast pipeline offline, on a laptop: data layer,
  statistics, training, sampling, ensembles, verification (CRPS, spread/skill).
- Seeing a diffusion model learn real, chaotic, baroclinic dynamics (mid-latitude jets
  near 30 m/s, travelling eddies, a seasonal cycle) at a size that trains on a CPU.

## Not good for

- Any statement about Earth's weather or about GenCast's published skill.
- Moist processes, precipitation, SST, orography, the stratosphere (the model top is
  coarse), small scales (T21 is ~600 km), the diurnal cycle (tiny and aliased at 12 h).
- Climate statistics: one year; the splits differ by season (train Jan-Aug, test Nov-Dec),
  so validation/test scores include a seasonal shift.
"""
