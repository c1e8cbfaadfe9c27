"""Datasets <-> [lat, lon, channel] arrays in DeepMind's channel order.

The order itself (which variable, level and time each channel holds) is
`channel_order.py`'s, computed from a task config with NumPy alone; this module is the edge
between xarray and the jitted code:

  * `dataset_to_array`, `array_to_dataset`: an exact round trip for a Dataset whose
    variables and dims follow DeepMind's `model_utils.dataset_to_stacked`;
  * `channel_vector`: per-channel vectors (normalisation statistics, loss weights) from
    a statistics Dataset.

Layout glossary: arrays are [..., lat, lon, channel] where `...` are the leading
`sample`/`batch` dims of the Dataset, if any (in that order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray

from minigencast import channel_order

LEADING_DIMS = ("sample", "batch")
GRID_DIMS = ("lat", "lon")


def channel_vector(
    channels: Sequence[channel_order.Channel], stats: xarray.Dataset, default: float | None = None
) -> np.ndarray:
    """Per-channel values of a statistics Dataset (e.g. `stddev_by_level.nc`): [channel].

    Atmospheric channels are looked up by level value (the files may hold more levels).
    A variable missing from `stats` gets `default`, or raises KeyError when None.
    """
    out = np.empty(len(channels), np.float64)
    for i, c in enumerate(channels):
        if c.variable not in stats:
            if default is None:
                raise KeyError(f"statistics have no variable {c.variable!r}")
            out[i] = default
            continue
        da = stats[c.variable]
        if c.level is not None and "level" in da.dims:
            da = da.sel(level=c.level)
        out[i] = float(da.values)
    return out


# --------------------------------------------------------------------------
# Dataset <-> array.


def _leading_dims(ds: xarray.Dataset) -> tuple[str, ...]:
    return tuple(d for d in LEADING_DIMS if d in ds.dims)


def _channel_dims(da: xarray.DataArray) -> tuple[str, ...]:
    return tuple(d for d in da.dims if d not in LEADING_DIMS + GRID_DIMS)


def _describe(name: str, da: xarray.DataArray) -> list[channel_order.Channel]:
    dims = _channel_dims(da)
    sizes = [da.sizes[d] for d in dims]
    out = []
    for index in np.ndindex(*sizes):
        kw = {}
        for d, i in zip(dims, index, strict=False):
            if d == "level":
                kw["level"] = int(da["level"].values[i]) if "level" in da.coords else i
            elif d == "time":
                kw["time"] = i
            else:
                raise ValueError(f"{name}: unsupported channel dim {d!r}")
        out.append(channel_order.Channel(name, **kw))
    return out


def dataset_channels(ds: xarray.Dataset) -> tuple[channel_order.Channel, ...]:
    """The channel descriptions `dataset_to_array(ds)` would produce."""
    out = []
    for name in sorted(ds.data_vars):
        out += _describe(name, ds[name])
    return tuple(out)


def dataset_to_array(
    ds: xarray.Dataset, grid: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[channel_order.Channel, ...]]:
    """Stacks a Dataset into [..., lat, lon, channel] (DeepMind's `dataset_to_stacked`).

    Args:
      ds: variables with dims from (sample, batch, <channel dims>..., lat, lon); variables
        without lat/lon or without the leading dims are broadcast.
      grid: (n_lat, n_lon), needed when `ds` lacks a lat or lon dim (e.g. forcings).

    Returns:
      (array [*leading, lat, lon, channel], channel descriptions), leading = the dims of
      ("sample", "batch") present in `ds`.
    """
    lead = _leading_dims(ds)
    shape_lead = tuple(ds.sizes[d] for d in lead)
    n_lat, n_lon = grid if grid is not None else (ds.sizes["lat"], ds.sizes["lon"])
    sizes = dict(ds.sizes, lat=n_lat, lon=n_lon)
    blocks = []
    for name in sorted(ds.data_vars):
        da = ds[name]
        chan = _channel_dims(da)
        missing = [d for d in lead + GRID_DIMS if d not in da.dims]
        if missing:
            da = da.expand_dims({d: sizes[d] for d in missing})
        da = da.transpose(*lead, *chan, *GRID_DIMS)
        n_chan = int(np.prod([da.sizes[d] for d in chan], dtype=np.int64))
        values = np.asarray(da.values).reshape(shape_lead + (n_chan, n_lat, n_lon))
        blocks.append(np.moveaxis(values, len(lead), -1))
    return np.concatenate(blocks, axis=-1), dataset_channels(ds)


def array_to_dataset(array, template: xarray.Dataset) -> xarray.Dataset:
    """Inverse of `dataset_to_array`: [..., lat, lon, channel] -> Dataset like `template`.

    Each variable gets the template's dims, coords and attrs. Variables that were
    broadcast (no lat/lon in the template) take the value at lat = lon = 0.
    """
    array = np.asarray(array)
    lead = _leading_dims(template)
    # A template without lat/lon (e.g. forcings) takes the grid from the array.
    n_lat = template.sizes.get("lat", array.shape[-3])
    n_lon = template.sizes.get("lon", array.shape[-2])
    expected = tuple(template.sizes[d] for d in lead) + (n_lat, n_lon)
    if array.shape[:-1] != expected:
        raise ValueError(
            f"array shape {array.shape} does not match template {expected} + (channel,)"
        )
    out = {}
    start = 0
    for name in sorted(template.data_vars):
        da = template[name]
        chan = _channel_dims(da)
        chan_shape = tuple(da.sizes[d] for d in chan)
        n = int(np.prod(chan_shape, dtype=np.int64))
        block = array[..., start : start + n]
        start += n
        values = block.reshape(block.shape[:-1] + chan_shape)  # [*lead, lat, lon, *chan]
        dims = lead + GRID_DIMS + chan
        # Drop broadcast dims the template variable does not have.
        for d in reversed(dims):
            if d not in da.dims:
                values = np.take(values, 0, axis=dims.index(d))
                dims = tuple(x for x in dims if x != d)
        new = xarray.DataArray(values.astype(da.dtype, copy=False), dims=dims)
        out[name] = da.copy(data=new.transpose(*da.dims).values)
    if start != array.shape[-1]:
        raise ValueError(f"array has {array.shape[-1]} channels, template needs {start}")
    return xarray.Dataset(out, coords=template.coords, attrs=template.attrs)
