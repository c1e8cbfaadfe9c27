"""Several processes (hosts), one program: JAX's multi-controller runtime.

Every process runs the same Python program on its own devices; `jax.devices()` lists
the devices of all processes, so the meshes of `train.py` ("batch") and `forecast.py`
("sample") span them all and XLA's collectives (NCCL, ICI, or gloo on CPU) cross
process boundaries. What changes with several processes is only at the edges:

  * start-up: `initialize` calls `jax.distributed.initialize` before any JAX work;
  * input: each process reads only its rows of a global batch (`process_rows`) and
    hands them to `jax.make_array_from_process_local_data` (`global_batch`);
  * output: arrays sharded over processes are gathered (`gather`); files are written
    by process 0 only (`is_main`), after which the others wait (`barrier`).

With one process every function here is the identity (or a no-op). The setup and a
worked example are in docs/scaling.md; JAX's guide: https://docs.jax.dev/en/latest/
multi_process.html.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils

ENV = {
    "coordinator_address": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}


def initialize(coordinator_address=None, num_processes=None, process_id=None) -> int:
    """Joins the processes of one run; returns the number of processes.

    Each argument falls back to its environment variable (`ENV`). If none is set,
    `jax.distributed.initialize()` is tried with nothing, which finds SLURM, Open MPI
    and Cloud TPU pods as JAX does; anywhere else, or once JAX has started its devices
    (e.g. in a notebook), the run stays one process. With arguments it must run before
    anything touches a JAX device. Calling it again does nothing.
    """
    if jax.distributed.is_initialized():
        return jax.process_count()
    given = {"coordinator_address": coordinator_address}
    given["num_processes"] = num_processes
    given["process_id"] = process_id
    for name, var in ENV.items():
        if given[name] is None and os.environ.get(var):
            given[name] = os.environ[var] if name == "coordinator_address" else int(os.environ[var])
    if any(v is not None for v in given.values()):
        jax.distributed.initialize(**given)
    else:
        try:  # JAX's own cluster detection; raises ValueError when there is no cluster.
            jax.distributed.initialize()
        except ValueError:  # No cluster found.
            pass
        except RuntimeError as e:  # JAX already started its devices: stay one process.
            if "must be called before" not in str(e):
                raise
    return jax.process_count()


def is_main() -> bool:
    """True in process 0, the one that writes files."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def process_rows(sharding, size: int) -> slice:
    """The rows of a global [size, ...] array sharded by `sharding` (along its leading
    dim) that live on this process's devices: one contiguous slice."""
    index = sharding.addressable_devices_indices_map((size,))
    starts = [s[0].indices(size)[0] for s in index.values()]
    stops = [s[0].indices(size)[1] for s in index.values()]
    rows = slice(min(starts), max(stops))
    if sum(b - a for a, b in set(zip(starts, stops, strict=True))) != rows.stop - rows.start:
        raise ValueError(f"this process's devices hold non-contiguous rows of {size}")
    return rows


def global_batch(local, sharding, size: int):
    """A global array [size, ...] sharded by `sharding` from each process's rows
    (`process_rows`); with one process, `jax.device_put`."""
    if jax.process_count() == 1:
        return jax.device_put(local, sharding)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, x, (size,) + x.shape[1:]),
        local,
    )


def gather(x) -> np.ndarray:
    """The whole value of a (possibly process-spanning) array as NumPy, in every process."""
    if jax.process_count() == 1 or x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
