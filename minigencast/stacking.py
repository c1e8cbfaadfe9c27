"""Datasets <-> [lat, lon, channel] arrays in DeepMind's channel order (spec sec. 1.4).

GenCast's network sees every grid node as one feature vector. DeepMind builds it with
`model_utils.dataset_to_stacked`: take the data variables in Python `sorted()` order
(digits before letters: `10m_u...` < `2m_temperature` < `day_progress_cos` < ...); for each
variable flatten every dim except (batch, lat, lon) into channels *in the variable's own
dim order* (time-major, level-minor for the example data); broadcast variables without
lat/lon (the progress features) to the grid. The denoiser's grid input is

    [ inputs (sorted) | forcings and c_in * noisy targets (sorted together) | structural ]

so the target-time forcings are interleaved alphabetically with the noisy targets; this
module gives that interleave as a static index permutation (`interleave_index`).

Two views of the same order:
  * from a task config (`input_channels`, `target_channels`, `forcing_channels`): what the
    network expects; used to size parameters and to build per-channel vectors
    (normalisation statistics, loss weights) with `channel_vector`;
  * from a Dataset (`dataset_to_array`, `array_to_dataset`): the edge between xarray and
    the jitted code, an exact round trip.

Layout glossary: arrays are [..., lat, lon, channel] where `...` are the leading
`sample`/`batch` dims of the Dataset, if any (in that order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray

from minigencast import variables

LEADING_DIMS = ("sample", "batch")
GRID_DIMS = ("lat", "lon")


@dataclasses.dataclass(frozen=True)
class Channel:
    """One stacked channel: which variable, pressure level (hPa) and time index.

    `level` is None for surface/static/forcing variables; `time` is the index along the
    variable's time dim (0 = t-12h, 1 = t for the two input frames), None for static
    variables.
    """

    variable: str
    level: int | None = None
    time: int | None = None


# --------------------------------------------------------------------------
# Channel order from a task config.


def num_input_times(task) -> int:
    """Number of input frames: input_duration / 12 h (DeepMind: "24h" -> t-12h and t)."""
    return int(pd.Timedelta(task.input_duration) // pd.Timedelta("12h"))


def _has_levels(name: str) -> bool:
    return name in variables.ATMOSPHERIC_VARIABLES


def _channels(names: Sequence[str], levels: Sequence[int], times: Sequence[int | None]):
    out = []
    for name in sorted(names):
        var_times = [None] if name in variables.STATIC_VARIABLES else times
        var_levels = levels if _has_levels(name) else [None]
        out += [Channel(name, lev, t) for t in var_times for lev in var_levels]
    return tuple(out)


def input_channels(task, num_times: int | None = None) -> tuple[Channel, ...]:
    """The input block: sorted(input_variables), each time-major, level-minor.

    For GenCast's task (13 levels) this has 176 channels; static fields appear once.
    """
    num_times = num_input_times(task) if num_times is None else num_times
    return _channels(task.input_variables, task.pressure_levels, range(num_times))


def target_channels(task) -> tuple[Channel, ...]:
    """The network's output order: sorted(target_variables), levels as in the task."""
    return _channels(task.target_variables, task.pressure_levels, [0])


def forcing_channels(task) -> tuple[Channel, ...]:
    """The target-time forcings: sorted(forcing_variables), one channel each."""
    return _channels(task.forcing_variables, task.pressure_levels, [0])


def interleave_index(task) -> np.ndarray:
    """Permutation p with concat([forcings, noisy_targets], -1)[..., p] in DeepMind's order.

    DeepMind merges the target-time forcings and the noisy targets into one Dataset and
    stacks it alphabetically; names are distinct, so a stable sort by variable name of
    the concatenated channel list gives the order (spec sec. 1.4, channels 176-263).
    """
    channels = forcing_channels(task) + target_channels(task)
    return np.argsort([c.variable for c in channels], kind="stable").astype(np.int32)


def channel_vector(
    channels: Sequence[Channel], stats: xarray.Dataset, default: float | None = None
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


def _describe(name: str, da: xarray.DataArray) -> list[Channel]:
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
        out.append(Channel(name, **kw))
    return out


def dataset_channels(ds: xarray.Dataset) -> tuple[Channel, ...]:
    """The channel descriptions `dataset_to_array(ds)` would produce."""
    out = []
    for name in sorted(ds.data_vars):
        out += _describe(name, ds[name])
    return tuple(out)


def dataset_to_array(
    ds: xarray.Dataset, grid: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[Channel, ...]]:
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
