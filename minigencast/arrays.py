"""From a dataset to the arrays of training windows and rollout steps.

Training and forecasting see the data the same way, through a `Layout` (NumPy
vectors and index arrays built once from the task and the normalisation
statistics) and per-time arrays:

  frames   [time, lat, lon, C_t]  physical target variables, DeepMind's target
                                  channel order (`channel_order.target_channels`), SST NaNs
                                  filled with min(SST) (docs/design.md §2.2 step 1)
  forcings [time, lat, lon, C_f]  the generated forcings (docs/design.md §1.5), normalised
  static   [lat, lon, C_s]        static fields, normalised

A window (t-12h, t, t+12h) becomes one training example (docs/design.md §1.3, §2.2):

  inputs   [lat, lon, C_in] = gather(concat(norm(frame_0), forcing_0, norm(frame_1),
                              forcing_1, static))[..., input_index]
                              with norm(x) = (x - mean) / std
  forcings [lat, lon, C_f]  = forcing at t + 12h
  targets  [lat, lon, C_t]  = (frame_2 - frame_1) / diffs_std   (variables that are inputs)
                              (frame_2 - mean) / std           (e.g. precipitation)

and a forecast step inverts the last line (`from_residual`). `build_inputs` and
`from_residual` accept NumPy or jax.numpy arrays, so the loader (NumPy, host) and
the jitted rollout use one definition.

The per-time arrays are either read whole into memory (`prepare`) or read from the
(lazy, on-disk) dataset a batch at a time (`prepare(..., streaming=True)`, a
`TimeReader` per array); both index the same way and give the same numbers, so
training from either is bitwise the same (docs/scaling.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minigencast import channel_order, stacking, variables


class Layout(NamedTuple):
    """Static per-channel data for one task and set of statistics (NumPy).

    Attributes:
      mean, std: [C_t] input normalisation of the target variables.
      diffs_std: [C_t] scale of 12 h residuals.
      is_residual: [C_t] bool, variable is also an input (predicted as a residual).
      fill: [C_t] value replacing NaNs (min(SST) for SST channels, 0 elsewhere).
      nan_fillable: [C_t] bool, channels whose NaNs are filled and re-inserted (SST).
      input_index: [C_in] int, gather index into the concat of per-time blocks.
      forcing_mean, forcing_std: [C_f]; static_mean, static_std: [C_s].
      num_input_times: int.
    """

    mean: np.ndarray
    std: np.ndarray
    diffs_std: np.ndarray
    is_residual: np.ndarray
    fill: np.ndarray
    nan_fillable: np.ndarray
    input_index: np.ndarray
    forcing_mean: np.ndarray
    forcing_std: np.ndarray
    static_mean: np.ndarray
    static_std: np.ndarray
    num_input_times: int


def static_channels(task) -> tuple[channel_order.Channel, ...]:
    """Static input channels (sorted, one each), e.g. geopotential_at_surface, land_sea_mask."""
    names = sorted(v for v in task.input_variables if v in variables.STATIC_VARIABLES)
    return tuple(channel_order.Channel(v) for v in names)


def build_layout(task, stats: dict) -> Layout:
    """The `Layout` of `task` given stats {"mean", "stddev", "diffs_stddev", "min"} Datasets.

    Variables absent from a statistics file are left unnormalised (mean 0, std 1), as
    DeepMind's normalisation does (docs/design.md §2.1).
    """
    targets = channel_order.target_channels(task)
    forcings = channel_order.forcing_channels(task)
    statics = static_channels(task)
    inputs = channel_order.input_channels(task)
    n_in_times = channel_order.num_input_times(task)

    def vec(channels, name, default):
        return stacking.channel_vector(channels, stats[name], default=default).astype(np.float32)

    is_residual = np.array([c.variable in task.input_variables for c in targets])
    nan_fillable = np.array([c.variable == variables.SST for c in targets])
    fill = np.zeros(len(targets), np.float32)
    if nan_fillable.any():
        fill[nan_fillable] = vec([c for c in targets if c.variable == variables.SST], "min", None)

    t_pos = {(c.variable, c.level): i for i, c in enumerate(targets)}
    f_pos = {c.variable: i for i, c in enumerate(forcings)}
    s_pos = {c.variable: i for i, c in enumerate(statics)}
    block = len(targets) + len(forcings)
    index = []
    for c in inputs:
        if c.variable in s_pos:
            index.append(n_in_times * block + s_pos[c.variable])
        elif c.variable in f_pos:
            index.append(c.time * block + len(targets) + f_pos[c.variable])
        elif (c.variable, c.level) in t_pos:
            index.append(c.time * block + t_pos[(c.variable, c.level)])
        else:
            raise ValueError(
                f"input variable {c.variable!r} is neither a target, a forcing nor static: "
                "minigencast feeds predictions back, so every dynamic input must be predicted"
            )
    return Layout(
        mean=vec(targets, "mean", 0.0),
        std=vec(targets, "stddev", 1.0),
        diffs_std=vec(targets, "diffs_stddev", 1.0),
        is_residual=is_residual,
        fill=fill,
        nan_fillable=nan_fillable,
        input_index=np.asarray(index, np.int32),
        forcing_mean=vec(forcings, "mean", 0.0),
        forcing_std=vec(forcings, "stddev", 1.0),
        static_mean=vec(statics, "mean", 0.0),
        static_std=vec(statics, "stddev", 1.0),
        num_input_times=n_in_times,
    )


# ----------------------------------------------------------------------------- arrays
def _level_sel(da, level):
    return da.sel(level=level) if level is not None and "level" in da.dims else da


def frames_from_dataset(ds, task, layout: Layout | None = None) -> np.ndarray:
    """[time, lat, lon, C_t] float32 physical target variables (NaNs filled if `layout`)."""
    blocks = []
    for c in channel_order.target_channels(task):
        if c.variable not in ds:
            raise ValueError(
                f"dataset has no variable {c.variable!r} that the model predicts; it has "
                f"{sorted(ds.data_vars)}"
            )
        da = _level_sel(ds[c.variable], c.level).transpose("time", "lat", "lon")
        blocks.append(np.asarray(da.values, np.float32))
    frames = np.stack(blocks, axis=-1)
    if layout is not None and layout.nan_fillable.any():
        frames = np.where(np.isnan(frames) & layout.nan_fillable, layout.fill, frames)
    return frames


def forcings_from_dataset(ds, task, layout: Layout) -> np.ndarray:
    """[time, lat, lon, C_f] float32 normalised forcings; `ds` must hold them."""
    n_lat, n_lon = ds.sizes["lat"], ds.sizes["lon"]
    blocks = []
    for c in channel_order.forcing_channels(task):
        if c.variable not in ds:
            raise ValueError(f"dataset has no forcing {c.variable!r}; add the forcings first")
        da = ds[c.variable]
        da = da.expand_dims({d: ds.sizes[d] for d in ("lat", "lon") if d not in da.dims})
        blocks.append(np.asarray(da.transpose("time", "lat", "lon").values, np.float32))
    out = np.stack(blocks, axis=-1)
    assert out.shape[1:3] == (n_lat, n_lon)
    return ((out - layout.forcing_mean) / layout.forcing_std).astype(np.float32)


def static_from_dataset(ds, task, layout: Layout) -> np.ndarray:
    """[lat, lon, C_s] float32 normalised static fields."""
    blocks = []
    for c in static_channels(task):
        if c.variable not in ds:
            raise ValueError(f"dataset has no static field {c.variable!r}")
        blocks.append(np.asarray(ds[c.variable].transpose("lat", "lon").values, np.float32))
    if not blocks:
        return np.zeros((ds.sizes["lat"], ds.sizes["lon"], 0), np.float32)
    out = np.stack(blocks, axis=-1)
    return ((out - layout.static_mean) / layout.static_std).astype(np.float32)


# ----------------------------------------------------------------------------- maths
def per_channel(vector, x):
    """A [C] vector shaped to broadcast against x [..., C] (explicit ranks, as in tests)."""
    return vector.reshape((1,) * (x.ndim - 1) + (-1,))


def normalise(frame, layout: Layout):
    """(x - mean) / std over the last (channel) axis."""
    return (frame - per_channel(layout.mean, frame)) / per_channel(layout.std, frame)


def build_inputs(xp, frames, forcings, static, layout: Layout):
    """Network inputs [..., lat, lon, C_in] from the input frames.

    Args:
      xp: numpy or jax.numpy.
      frames: [..., T_in, lat, lon, C_t] physical (NaN-filled) frames, oldest first.
      forcings: [..., T_in, lat, lon, C_f] normalised forcings at the input times.
      static: [lat, lon, C_s] normalised static fields.
    """
    n = frames.shape[-4]  # T_in (not layout.num_input_times: the layout may be traced)
    blocks = []
    for t in range(n):
        blocks += [normalise(frames[..., t, :, :, :], layout), forcings[..., t, :, :, :]]
    lead = blocks[0].shape[:-1]
    blocks.append(xp.broadcast_to(static, lead + static.shape[-1:]))
    stacked = xp.concatenate(blocks, axis=-1)
    return xp.take(stacked, xp.asarray(layout.input_index), axis=-1).astype(xp.float32)


def to_residual(xp, target_frame, last_frame, layout: Layout):
    """Normalised training target: (y - x_last)/diffs_std or (y - mean)/std per channel."""
    c = lambda v: per_channel(v, target_frame)  # noqa: E731
    residual = (target_frame - last_frame) / c(layout.diffs_std)
    absolute = (target_frame - c(layout.mean)) / c(layout.std)
    return xp.where(c(layout.is_residual), residual, absolute).astype(xp.float32)


def from_residual(xp, prediction, last_frame, layout: Layout):
    """Inverse of `to_residual`: the physical frame predicted from a normalised sample."""
    c = lambda v: per_channel(v, prediction)  # noqa: E731
    residual = prediction * c(layout.diffs_std) + last_frame
    absolute = prediction * c(layout.std) + c(layout.mean)
    return xp.where(c(layout.is_residual), residual, absolute)


def fill_nans(xp, frame, layout: Layout):
    """NaNs of fillable channels (SST) -> the fill value (min SST), others untouched."""
    fillable = xp.isnan(frame) & per_channel(layout.nan_fillable, frame)
    return xp.where(fillable, per_channel(layout.fill, frame), frame)


def make_fetch(frames, forcings, static: np.ndarray, layout: Layout, times=None):
    """fetch(window_frames [B, T_in + 1] int) -> {"inputs", "forcings", "targets"} (NumPy).

    Shapes: inputs [B, lat, lon, C_in], forcings [B, lat, lon, C_f],
    targets [B, lat, lon, C_t], all float32. `frames` and `forcings` are arrays or
    `TimeReader`s. A window holding NaN outside SST (whose NaNs are filled) is refused
    with a ValueError naming its times (`times`: [time] datetimes of the frames).
    """

    def fetch(window):
        window = np.asarray(window)
        f, g = frames[window], forcings[window]  # one read each: [B, T_in + 1, lat, lon, C]
        f_in = f[:, :-1]  # [B, T_in, lat, lon, C_t]
        example = {
            "inputs": build_inputs(np, f_in, g[:, :-1], static, layout),
            "forcings": g[:, -1],
            "targets": to_residual(np, f[:, -1], f_in[:, -1], layout),
        }
        bad = np.zeros(len(window), bool)
        for v in example.values():
            bad |= np.isnan(v).reshape(len(window), -1).any(axis=1)
        if bad.any():
            w = window[np.argmax(bad)]
            at = w.tolist() if times is None else np.datetime_as_string(times[w], unit="s")
            raise ValueError(
                f"the training window at times {', '.join(map(str, at))} holds NaN outside "
                "SST; repair the data "
                "or leave such windows out (TrainConfig.skip_nan_windows, --skip_nan_windows)"
            )
        return example

    return fetch


def nan_times(frames, forcings, chunk: int = 64, progress: bool = False) -> np.ndarray:
    """[time] bool: the frame (NaN-filled) or forcing of that time holds a NaN.

    Reads the arrays (or `TimeReader`s) `chunk` times at a time: one pass over the data.
    """
    import tqdm

    n = len(frames)
    out = np.zeros(n, bool)
    for start in tqdm.trange(0, n, chunk, disable=not progress, desc="NaN scan"):
        idx = np.arange(start, min(start + chunk, n))
        for arr in (frames, forcings):
            out[idx] |= np.isnan(arr[idx]).reshape(len(idx), -1).any(axis=1)
    return out


def roll_longitude(example: dict, rng: np.random.Generator, rows=None, batch_size=None) -> dict:
    """Rotates each window of a batch about the polar axis by a random whole grid column.

    example[k][b] -> np.roll(example[k][b], s_b, axis=lon), s_b ~ U{0, ..., num_lon - 1},
    the same s_b for the inputs, forcings and targets of window b. The rotated window is
    the same weather over a rotated planet: the land mask and the other static inputs
    turn with it, and so does day_progress, which is local solar time (each column keeps
    its own). It is an exact symmetry of a world whose only longitude dependence is in
    those inputs (the toy planet), up to year_progress, which is off by < 1 day.

    With several processes `example` holds the rows `rows` (a slice) of a global batch of
    `batch_size` windows: the shifts are drawn for the whole batch and sliced, so each
    window turns as it would in one process.
    """
    num_lon = example["inputs"].shape[-2]
    size = example["inputs"].shape[0] if batch_size is None else batch_size
    shifts = rng.integers(0, num_lon, size=size)[slice(None) if rows is None else rows]
    return {
        k: np.stack([np.roll(x, s, axis=-2) for x, s in zip(v, shifts, strict=True)])
        for k, v in example.items()
    }


# ----------------------------------------------------------------------------- datasets
def read_stats(folder: str) -> dict:
    """The four statistics files of DeepMind's layout (docs/design.md §2.1) from `folder`."""
    from minigencast import normalization

    return normalization.load_stats(folder)


def write_stats(stats: dict, folder: str) -> None:
    """Writes `stats` as DeepMind's four files into `folder` (inverse of `read_stats`)."""
    from minigencast import normalization

    normalization.write_stats(stats, folder)


class TimeReader:
    """A [time, ...] array read from a (lazy, on-disk) Dataset on demand.

    `reader[index]` (an int, a slice or an int array of any shape) returns what
    `array[index]` would if the whole array were in memory: it reads each distinct
    time once, `read(ds.isel(time=sorted unique times))` -> [n, ...] NumPy, and
    gathers. Memory is that of the times asked for, not of the dataset. A file that
    cannot be read is reported with its path and time range.
    """

    def __init__(self, ds, read, shape: tuple, name: str = "data"):
        self.ds, self.read, self.shape, self.name = ds, read, tuple(shape), name
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        idx = np.arange(self.shape[0])[index]
        unique, inverse = np.unique(idx, return_inverse=True)
        try:  # One load per batch: each chunk of a (dask, zarr) store is read once.
            block = self.read(self.ds.isel(time=unique).load())
        except (OSError, RuntimeError) as e:  # netCDF4/HDF5/zarr read failures
            times = self.ds["time"].values[unique].astype("datetime64[s]")
            raise ValueError(
                f"cannot read the {self.name} of {source_of(self.ds)} at times "
                f"{times.min()} .. {times.max()}: {e}"
            ) from e
        return block[inverse.reshape(np.shape(idx))]


def source_of(ds) -> str:
    """The file a Dataset was opened from (xarray's `encoding["source"]`), if known."""
    for obj in (ds, *ds.data_vars.values()):
        if obj.encoding.get("source"):
            return str(obj.encoding["source"])
    return "the dataset"


class Prepared(NamedTuple):
    """A dataset as the arrays of this module (host NumPy, or `TimeReader`s if streaming)."""

    times: np.ndarray  # [time] datetime64[ns]
    lat: np.ndarray  # [lat] degrees, ascending
    lon: np.ndarray  # [lon] degrees, from 0
    frames: np.ndarray | TimeReader  # [time, lat, lon, C_t] physical, NaNs filled
    raw_frames: np.ndarray | TimeReader  # [time, lat, lon, C_t] physical, NaNs kept
    forcings: np.ndarray | TimeReader  # [time, lat, lon, C_f] normalised
    static: np.ndarray  # [lat, lon, C_s] normalised
    layout: Layout


def prepare(ds, task, stats: dict, streaming: bool = False) -> Prepared:
    """Canonical Dataset (time, [level,] lat, lon) -> `Prepared` arrays for `task`.

    Adds the progress forcings if absent, checks the grid (ascending latitudes incl.
    poles, longitudes from 0) and every variable the task needs. With `streaming`
    the per-time arrays stay on disk as `TimeReader`s (`ds` should be opened lazily:
    `xarray.open_dataset` / `open_zarr`); the first time is read once as a check.
    """
    from minigencast import geometry
    from minigencast.data import forcings as forcings_lib
    from minigencast.data import layouts

    if "time" not in ds.dims:
        raise ValueError(f"dataset needs a `time` dimension; it has {dict(ds.sizes)}")
    layouts.check_variables(ds, list(dict.fromkeys(task.target_variables)))  # with fix hints
    if "level" in ds.dims:
        present = sorted(int(v) for v in ds["level"].values)
        missing = sorted(set(task.pressure_levels) - set(present))
        if missing:
            in_pa = not set(task.pressure_levels) - {p // 100 for p in present if p % 100 == 0}
            raise ValueError(
                f"dataset lacks pressure levels {missing} (hPa) that the model uses; it has "
                f"{present}" + (". They look like Pa: divide `level` by 100." if in_pa else "")
            )
    lat, lon = geometry.check_grid(ds["lat"].values, ds["lon"].values)
    layout = build_layout(task, stats)
    times = np.asarray(ds["time"].values, "datetime64[ns]")
    static = static_from_dataset(ds, task, layout)

    def read_raw(piece):
        return frames_from_dataset(piece, task)

    def read_frames(piece):
        return fill_nans(np, frames_from_dataset(piece, task), layout).astype(np.float32)

    def read_forcings(piece):
        return forcings_from_dataset(forcings_lib.add_progress_features(piece), task, layout)

    if not streaming:
        raw, forcings = read_raw(ds), read_forcings(ds)
        frames = fill_nans(np, raw, layout).astype(np.float32)
    else:
        grid = (len(times), len(lat), len(lon))
        levels = set(task.pressure_levels)

        def subset(names):  # Only what is needed is read: the variables, the levels.
            sub = ds.drop_vars([v for v in ds.data_vars if v not in names])
            if "level" in sub.dims:
                sub = sub.sel(level=[v for v in sub["level"].values if int(v) in levels])
            return sub

        raw, frames, forcings = (
            TimeReader(subset(names), read, grid + (len(channels(task)),), name)
            for read, names, channels, name in (
                (read_raw, task.target_variables, channel_order.target_channels, "frames"),
                (read_frames, task.target_variables, channel_order.target_channels, "frames"),
                (read_forcings, task.forcing_variables, channel_order.forcing_channels, "forcings"),
            )
        )
        for reader in (frames, forcings):  # Missing variables and grid mismatches now.
            if reader[:1].shape != (1,) + reader.shape[1:]:
                raise ValueError(f"{reader.name} read as {reader[:1].shape[1:]}, not {grid}")
    return Prepared(times, lat, lon, frames, raw, forcings, static, layout)


def future_forcings(times, lon, task, layout: Layout) -> np.ndarray:
    """[time, lat?, lon, C_f] normalised forcings for arbitrary (future) valid times.

    Returns [time, 1, lon, C_f] (the progress features do not depend on latitude);
    broadcast against [time, lat, lon, C_f] as needed.
    """
    import xarray

    from minigencast.data import forcings as forcings_lib

    ds = xarray.Dataset(
        coords={"time": np.asarray(times, "datetime64[ns]"), "lat": [0.0], "lon": np.asarray(lon)}
    )
    ds = forcings_lib.add_progress_features(ds)
    return forcings_from_dataset(ds, task, layout)
