"""Isotropic white noise on the sphere, the noise GenCast diffuses with (docs/design.md §4).

Each field is a random band-limited sum of real spherical harmonics
(`spherical_harmonics.py`, eq. 1) with i.i.d. N(0, 1) weights scaled so that every
total wavenumber l < L carries the same power P_l = 1 / L (GenCast: L = n_lon // 2;
with `NoiseConfig.spherical_truncation` T, L = T + 1):

    c_lm, s_lm = a_lm * sqrt(4 pi P_l / (2 l + 1)),   a_lm ~ N(0, 1)

By the addition theorem, sum_m Y_lm(x)^2 = (2 l + 1) / (4 pi) at every point x, so the
pointwise variance is sum_l P_l = 1 everywhere: unit variance, a flat angular power
spectrum, and statistics that do not change under rotations of the sphere. (i.i.d.
noise per grid point would instead put far more independent values per unit area
near the poles, where meridians converge; the trained denoiser expects this spectrum.)

Layout: channels last, like the rest of minigencast. A template of shape
[..., lat, lon, channel] gets an independent field for every leading index and channel;
a template of shape [lat, lon] gets one field.

The exact random numbers of DeepMind's implementation cannot be reproduced (they depend
on Haiku's key splitting and dinosaur's coefficient layout); only the distribution
matters (docs/design.md §4, §12 item 17).

Noise sources. The sampler takes every field it draws from a *noise source*: for each
sampler iteration i it asks `source.initial_noise(key, template)` (used at i = 0 only)
and `source.churn_noise(key, template, i)`. `KeyedNoise` (the default) draws fresh noise
from the key; `RecordedNoise` replays fields recorded elsewhere, e.g. by DeepMind's
sampler (`docs/parity.md`), so that the same weights, inputs and noise give the same
forecast. A forecast binds its source to each (member, init, step) with
`source.bind(member, init, step)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from minigencast import spherical_harmonics


def _coefficient_scale(max_degree: int) -> np.ndarray:
    """[L (m), L (l)]: sqrt(4 pi / (L (2l + 1))) where l >= m, else 0."""
    deg = np.arange(max_degree)
    scale = np.sqrt(4 * np.pi / (max_degree * (2 * deg + 1)))
    return np.where(deg[None, :] >= deg[:, None], scale[None, :], 0.0).astype(np.float32)


def spherical_noise(key, template, basis: spherical_harmonics.Basis):
    """Unit-variance isotropic noise shaped like `template` (jit-compatible).

    Args:
      key: a JAX PRNG key.
      template: array [lat, lon] or [..., lat, lon, channel]; only shape and dtype used.
      basis: `spherical_harmonics.build_basis(lat, lon)` (an argument, i.e. data).

    Returns:
      Array like `template`.
    """
    n_lat, n_lon = basis.n_lat, basis.n_lon
    shape = tuple(template.shape)
    if len(shape) == 2 and shape == (n_lat, n_lon):
        fields_shape, channels_last = (), False
    elif len(shape) >= 3 and shape[-3:-1] == (n_lat, n_lon):
        fields_shape, channels_last = shape[:-3] + shape[-1:], True
    else:
        raise ValueError(
            f"Noise template must be [lat, lon] = [{n_lat}, {n_lon}] or "
            f"[..., lat, lon, channel]; got shape {shape}."
        )
    big_l = basis.max_degree
    # Explicit leading axes: the package tests forbid implicit rank promotion.
    scale = jnp.asarray(_coefficient_scale(big_l)).reshape(
        (1,) * len(fields_shape) + (big_l, big_l)
    )
    key_cos, key_sin = jax.random.split(key)
    cos_coeffs = jax.random.normal(key_cos, fields_shape + (big_l, big_l)) * scale
    sin_coeffs = jax.random.normal(key_sin, fields_shape + (big_l, big_l)) * scale
    fields = spherical_harmonics.synthesise(basis, cos_coeffs, sin_coeffs)  # [F..., lat, lon]
    if channels_last:
        fields = jnp.moveaxis(fields, -3, -1)  # [..., lat, lon, channel]
    return fields.astype(template.dtype)


def make_spherical_noise_fn(lat, lon, truncation=None):
    """`noise_fn(key, template)` for the sampler: spherical noise on this grid.

    The basis is built once here (NumPy) and carried by the returned function as a
    pytree leaf: `noise_fn` is a `jax.tree_util.Partial`, so passing it into a jitted
    function as an argument makes the basis data, not a compile-time constant.

    Args:
      lat: [n_lat] ascending degrees (with or without poles); lon: [n_lon] i*360/n_lon.
      truncation: triangular truncation T (total wavenumbers l <= T); None: l < n_lon // 2.

    Returns:
      noise_fn(key, template [lat, lon] or [..., lat, lon, channel]) -> array like template.
    """
    max_degree = None if truncation is None else int(truncation) + 1
    basis = spherical_harmonics.build_basis(lat, lon, max_degree)
    return jax.tree_util.Partial(spherical_noise, basis=basis)


def spherical_white_noise(key, lat, lon, shape_prefix=(), num_channels=None, dtype=jnp.float32):
    """Convenience: noise of shape [*shape_prefix, lat, lon] or [*shape_prefix, lat, lon, C]."""
    shape = tuple(shape_prefix) + (len(lat), len(lon))
    if num_channels is not None:
        shape = shape + (int(num_channels),)
    elif shape_prefix:
        shape = shape + (1,)
    noise = make_spherical_noise_fn(lat, lon)(key, jax.ShapeDtypeStruct(shape, dtype))
    if num_channels is None and shape_prefix:
        noise = noise[..., 0]
    return noise


_NOISE_FNS: dict = {}


def noise_function(lat, lon, truncation=None):
    """`make_spherical_noise_fn(lat, lon, truncation)`, cached (a stable jit static arg).

    A model's noise: `noise_function(lat, lon, cfg.noise_config.spherical_truncation)`.
    """
    key = (tuple(np.asarray(lat).tolist()), tuple(np.asarray(lon).tolist()), truncation)
    if key not in _NOISE_FNS:
        _NOISE_FNS[key] = make_spherical_noise_fn(np.asarray(lat), np.asarray(lon), truncation)
    return _NOISE_FNS[key]


# ----------------------------------------------------------------------------- sources
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KeyedNoise:
    """Fresh noise from the key: every field is `noise_fn(key, template)` (the default).

    `noise_fn` is e.g. `make_spherical_noise_fn(lat, lon)` (a pytree carrying its basis)
    or `sampler.gaussian_noise`.
    """

    noise_fn: Callable

    def bind(self, *address):
        """The source of one (member, init, step): the same one, the key decides."""
        del address
        return self

    def initial_noise(self, key, template):
        return self.noise_fn(key, template)

    def churn_noise(self, key, template, iteration):
        del iteration
        return self.noise_fn(key, template)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RecordedNoise:
    """Replays recorded fields, ignoring the key.

    Attributes:
      initial: [*address, *state] the initial field of each address.
      churn: [*address, N, *state] the churn field of each sampler iteration i < N.
    `address` is () for one sampler call, or (member, init, step) for a forecast
    (`bind` picks one); state is e.g. [lat, lon, channel].
    """

    initial: jax.Array
    churn: jax.Array

    def bind(self, *address):
        """The fields of one address, e.g. `bind(member, init, step)` (traced ints allowed)."""
        return RecordedNoise(self.initial[address], self.churn[address])

    def initial_noise(self, key, template):
        del key
        return jnp.asarray(self.initial).astype(template.dtype).reshape(template.shape)

    def churn_noise(self, key, template, iteration):
        del key
        return jnp.asarray(self.churn)[iteration].astype(template.dtype).reshape(template.shape)


def as_source(noise):
    """`noise` if it is a noise source, else `KeyedNoise(noise)` for a noise_fn(key, template)."""
    if hasattr(noise, "churn_noise"):
        return noise
    if not isinstance(noise, jax.tree_util.Partial):
        noise = jax.tree_util.Partial(noise)  # a pytree: the source can enter jit as data
    return KeyedNoise(noise)
