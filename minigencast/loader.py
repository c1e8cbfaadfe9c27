"""Streaming training windows: (2 input frames, target, forcings), shuffled, prefetched.

A training example for GenCast is a *window* of three valid times
(t - 12 h, t, t + 12 h): the two input frames and the 12 h target (docs/design.md §1.3).
This module only decides *which* windows, in *which order*, and fetches them in a
background thread; turning a window into arrays is the job of a `fetch(indices)`
function (see `arrays.make_fetch`), so the same loader serves any dataset.

  * Windows are found by time lookup, not by position: a window exists at t when
    t - 12 h and t + 12 h are both in the dataset. Gaps and 6-hourly data are
    therefore handled without special cases (windows across a gap are skipped).
  * Train/validation split by time: the last `validation_fraction` of the time span
    is held out; a window belongs to a split only if all three of its times do.
  * The shuffle of epoch e is `default_rng([seed, e]).permutation(...)`, so the order
    depends only on (seed, epoch) and a run can resume at any (epoch, batch).
  * Optional augmentation `augment(batch, rng, ...)` (`arrays.roll_longitude`) draws
    from `default_rng([seed, epoch, batch, 1])`, so it too is fixed by the position.
  * A daemon thread fills a bounded queue (`prefetch` batches ahead) so the
    accelerator (or the CPU's XLA threads) never waits for NumPy gathering, nor for
    the disk when `fetch` reads from it (`arrays.prepare(..., streaming=True)`).
  * With several processes (`rows`), every process walks the same global order and
    fetches only its rows of each global batch (docs/scaling.md).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

STEP = np.timedelta64(12, "h")


def window_targets(times: np.ndarray, step: np.timedelta64 = STEP) -> np.ndarray:
    """Indices i into `times` such that times[i] - step and times[i] + step exist.

    Returns the index of the *last input frame* t of each valid window, [num_windows].
    Raises ValueError if `times` are not strictly increasing.
    """
    t = np.asarray(times).astype("datetime64[s]").astype(np.int64)
    if t.ndim != 1 or (t.size > 1 and np.any(np.diff(t) <= 0)):
        raise ValueError("dataset times must be one-dimensional and strictly increasing")
    s = int(step / np.timedelta64(1, "s"))
    present = set(t.tolist())
    return np.array(
        [i for i, ti in enumerate(t) if (ti - s) in present and (ti + s) in present], np.int64
    )


def window_frames(times: np.ndarray, centre: np.ndarray, step=STEP) -> np.ndarray:
    """[num_windows, 3] indices of (t - 12 h, t, t + 12 h) for window centres `centre`."""
    t = np.asarray(times).astype("datetime64[s]").astype(np.int64)
    s = int(step / np.timedelta64(1, "s"))
    c = t[centre]
    return np.stack(
        [np.searchsorted(t, c - s), np.asarray(centre), np.searchsorted(t, c + s)], axis=-1
    )


def split_by_time(times: np.ndarray, validation_fraction: float, step=STEP):
    """(train_windows, validation_windows) as [n, 3] frame indices, split in time.

    The split time is the quantile `1 - validation_fraction` of the time span; a
    window is in a split only if all its three frames are on that side, so no
    frame is shared between training and validation.
    """
    t = np.asarray(times).astype("datetime64[s]")
    frames = window_frames(times, window_targets(times, step), step)
    if validation_fraction <= 0:
        return frames, frames[:0]
    t0, t1 = t[0].astype(np.int64), t[-1].astype(np.int64)
    split = t0 + int((1.0 - validation_fraction) * (t1 - t0))
    ft = t.astype(np.int64)[frames]
    train = frames[np.all(ft < split, axis=-1)]
    valid = frames[np.all(ft >= split, axis=-1)]
    return train, valid


def epoch_order(num_windows: int, seed: int, epoch: int) -> np.ndarray:
    """The reproducible shuffle of one epoch: a permutation keyed by (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(num_windows)


class WindowLoader:
    """Iterates over shuffled batches of windows, forever, from a saved position.

    Args:
      windows: [num_windows, 3] frame indices (from `split_by_time`).
      fetch: fetch(frames [batch, 3] int) -> pytree of NumPy arrays with leading batch.
      batch_size: windows per batch; the last incomplete batch of an epoch is dropped.
      seed: shuffle seed.
      prefetch: batches prepared ahead in a background thread (0: synchronous).
      position: {"epoch": e, "batch": b}, the next batch to produce (for resuming).
      augment: augment(batch, rng, rows=, batch_size=) -> batch, applied to every batch
        (None: off); `rows` and `batch_size` locate the fetched rows in the global batch.
      rows: slice of each global batch this process fetches (None: all of it).

    Iterating yields (position_after, batch): `position_after` is where a run
    resumed after this batch continues.
    """

    def __init__(
        self,
        windows: np.ndarray,
        fetch: Callable,
        batch_size: int,
        seed: int = 0,
        prefetch: int = 2,
        position: dict | None = None,
        augment: Callable | None = None,
        rows: slice | None = None,
    ):
        windows = np.asarray(windows)
        if len(windows) < batch_size:
            raise ValueError(
                f"only {len(windows)} training windows for batch size {batch_size}; "
                "use a longer dataset, a smaller batch or a smaller validation fraction"
            )
        self.windows = windows
        self.fetch = fetch
        self.batch_size = batch_size
        self.seed = seed
        self.prefetch = prefetch
        self.batches_per_epoch = len(windows) // batch_size
        self.position = dict(position or {"epoch": 0, "batch": 0})
        self.augment = augment
        self.rows = slice(None) if rows is None else rows

    def _frames(self, epoch: int, batch: int) -> np.ndarray:
        order = epoch_order(len(self.windows), self.seed, epoch)
        sel = order[batch * self.batch_size : (batch + 1) * self.batch_size]
        return self.windows[sel][self.rows]

    def _positions(self) -> Iterator[tuple[dict, dict]]:
        epoch, batch = self.position["epoch"], self.position["batch"]
        while True:
            if batch >= self.batches_per_epoch:
                epoch, batch = epoch + 1, 0
            here = {"epoch": epoch, "batch": batch}
            batch += 1
            yield here, {"epoch": epoch, "batch": batch}

    def _produce(self, here: dict):
        batch = self.fetch(self._frames(here["epoch"], here["batch"]))
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, here["epoch"], here["batch"], 1])
            batch = self.augment(batch, rng, rows=self.rows, batch_size=self.batch_size)
        return batch

    def __iter__(self):
        if self.prefetch <= 0:
            for here, after in self._positions():
                batch = self._produce(here)
                self.position = after
                yield after, batch
            return
        yield from self._prefetched()

    def _prefetched(self):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def worker():
            try:
                for here, after in self._positions():
                    item = (after, self._produce(here))
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as e:  # Surface the worker's error in the consumer.
                q.put(("error", e))

        thread = threading.Thread(target=worker, daemon=True, name="window-prefetch")
        thread.start()
        try:
            while True:
                after, batch = q.get()
                if after == "error":
                    raise batch
                self.position = after
                yield after, batch
        finally:
            stop.set()
