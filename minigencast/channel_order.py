"""The channel order of GenCast's stacked grid arrays, from a task config (NumPy only).

GenCast's network sees every grid node as one feature vector. DeepMind builds it with
`model_utils.dataset_to_stacked`: take the data variables in Python `sorted()` order
(digits before letters: `10m_u...` < `2m_temperature` < `day_progress_cos` < ...); for each
variable flatten every dim except (batch, lat, lon) into channels *in the variable's own
dim order* (time-major, level-minor for the example data); broadcast variables without
lat/lon (the progress features) to the grid. The denoiser's grid input is

    [ inputs (sorted) | forcings and c_in * noisy targets (sorted together) | structural ]

so the target-time forcings are interleaved alphabetically with the noisy targets; this
module gives that interleave as a static index permutation (`interleave_index`).

The network sizes its parameters from these lists; `stacking.py` turns Datasets into
arrays in the same order (docs/design.md §1.4).

Reference: DeepMind graphcast@d39de19, graphcast/model_utils.py (`dataset_to_stacked`)
and graphcast/denoiser.py (`Denoiser.__call__`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from minigencast import variables


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
    the concatenated channel list gives the order (docs/design.md §1.4, channels 176-263).
    """
    channels = forcing_channels(task) + target_channels(task)
    return np.argsort([c.variable for c in channels], kind="stable").astype(np.int32)
