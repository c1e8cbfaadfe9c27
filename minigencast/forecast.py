"""Autoregressive ensemble forecasts: one 12 h step = one conditional sample.

A forecast from two analyses (t - 12 h, t) repeats (docs/design.md §8):

  inputs  = normalise(frames t-12h, t) + forcings + static           (arrays.py)
  r       ~ GenCast(. | inputs, forcings at t + 12 h)                (sampler.py, 39 calls)
  frame   = r * diffs_std + frame_t  (residual variables), r * std + mean (others)
  output  = frame with SST set back to NaN where the input SST was NaN
  frames  = (frame_t, frame with SST NaNs filled)   -- fed back; precipitation
            and other target-only variables never become inputs

Compiling once: steps are run by a `lax.scan` over chunks of `chunk_steps` steps,
jitted once (with every member `vmap`ped); a Python loop over chunks pulls each
chunk to the host and hands it to a writer, so memory does not grow with the
number of steps and a 15-day (30-step) forecast uses the same program as a 1-day
one. The last chunk is padded (its extra steps are computed and discarded).
Forcings of all future steps are computed up front (they are functions of time
and longitude only).

Ensembles: member i of the forecast from init time t uses key
fold_in(fold_in(key(seed), i), minutes since 1970 of t), split at every step into
(carry, this_step): the first N members are identical for any ensemble size, and
each init draws its own noise, whatever other inits are run with it.
Noise: every field the sampler draws comes from a noise source (`noise.py`), bound
to each (member, init, step): by default fresh spherical noise from the key; a
`noise.RecordedNoise` replays recorded fields (`docs/parity.md`).
With several devices (and a member count divisible by them) members are sharded
over a one-axis device mesh ("sample"); otherwise the same code runs on one device.
The mesh spans the devices of all processes of a multi-process run (multihost.py):
each process computes its members, they are gathered chunk by chunk, and process 0
writes the file.

Output: an xarray Dataset (or a NetCDF/zarr file written chunk by chunk, see
`ForecastWriter`) with dims (sample, init_time, lead_time, [level,] lat, lon), a
`valid_time` coordinate = init_time + lead_time, and CF attributes.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import xarray
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from minigencast import (
    arrays,
    channel_order,
    memory,
    multihost,
    network,
    noise,
    preconditioning,
    sampler,
    spectral_filter,
    spread_correction,
)
from minigencast.data import layouts

STEP = np.timedelta64(12, "h")
SAMPLE_AXIS = "sample"


# ----------------------------------------------------------------------------- one step
def forecast_step(params, structure, cfg, layout, static, frames, forcings, key, noise_fn):
    """One 12 h step for one member: the next physical frame [lat, lon, C_t].

    Args:
      frames: [T_in, lat, lon, C_t] physical input frames (NaN-filled), oldest first.
      forcings: [T_in + 1, lat, lon, C_f] normalised forcings (input times, then target);
        [T_in + 1, 1, lon, C_f] (the same at every latitude) is broadcast here.
      static: [lat, lon, C_s] normalised static fields.
      noise_fn: noise_fn(key, template [lat, lon, C_t]) -> unit noise (spherical), or
        a noise source bound to this member, init and step (`noise.py`).
    """
    lat_lon = frames.shape[1:-1]
    forcings = jnp.broadcast_to(forcings, forcings.shape[:1] + lat_lon + forcings.shape[-1:])
    inputs = arrays.build_inputs(jnp, frames, forcings[:-1], static, layout)

    def raw_fn(scaled_noisy_targets, sigma):
        return network.raw_denoiser(
            params, structure, cfg, inputs, forcings[-1], scaled_noisy_targets, sigma
        )

    template = jnp.zeros(frames.shape[1:], jnp.float32)
    residual = sampler.sample(
        preconditioning.make_denoise_fn(raw_fn), key, template, cfg.sampler_config, noise_fn
    )
    return arrays.from_residual(jnp, residual, frames[-1], layout)


def _rollout_chunk(
    params,
    structure,
    layout,
    static,
    frames,
    keys,
    forcing_windows,
    nan_mask,
    noise_fn,
    address,
    spectral=None,
    *,
    cfg,
):
    """`lax.scan` of `forecast_step` over a chunk, `vmap`ped over (init, member) pairs.

    Args:
      frames: [P, T_in, lat, lon, C_t] (P pairs of an init time and a member); keys: [P].
      forcing_windows: [P, K, T_in + 1, lat, lon, C_f] forcings of each step of the chunk.
      nan_mask: [P, lat, lon, C_t] bool, where outputs are NaN (SST over land).
      noise_fn: a noise source (`noise.as_source`), bound here to each
        (member, init, step) of `address` = (members [P], inits [P], steps [K]) int32.
      spectral: `spectral_filter.Filter` on every output frame (not the fed-back one), or None.
    Returns:
      (frames [P, T_in, ...], keys [P], outputs [P, K, lat, lon, C_t]).
    """
    members, inits, steps = address

    def pair(frames, key, forcing_windows, nan_mask, member_index, init_index):
        def body(carry, xs):
            forcings, step_index = xs
            frames, key = carry
            key, step_key = jax.random.split(key)
            step_noise = noise_fn.bind(member_index, init_index, step_index)
            frame = forecast_step(
                params, structure, cfg, layout, static, frames, forcings, step_key, step_noise
            )
            fed = jnp.where(nan_mask, arrays.per_channel(jnp.asarray(layout.fill), frame), frame)
            frames = jnp.concatenate([frames[1:], fed[None]], axis=0)
            if spectral is not None:  # on what is written, not on what is fed back
                frame = spectral_filter.apply(spectral, frame, step_index)
            return (frames, key), jnp.where(nan_mask, jnp.nan, frame)

        (frames, key), outputs = jax.lax.scan(body, (frames, key), (forcing_windows, steps))
        return frames, key, outputs

    return jax.vmap(pair)(frames, keys, forcing_windows, nan_mask, members, inits)


# Compiled once per (cfg, shapes); the layout and structure enter as data.
# noise_fn (noise.make_spherical_noise_fn) is a pytree carrying its basis: data too.
rollout_chunk = jax.jit(_rollout_chunk, static_argnames=("cfg",))


def member_keys(seed: int, num_members: int, init_times=None):
    """Keys of members i = 0..S-1: member i is the same for any ensemble size.

    Without `init_times`: [S] keys fold_in(key(seed), i). With `init_times` [I]
    (datetime64): [I, S] keys fold_in(fold_in(key(seed), i), init_minutes(t)), so each
    init draws its own noise (as DeepMind draws over every non-spatial dimension,
    batch included) and adding or removing inits changes no other forecast.
    """
    base = jax.random.key(seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_members))
    if init_times is None:
        return keys
    minutes = jnp.asarray(init_minutes(init_times))
    return jax.vmap(lambda m: jax.vmap(lambda k: jax.random.fold_in(k, m))(keys))(minutes)


def init_minutes(init_times) -> np.ndarray:
    """[I] uint32 minutes since 1970-01-01 of each init time, modulo 2^32 (8,000 years)."""
    minutes = np.asarray(init_times, "datetime64[m]").astype(np.int64)
    return (minutes % 2**32).astype(np.uint32)


def sample_mesh(num_members: int) -> Mesh | None:
    """A device mesh over members, or None with one device / indivisible members."""
    devices = jax.devices()
    if len(devices) > 1 and num_members % len(devices) == 0:
        return Mesh(np.asarray(devices), (SAMPLE_AXIS,))
    return None


def rollout(
    params,
    structure,
    cfg,
    layout,
    static,
    init_frames,
    forcings,
    num_steps,
    num_members,
    noise_fn,
    seed=0,
    chunk_steps=4,
    init_times=None,
    members_per_batch=None,
    spectral=None,
):
    """Yields (first_step, outputs [I, S, k, lat, lon, C_t] NumPy) chunk by chunk.

    Args:
      init_frames: [I, T_in, lat, lon, C_t] physical input frames of I init times (may
        hold SST NaNs).
      forcings: [I, T_in + num_steps, lat, lon, C_f] normalised forcings of every time
        from the first input frame to the last lead time; lat may be 1 (the progress
        features: the host and the device then hold no copy per latitude).
      num_steps: 12 h steps; num_members: ensemble size S.
      noise_fn: noise_fn(key, template) or a noise source (`noise.py`), bound to each
        (member, init index, step).
      chunk_steps: steps per compiled chunk (memory ~ chunk_steps, not num_steps).
      init_times: [I] datetime64 of the inits, folded into the member keys
        (`member_keys`); None gives member i the same key at every init.
      members_per_batch: how many (init, member) pairs run together (default all
        I S); the pairs run in groups of this size, the last padded by repeating its
        last pair: one compiled program, memory ~ members_per_batch.
      spectral: a `spectral_filter.Filter` on every output frame (the rollout itself feeds
        back the unfiltered frames), or None.
    """
    t_in = layout.num_input_times
    chunk_steps = min(chunk_steps, num_steps)  # a short forecast computes no padding steps
    init_frames = np.asarray(init_frames, np.float32)
    n_init = init_frames.shape[0]
    if forcings.shape[:2] != (n_init, t_in + num_steps):
        raise ValueError(f"forcings are {forcings.shape[:2]}, need ({n_init}, {t_in + num_steps})")
    nan_mask = np.any(np.isnan(init_frames), axis=1) & arrays.per_channel(
        np.asarray(layout.nan_fillable), init_frames[:, 0]
    )
    frames = arrays.fill_nans(np, init_frames, layout)
    if init_times is not None and len(init_times) != n_init:
        raise ValueError(f"{len(init_times)} init times for {n_init} sets of input frames")
    keys = member_keys(seed, num_members, init_times)
    if init_times is None:
        keys = jnp.broadcast_to(keys, (n_init,) + keys.shape)
    key_bits = np.asarray(jax.random.key_data(keys))  # [I, S, ...] on the host
    noise_source = noise.as_source(noise_fn)
    # Pair p = (init p // S, member p % S); groups of m pairs, the last one padded.
    num_pairs = n_init * num_members
    m = min(members_per_batch or num_pairs, num_pairs)
    num_groups = -(-num_pairs // m)
    pair_index = np.minimum(np.arange(num_groups * m), num_pairs - 1).reshape(num_groups, m)
    pair_init = (pair_index // num_members).astype(np.int32)
    pair_member = (pair_index % num_members).astype(np.int32)
    # Each call gets its carry placed (and committed) exactly as the chunk function returns
    # it, so every chunk call has the same signature: one compilation.
    mesh = sample_mesh(m)
    if mesh is not None:
        sharding = NamedSharding(mesh, PartitionSpec(SAMPLE_AXIS))
    else:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    # Keys travel as their bits: a host array may be placed on devices of every process.
    def place(frames, key_bits):
        return jax.device_put(frames, sharding), jax.device_put(key_bits, sharding)

    def park(frames, key_bits):
        """Between its calls a group's carry waits on the host, so the device holds one
        group's, not every pair's T_in frames (0.7 GB a pair at 0.25 deg); a carry
        spread over several processes stays where it is."""
        if num_groups == 1 or not frames.is_fully_addressable:
            return frames, key_bits
        return np.array(frames), np.array(key_bits)  # copies: a CPU view would pin it

    carries = [(frames[i], key_bits[i, s]) for i, s in zip(pair_init, pair_member, strict=True)]
    for start in range(0, num_steps, chunk_steps):
        win = forcing_windows(forcings, start, chunk_steps, t_in)
        k = min(chunk_steps, num_steps - start)
        steps = np.arange(start, start + chunk_steps, dtype=np.int32)
        outputs = None
        for g, (i, s) in enumerate(zip(pair_init, pair_member, strict=True)):
            g_frames, g_bits = place(*carries[g])
            g_frames, g_keys, out = rollout_chunk(
                params,
                structure,
                layout,
                static,
                g_frames,
                jax.random.wrap_key_data(g_bits),
                win[i],
                nan_mask[i],
                noise_source,
                (s, i, steps),
                spectral,
                cfg=cfg,
            )
            carries[g] = park(g_frames, jax.random.key_data(g_keys))
            out = multihost.gather(out)[:, :k]
            if num_groups == 1:  # the host holds the chunk once, not also a copy of it
                outputs = out
            else:
                if outputs is None:
                    outputs = np.empty((num_groups * m,) + out.shape[1:], np.float32)
                outputs[g * m : (g + 1) * m] = out
        chunk = outputs[:num_pairs].reshape((n_init, num_members) + outputs.shape[1:])
        outputs = out = None  # the caller holds the chunk alone: it can free it
        yield start, chunk
        chunk = None  # freed before the next chunk is computed


def forcing_windows(forcings, start: int, chunk_steps: int, t_in: int) -> np.ndarray:
    """[I, chunk_steps, T_in + 1, ...] forcings of steps start.. of a chunk: step j uses
    forcings[:, j : j + T_in + 1], the last time repeated past the end (padding steps).

    Only the windows are allocated: a broadcast `forcings` (the progress features are the
    same at every latitude) stays a view, not [I, T_in + num_steps, lat, lon, C_f].
    """
    times = np.arange(start, start + chunk_steps)[:, None] + np.arange(t_in + 1)[None]
    return forcings[:, np.minimum(times, forcings.shape[1] - 1)]


# ----------------------------------------------------------------------------- datasets
def variable_blocks(task):
    """[(variable, channel slice, levels or None)] of the target channels: each variable's
    channels are contiguous (`channel_order.target_channels` sorts by variable), so a
    block of an array is a view, not a copy."""
    channels = channel_order.target_channels(task)
    out = []
    for name in dict.fromkeys(c.variable for c in channels):
        idx = [i for i, c in enumerate(channels) if c.variable == name]
        levels = [channels[i].level for i in idx]
        out.append((name, slice(idx[0], idx[-1] + 1), None if levels == [None] else levels))
    return out


def chunk_to_dataset(outputs, task, init_times, lead_times, lat, lon, attrs=None):
    """[I, S, K, lat, lon, C_t] -> Dataset (sample, init_time, lead_time, [level,] lat, lon).

    `outputs` may be a dask array: the Dataset is then lazy (`forecast_template`).
    """
    import dask.array

    if not isinstance(outputs, dask.array.Array):
        outputs = np.asarray(outputs)
    outputs = np.moveaxis(outputs, 0, 1)  # [S, I, K, lat, lon, C_t]
    data = {}
    for name, channels, levels in variable_blocks(task):
        block = outputs[..., channels]  # [S, I, K, lat, lon, n], a view
        if levels is None:
            values, dims = block[..., 0], ("lat", "lon")
        else:
            values, dims = np.moveaxis(block, -1, 3), ("level", "lat", "lon")
        da = xarray.DataArray(values, dims=("sample", "init_time", "lead_time") + dims)
        data[name] = da.assign_attrs((attrs or {}).get(name, {}))
    levels = [c.level for c in channel_order.target_channels(task) if c.level is not None]
    coords = {
        "sample": np.arange(outputs.shape[0]),
        "init_time": np.asarray(init_times, "datetime64[ns]"),
        "lead_time": np.asarray(lead_times, "timedelta64[ns]"),
        "lat": np.asarray(lat),
        "lon": np.asarray(lon),
    }
    if levels:
        coords["level"] = np.asarray(sorted(set(levels), key=levels.index))
    ds = xarray.Dataset(data, coords=coords)
    return add_cf_attributes(ds)


def forecast_template(shape, task, init_times, lead_times, lat, lon, attrs=None):
    """The whole forecast's Dataset, [I, S, N, lat, lon, C_t] = `shape`, for
    `ForecastWriter`: coordinates and attributes, values lazy zeros that are never
    computed, so a 15-day 0.25 deg ensemble (tens of GB) costs no host memory."""
    import dask.array

    zeros = dask.array.zeros(shape, dtype=np.float32, chunks=-1)  # one chunk, never computed
    return chunk_to_dataset(zeros, task, init_times, lead_times, lat, lon, attrs)


def add_cf_attributes(ds: xarray.Dataset) -> xarray.Dataset:
    """CF-1.8 attributes on the forecast layout and the valid_time coordinate."""
    ds = ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])
    meta = {
        "lat": {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
        "lon": {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
        "level": {"standard_name": "air_pressure", "units": "hPa", "positive": "down", "axis": "Z"},
        "sample": {"long_name": "ensemble member", "standard_name": "realization"},
        "init_time": {"standard_name": "forecast_reference_time"},
        "lead_time": {"standard_name": "forecast_period"},
        "valid_time": {"standard_name": "time"},
    }
    for name, attrs in meta.items():
        if name in ds.coords:
            ds[name].attrs.update(attrs)
    ds.attrs.update({"Conventions": "CF-1.8", "source": "minigencast (GenCast reimplementation)"})
    return ds


class ForecastWriter:
    """Writes a forecast chunk by chunk to NetCDF (.nc) or zarr (.zarr).

    Follows `safe_output`'s rules: the path is checked before any expensive work
    (never an existing folder, the input data or the checkpoint; an existing file
    only if it is one of our forecasts and `overwrite` is set), locked against a
    concurrent writer, written under a temporary name beside it and moved into
    place by `close()`, so an interrupted or failed forecast replaces nothing.
    Each chunk is a Dataset in the forecast layout covering all init times and some
    lead times (`write(ds, lead_index)`); the full coordinates are fixed up front by
    `template` (a Dataset with the final shape, values unused).
    """

    def __init__(self, path: str, template: xarray.Dataset, *, overwrite=False, protect=()):
        from minigencast import safe_output

        self.path = safe_output.check_output_path(path, overwrite=overwrite, protect=protect)
        self.overwrite, self.protect = overwrite, tuple(protect)
        self._made = safe_output.make_folders(os.path.dirname(self.path))  # undone on failure
        try:
            self._lock = safe_output.acquire_lock(self.path)
        except BaseException:
            safe_output.remove_empty_folders(self._made)
            raise
        try:  # Under the lock: check again, clear dead writers' leftovers, start.
            safe_output.check_output_path(path, overwrite=overwrite, protect=protect)
            safe_output.remove_orphans(self.path)
            self.format = "zarr" if self.path.endswith(".zarr") else "netcdf"
            self.tmp = safe_output.temporary_path(self.path)
            safe_output.clear_temporary(self.tmp)
            try:
                if self.format == "netcdf":
                    self._open_netcdf(template)
                else:
                    self._open_zarr(template)
            except BaseException as e:
                safe_output.remove(self.tmp)  # ours: nothing was there (clear_temporary)
                if isinstance(e, RuntimeError):
                    raise self._write_error(e) from e
                raise
        except BaseException:
            safe_output.release_lock(self.path, self._lock)
            safe_output.remove_empty_folders(self._made)
            raise

    def _write_error(self, e: RuntimeError) -> OSError:
        """One line for a failed NetCDF write: netCDF4 raises RuntimeError, e.g. "NetCDF:
        HDF error" on a full disk, so the free space is named too."""
        import shutil

        free = shutil.disk_usage(os.path.dirname(self.path)).free
        return OSError(
            f"writing {self.path} failed ({e}; {free / 1e6:.0f} MB free on its disk); "
            "nothing was replaced"
        )

    def _open_zarr(self, template):
        import dask.array as da

        lazy = template.copy()
        for name in lazy.data_vars:
            v = lazy[name]
            lazy[name] = v.copy(
                data=da.full(v.shape, np.nan, dtype=np.float32, chunks=(1,) * 3 + v.shape[3:])
            )
        lazy.to_zarr(self.tmp, compute=False, mode="w")

    def _open_netcdf(self, template):
        import netCDF4

        nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        for dim, size in template.sizes.items():
            nc.createDimension(dim, size)
        for name, coord in template.coords.items():
            values = coord.values
            if np.issubdtype(values.dtype, np.datetime64):
                v = nc.createVariable(name, "i8", coord.dims)
                v[:] = values.astype("datetime64[s]").astype(np.int64)
                v.units = "seconds since 1970-01-01 00:00:00"
                v.calendar = "proleptic_gregorian"
            elif np.issubdtype(values.dtype, np.timedelta64):
                v = nc.createVariable(name, "i8", coord.dims)
                v[:] = (values / np.timedelta64(1, "h")).astype(np.int64)
                v.units = "hours"
                # xarray decodes timedeltas only when told so by this attribute.
                v.setncattr("dtype", "timedelta64[ns]")
            else:
                v = nc.createVariable(name, values.dtype, coord.dims)
                v[:] = values
            for k, a in coord.attrs.items():
                v.setncattr(k, a)
        for name, var in template.data_vars.items():
            chunks = [
                1 if d in ("sample", "init_time", "lead_time") else s
                for d, s in zip(var.dims, var.shape, strict=True)
            ]
            v = nc.createVariable(
                name,
                "f4",
                var.dims,
                fill_value=np.float32(np.nan),
                zlib=True,
                complevel=1,
                chunksizes=chunks,
            )
            for k, a in var.attrs.items():
                v.setncattr(k, a)
        for k, a in template.attrs.items():
            setattr(nc, k, a)
        nc.sync()  # `source` on disk now: a killed writer's temporary is recognisably ours
        self._nc = nc

    def write(self, chunk: xarray.Dataset, lead_index: int):
        """Writes `chunk` (all init times, K lead times) at lead_time[lead_index : +K]."""
        k = chunk.sizes["lead_time"]
        if self.format == "netcdf":
            try:
                for name, var in chunk.data_vars.items():
                    self._nc[name][:, :, lead_index : lead_index + k] = var.transpose(
                        *self._nc[name].dimensions
                    ).values
                self._nc.sync()
            except RuntimeError as e:
                raise self._write_error(e) from e
        else:
            data = chunk.drop_vars([c for c in chunk.coords if c not in chunk.dims])
            data = data.drop_vars([d for d in data.dims if d in data.coords])
            region = {d: slice(None) for d in data.dims}
            region["lead_time"] = slice(lead_index, lead_index + k)
            data.to_zarr(self.tmp, region=region)

    def close(self):
        """Finishes the file and moves it to `path` (replacing an older one only now)."""
        from minigencast import safe_output

        try:
            if self.format == "netcdf":
                try:
                    self._nc.close()
                except RuntimeError as e:
                    safe_output.remove(self.tmp)
                    raise self._write_error(e) from e
            try:  # The user may have put something there since we started.
                safe_output.check_output_path(
                    self.path, overwrite=self.overwrite, protect=self.protect
                )
            except (OSError, ValueError) as e:
                kept = safe_output.keep_aside(self.tmp, self.path)
                raise FileExistsError(f"{e}; the forecast is kept at {kept}") from None
            safe_output.move_into_place(self.tmp, self.path)
        finally:
            safe_output.release_lock(self.path, self._lock)
            safe_output.remove_empty_folders(self._made)  # only if the forecast is not there

    def abort(self):
        from minigencast import safe_output

        if self.format == "netcdf":
            try:
                self._nc.close()
            except Exception:  # noqa: BLE001 -- already closed
                pass
        try:
            safe_output.remove(self.tmp)
        finally:
            safe_output.release_lock(self.path, self._lock)
            safe_output.remove_empty_folders(self._made)


# ----------------------------------------------------------------------------- end to end
def load_model(path: str):
    """(params, cfg, metadata or None) from a folder holding model.npz or a .npz file.

    `metadata` (metadata.json written beside our checkpoints) records the grid the
    model was trained on; DeepMind's own checkpoints have none.
    """
    from minigencast import checkpoint, training_state

    folder = path if os.path.isdir(path) else os.path.dirname(path)
    file = os.path.join(path, "model.npz") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"no model checkpoint at {file}")
    ckpt = checkpoint.load(file)
    metadata = training_state.read_metadata(folder)
    if metadata is not None and "config" in metadata:
        # The model's settings live in model.npz; metadata.json's copy is a record, and
        # an edit made there alone would change nothing without saying so.
        differences = training_state.config_differences(ckpt.config, metadata["config"])
        if differences:
            raise ValueError(
                f"{folder}/metadata.json does not describe {file}: {'; '.join(differences)}. "
                "The settings used are model.npz's: change them there (checkpoint.save with "
                "the new config) and in metadata.json alike"
            )
    spectral_filter.load(folder, metadata)
    return ckpt.params, ckpt.config, metadata


def check_grid_matches(metadata, lat, lon) -> None:
    """Raises ValueError if the data grid is not the one the model was trained on."""
    if metadata is None:
        return
    m_lat, m_lon = np.asarray(metadata["lat"]), np.asarray(metadata["lon"])
    if (
        m_lat.shape != np.shape(lat)
        or m_lon.shape != np.shape(lon)
        or not (np.allclose(m_lat, lat) and np.allclose(m_lon, lon))
    ):
        raise ValueError(
            f"the model was trained on a {m_lat.size}x{m_lon.size} lat/lon grid; the data are "
            f"{np.size(lat)}x{np.size(lon)}. Regrid the data (or pick the matching checkpoint)."
        )


def init_indices(times, init_times, num_input_times: int = 2) -> np.ndarray:
    """Index of each init time in `times`, checking its earlier input frames exist."""
    times = np.asarray(times, "datetime64[ns]")
    init_times = np.asarray(init_times, "datetime64[ns]")
    unique, counts = np.unique(init_times, return_counts=True)
    if (counts > 1).any():
        repeated = [str(t) for t in unique[counts > 1]]
        raise ValueError(f"init time(s) {repeated} given more than once; give each once")
    out = []
    for t in init_times:
        needed = [t - k * STEP for k in range(num_input_times)]
        missing = [str(x) for x in needed if x not in times]
        if missing:
            span = f"{times[0]} .. {times[-1]}" if len(times) else "no times"
            raise ValueError(
                f"cannot start a forecast at {t}: the data lack the input frame(s) {missing} "
                "(a forecast needs the analyses at init_time - 12 h and init_time); the data "
                f"span {span}"
            )
        out.append(int(np.searchsorted(times, t)))
    return np.asarray(out)


def run(
    params,
    cfg,
    dataset,
    stats,
    init_times,
    num_steps: int,
    num_members: int,
    *,
    seed: int = 0,
    out: str | None = None,
    chunk_steps: int = 4,
    metadata=None,
    progress: bool = True,
    overwrite: bool = False,
    protect=(),
    graphs: dict | None = None,
    noise_source=None,
    members_per_batch: int | None = None,
    attention: str | None = None,
    memory_budget_gb: float | None = None,
    grid_chunk: int | None = None,
    use_spectral_filter: bool = True,
    use_spread_correction: bool = True,
    check_inputs: bool = True,
):
    """Ensemble forecasts from `init_times`; the API twin of `minigencast forecast`.

    Args:
      params, cfg: the model (e.g. from `load_model`).
      dataset: canonical Dataset holding at least the two input frames of each init;
        the input frames are checked first (`layouts.check_units_and_ranges`,
        `layouts.check_nans`: degC, hPa, values far outside the statistics, or a NaN
        outside SST raise ValueError).
      stats: normalisation statistics (`normalization.load_stats`).
      init_times: datetimes of the last input frame t.
      num_steps: 12 h steps (30 = 15 days); num_members: ensemble size.
      out: None to return an in-memory Dataset; a path ending in .nc or .zarr to
        write chunk by chunk (the file appears only when complete; `ForecastWriter`).
      overwrite: replace an earlier forecast of ours at `out` (nothing else is ever
        replaced); protect: paths `out` must not be (the input data, the checkpoint;
        the dataset's own source file is added).
      graphs: the model's graphs (`graphs.build_graphs` layout), e.g. DeepMind's own;
        default: built for the data's grid.
      noise_source: where the sampler's noise comes from (`noise.py`), bound to each
        (member, init index, step); default: spherical noise from the member keys.
      members_per_batch: (init, member) pairs run together (default: as many as the
        memory budget allows, `memory.plan`).
      attention: "mha", "splash_mha" or "triblockdiag_mha" (default: the checkpoint's,
        dense for small meshes); all compute the same function.
      memory_budget_gb: default the device's memory (host: 80 % of the RAM).
      grid_chunk: grid nodes and grid-side edges evaluated at a time (default: from
        the budget). A configuration whose estimate exceeds the budget raises
        `memory.MemoryBudgetError` before anything is compiled or written.
      use_spectral_filter: pass every written state through the spectral filter calibrated
        for the model (`spectral_filter.py`), if its `metadata` carries one.
      use_spread_correction: scale every written state's members about their mean by the
        factors calibrated for the model (`spread_correction.py`), if it carries them.
      check_inputs: check the input frames' units, values and NaNs (see `dataset`);
        False for synthetic inputs whose physics does not matter (parity cases).
    Returns:
      The forecast Dataset (sample, init_time, lead_time, [level,] lat, lon), or the
      path written.
    """
    import tqdm

    if out is not None:  # Refuse a bad output path before any work.
        from minigencast import safe_output

        protect = (*protect, dataset.encoding.get("source"))
        safe_output.check_output_path(out, overwrite=overwrite, protect=protect)
    task = cfg.task_config
    data = arrays.prepare(dataset, task, stats, streaming=True)  # reads only the inits
    check_grid_matches(metadata, data.lat, data.lon)
    t_in = data.layout.num_input_times
    idx = init_indices(data.times, init_times, t_in)
    init_times = data.times[idx]
    # What the forecast reads, its input frames: K not degC, Pa not hPa, values the
    # statistics describe, and no NaN but SST's (a NaN spreads over the whole forecast).
    if check_inputs:
        inputs = dataset.isel(time=np.unique(idx[:, None] + np.arange(-(t_in - 1), 1)))
        layouts.check_units_and_ranges(inputs, stats)
        layouts.check_nans(inputs[[v for v in task.input_variables if v in inputs]])
    lead_times = np.arange(1, num_steps + 1) * STEP
    if graphs is None:
        graphs = network.build_graphs(cfg, data.lat, data.lon)
    if attention is None:
        attention = network.attention_layout_type(
            cfg.denoiser_architecture_config.sparse_transformer_config.attention_type,
            graphs["mesh_node_structural_features"].shape[0],
        )
    budget = (
        memory.default_budget_bytes()
        if memory_budget_gb is None
        else int(memory_budget_gb * memory.GB)
    )
    plan = memory.plan(
        memory.sizes(cfg, graphs),
        attention,
        budget,
        num_samples=len(idx) * num_members,
        members_per_batch=members_per_batch,
        grid_chunk=grid_chunk,
        forecast=True,
    )
    spread = spread_correction.from_metadata(metadata, task) if use_spread_correction else None
    memory.check_host_outputs(
        len(idx) * num_members,
        len(idx),
        t_in,
        int(np.prod(data.frames.shape[1:])) * 4,
        chunk_steps=min(chunk_steps, num_steps),
        chunk_copies=1 if spread is None else 2,
        returned_steps=num_steps if out is None else 0,
    )
    structure = network.build_structure(
        cfg, data.lat, data.lon, graphs, attention, plan.chunks, plan.window_chunk
    )
    if plan.estimate["peak"] + memory.hoisted_bytes(memory.sizes(cfg, graphs)) <= budget:
        structure = network.hoist_static(params, structure)
    if noise_source is None:
        noise_source = noise.KeyedNoise(
            noise.noise_function(data.lat, data.lon, cfg.noise_config.spherical_truncation)
        )
    spectral = None
    if use_spectral_filter:
        spectral = spectral_filter.from_metadata(metadata, task, data.lat, data.lon)
    attrs = {n: dict(dataset[n].attrs) for n in task.target_variables if n in dataset}

    writer = None
    if out is not None and multihost.is_main():
        shape = (len(idx), num_members, num_steps) + data.frames.shape[1:]
        template = forecast_template(shape, task, init_times, lead_times, data.lat, data.lon, attrs)
        writer = ForecastWriter(out, template, overwrite=overwrite, protect=protect)
    # Forcings from the first input frame to the last lead time, per init: [I, T_in + N, ...].
    offsets = np.arange(-(t_in - 1), num_steps + 1) * STEP
    valid = (init_times[:, None] + offsets[None]).ravel()
    forcings = arrays.future_forcings(valid, data.lon, task, data.layout)  # [., 1, lon, C_f]
    forcings = forcings.reshape((len(idx), len(offsets)) + forcings.shape[1:])
    init_frames = np.stack([data.raw_frames[j - t_in + 1 : j + 1] for j in idx])
    held = None  # out=None: the whole forecast, filled chunk by chunk
    bar = tqdm.tqdm(
        total=num_steps,
        disable=not (progress and multihost.is_main()),
        desc="forecast",
        unit="step",
        dynamic_ncols=True,
    )
    try:
        for start, outputs in rollout(
            params,
            structure,
            cfg,
            data.layout,
            data.static,
            init_frames,
            forcings,
            num_steps,
            num_members,
            noise_source,
            seed=seed,
            chunk_steps=chunk_steps,
            init_times=init_times,
            members_per_batch=plan.members_per_batch,
            spectral=spectral,
        ):
            k = outputs.shape[2]
            if spread is not None:
                # In place unless the chunk is a read-only view of what JAX returned.
                inplace = outputs.flags.writeable
                outputs = spread_correction.apply(spread, outputs, start, in_place=inplace)
            if out is None:
                if held is None:
                    shape = outputs.shape[:2] + (num_steps,) + outputs.shape[3:]
                    held = np.empty(shape, np.float32)
                held[:, :, start : start + k] = outputs
            elif writer is not None:
                lead = lead_times[start : start + k]
                writer.write(
                    chunk_to_dataset(outputs, task, init_times, lead, data.lat, data.lon, attrs),
                    start,
                )
            del outputs  # before the next chunk is computed: the host holds one at a time
            bar.update(k)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    if writer is not None:
        writer.close()
    if out is not None:
        multihost.barrier("forecast written")
        return out
    return chunk_to_dataset(held, task, init_times, lead_times, data.lat, data.lon, attrs)
