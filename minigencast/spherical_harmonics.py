"""Real spherical harmonics on a regular lat/lon grid: synthesis and analysis.

A field on the sphere band-limited to degrees l < L is a sum of real spherical
harmonics with unit L2 norm on the unit sphere (integral of Y^2 over the sphere = 1):

    f(lat, lon) = sum_{l < L} sum_{m = 0..l} P_lm(sin lat) [c_lm cos(m lon) + s_lm sin(m lon)] N_m
    N_0 = 1 / sqrt(2 pi),   N_m = 1 / sqrt(pi) for m > 0                          (1)

where P_lm are the associated Legendre functions normalised on [-1, 1]
(integral of P_lm(x)^2 dx = 1), without the Condon-Shortley phase (-1)^m.

*Synthesis* (coefficients -> grid) factorises: for every m a matrix product over l
gives the latitude profile A_m(lat) = sum_l P_lm(sin lat) c_lm N_m (and B_m from s_lm),
then one real inverse FFT over longitude sums A_m cos(m lon) + B_m sin(m lon).
Cost O(L^2 n_lat) per field plus the FFT.

*Analysis* (grid -> coefficients) inverts it: an FFT over longitude, then per m a
least-squares fit over latitude with a precomputed pseudo-inverse. It is exact (to
rounding) for fields band-limited to l < L as long as every order m has at least as
many usable latitudes as unknowns l = m..L-1: L latitudes for m = 0, and L - 1
latitudes away from the poles for m = 1 (P_lm vanishes at a pole for m > 0). True for
GenCast's grids: 1 deg has 181 latitudes (179 off the poles) and L = 180;
WeatherBench-2's 64x32 has 32 latitudes, none at a pole, and L = 32.

Legendre recursion (stable to l ~ 2000 in float64; GenCast needs L = 720):

    P_00 = 1 / sqrt(2)
    P_mm = sqrt((2m + 1) / (2m)) sqrt(1 - x^2) P_{m-1,m-1}
    P_lm = a_lm (x P_{l-1,m} - b_lm P_{l-2,m}),  a_lm = sqrt((4l^2 - 1) / (l^2 - m^2)),
           b_lm = sqrt(((l - 1)^2 - m^2) / (4 (l - 1)^2 - 1))                     (2)

Everything is built once in NumPy (`build_basis`); `synthesise` is jit-compatible and
takes the basis as an argument (data, not a compile-time constant).

References: [1] Holmes & Featherstone 2002, J. Geodesy 76, 279-299 (recursion (2)).
[2] dinosaur's `spherical_harmonic.py` / `associated_legendre.py`, which DeepMind's
GenCast uses for its noise (docs/design.md §4).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import geometry

HIGHEST = jax.lax.Precision.HIGHEST


class Basis(NamedTuple):
    """Static spherical-harmonic tables for one grid (a pytree of arrays).

    Attributes:
      legendre: [L (m), n_lat, L (l)] P_lm(sin lat) * N_m, zero where l < m.
      longitude_size: [n_lon] placeholder whose length is n_lon (static shape info).
    """

    legendre: np.ndarray
    longitude_size: np.ndarray

    @property
    def max_degree(self) -> int:
        """L: degrees l = 0..L-1 and orders m = 0..L-1."""
        return self.legendre.shape[0]

    @property
    def n_lat(self) -> int:
        return self.legendre.shape[1]

    @property
    def n_lon(self) -> int:
        return self.longitude_size.shape[0]


def legendre_table(x, max_degree: int, dtype=np.float64) -> np.ndarray:
    """Normalised associated Legendre functions P_lm(x) by recursion (2).

    Args:
      x: [n] points in [-1, 1] (here sin(lat)).
      max_degree: L; returns l, m < L.
      dtype: of the returned table (the recursion itself runs in float64).

    Returns:
      [L (m), n, L (l)], zero where l < m.
    """
    x = np.asarray(x, dtype=np.float64)
    big_l = max_degree
    m = np.arange(big_l, dtype=np.float64)[:, None]  # [L, 1]
    sin_theta = np.sqrt(np.clip(1 - x * x, 0, None))
    # Diagonal P_mm for every m at once: a cumulative product of (2) (first line).
    factors = np.sqrt((2 * m[1:] + 1) / (2 * m[1:])) * sin_theta  # [L-1, n]
    diag = np.concatenate([np.full((1, x.size), 1 / np.sqrt(2)), factors], axis=0)
    diag = np.cumprod(diag, axis=0)  # [L (m), n]; underflows to 0 only where negligible
    table = np.zeros((big_l, big_l, x.size), dtype=dtype)  # [l, m, n]: contiguous writes
    p_prev2 = np.zeros((big_l, x.size))  # P_{l-2, m}
    p_prev1 = np.zeros((big_l, x.size))  # P_{l-1, m}
    for deg in range(big_l):
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.sqrt((4.0 * deg**2 - 1) / (deg**2 - m**2))
            b = np.sqrt(np.clip(((deg - 1) ** 2 - m**2) / (4.0 * (deg - 1) ** 2 - 1), 0, None))
            p = np.where(m < deg, a * (x * p_prev1 - b * p_prev2), 0.0)
        p[deg] = diag[deg]
        table[deg] = p
        p_prev2, p_prev1 = p_prev1, p
    return np.ascontiguousarray(table.transpose(1, 2, 0))


@functools.lru_cache(maxsize=8)
def _cached_basis(lat_bytes: bytes, n_lon: int, max_degree: int) -> Basis:
    lat = np.frombuffer(lat_bytes, dtype=np.float64)
    legendre = legendre_table(np.sin(np.deg2rad(lat)), max_degree, dtype=np.float32)
    legendre[0] *= np.float32(1 / np.sqrt(2 * np.pi))  # eq. (1): N_0 ...
    legendre[1:] *= np.float32(1 / np.sqrt(np.pi))  # ... and N_m, m > 0
    legendre.flags.writeable = False
    return Basis(legendre, np.zeros(n_lon, dtype=np.int8))


def build_basis(lat, lon, max_degree: int | None = None) -> Basis:
    """Tables for synthesis on the grid (lat ascending, lon = i*360/n_lon from 0).

    Args:
      lat: [n_lat] degrees, with or without the poles.
      lon: [n_lon] degrees.
      max_degree: L (degrees l < L); default n_lon // 2 as GenCast (docs/design.md §4).

    Returns:
      A `Basis`, cached per grid in memory (about 4 L^2 n_lat bytes: 1.5 GB at 0.25 deg).
    """
    lat, lon = geometry.check_grid(lat, lon)
    big_l = lon.size // 2 if max_degree is None else int(max_degree)
    if not 0 < big_l <= lon.size // 2:
        raise ValueError(f"max_degree must be in 1..n_lon//2 = {lon.size // 2}, got {big_l}.")
    return _cached_basis(lat.tobytes(), lon.size, big_l)


def synthesise(basis: Basis, cos_coeffs, sin_coeffs):
    """Grid values of eq. (1) for a batch of fields (jit-compatible).

    Args:
      basis: from `build_basis` (may be passed through `jit` as an argument).
      cos_coeffs, sin_coeffs: [..., L (m), L (l)] coefficients c_lm and s_lm (entries
        with l < m, and s_l0, are ignored).

    Returns:
      [..., n_lat, n_lon] float32.
    """
    legendre = jnp.asarray(basis.legendre)  # [M, lat, L]
    n_lon = basis.longitude_size.shape[0]
    big_l = legendre.shape[0]
    # Latitude profiles per order m: A_m(lat) = sum_l P_lm N_m c_lm (a batched matmul),
    # at full float32 precision, as dinosaur does: TF32/bf16 passes on GPU/TPU would
    # otherwise perturb the noise (CPU results are unchanged).
    a_m = jnp.einsum("mil,...ml->...mi", legendre, cos_coeffs, precision=HIGHEST)  # [..., M, lat]
    b_m = jnp.einsum("mil,...ml->...mi", legendre, sin_coeffs, precision=HIGHEST)
    # irfft(X)_j = (1/n) [X_0 + 2 sum_m Re(X_m e^{2 pi i m j / n})] sums A_m cos + B_m sin
    # for X_0 = n A_0 and X_m = (n / 2)(A_m - i B_m).
    scale = jnp.full((big_l,), n_lon / 2).at[0].set(n_lon)
    spectrum = a_m - 1j * b_m.at[..., 0, :].set(0)  # [..., M, lat]
    spectrum = spectrum * scale.reshape((1,) * (spectrum.ndim - 2) + (big_l, 1))
    spectrum = jnp.moveaxis(spectrum, -2, -1)  # [..., lat, M]
    pad = n_lon // 2 + 1 - big_l
    spectrum = jnp.pad(spectrum, [(0, 0)] * (spectrum.ndim - 1) + [(0, pad)])
    return jnp.fft.irfft(spectrum, n=n_lon, axis=-1).astype(jnp.float32)


_PINV_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _pseudo_inverse(basis: Basis) -> np.ndarray:
    """[M, L (l), n_lat] least-squares inverse of each order's [n_lat, L] block (cached)."""
    hit = _PINV_CACHE.get(id(basis.legendre))
    if hit is not None and hit[0] is basis.legendre:
        return hit[1]
    table = basis.legendre.astype(np.float64)  # [M, lat, L]
    # Normal equations (P^T P) c = P^T a, batched over m. Columns l < m are zero; a 1
    # on their diagonal keeps the system regular and their coefficients at zero.
    gram = np.swapaxes(table, 1, 2) @ table  # [M, L, L]
    below = np.arange(basis.max_degree)[None, :] < np.arange(basis.max_degree)[:, None]
    gram[:, np.arange(basis.max_degree), np.arange(basis.max_degree)] += below
    out = np.linalg.solve(gram, np.swapaxes(table, 1, 2))
    _PINV_CACHE.clear()  # keep one grid's inverse; they are as large as the basis
    _PINV_CACHE[id(basis.legendre)] = (basis.legendre, out)
    return out


def analyse(basis: Basis, field) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of eq. (1) from grid values (NumPy, float64): inverse of `synthesise`.

    Exact for fields band-limited to l < L; for other fields it is the least-squares
    fit by the band-limited ones.

    Args:
      field: [..., n_lat, n_lon].

    Returns:
      cos_coeffs, sin_coeffs: [..., L (m), L (l)], zero where l < m (and s_l0 = 0).
    """
    field = np.asarray(field, dtype=np.float64)
    n_lon = field.shape[-1]
    big_l = basis.max_degree
    x = np.fft.rfft(field, axis=-1)[..., :big_l]  # [..., lat, M]
    scale = np.full(big_l, 2.0 / n_lon)
    scale[0] = 1.0 / n_lon
    a_m = np.moveaxis(x.real * scale, -1, -2)  # [..., M, lat]
    b_m = np.moveaxis(-x.imag * scale, -1, -2)
    pinv = _pseudo_inverse(basis)
    cos_coeffs = (pinv @ a_m[..., None])[..., 0]  # [..., M, L]
    sin_coeffs = (pinv @ b_m[..., None])[..., 0]
    sin_coeffs[..., 0, :] = 0
    return cos_coeffs, sin_coeffs


def power_spectrum(basis: Basis, field) -> np.ndarray:
    """Angular power per degree l: sum over m of c_lm^2 + s_lm^2.

    The harmonics of (1) are orthonormal, so (Parseval) sum_l power_l = integral of
    f^2 over the unit sphere = 4 pi times the area-weighted mean square of f. White
    noise of unit variance has power_l = 4 pi / L at every degree.

    Args:
      field: [..., n_lat, n_lon].

    Returns:
      [..., L] float64.
    """
    cos_coeffs, sin_coeffs = analyse(basis, field)
    return (cos_coeffs**2 + sin_coeffs**2).sum(axis=-2)
