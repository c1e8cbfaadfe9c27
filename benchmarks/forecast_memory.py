"""Host memory of a forecast file's layout: the whole forecast in NumPy vs the lazy template.

`ForecastWriter` lays out the whole file (dims, coordinates, attributes) before the first
step. Built from `np.zeros` of the forecast's size and copied per variable (the earlier
way, `forecast.chunk_to_dataset` on a NumPy array), that costs the whole forecast in host
memory; `forecast.forecast_template` builds it from lazy dask zeros that are never
computed. Each case runs in a child process and prints its peak RSS before and after
building the layout and opening the writer (`getrusage(RUSAGE_SELF).ru_maxrss`).

    python benchmarks/forecast_memory.py            # 1 deg, 8 members x 10 steps, both ways
    python benchmarks/forecast_memory.py --quarter  # adds 0.25 deg, 8 x 30 steps, lazy only

(The NumPy way at 0.25 deg, 78 GB, is not run: it would not fit this machine.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, resource, sys
import numpy as np
from minigencast import channel_order, config, forecast

way, n_lat, n_lon, members, steps, out = sys.argv[1:]
n_lat, n_lon, members, steps = int(n_lat), int(n_lon), int(members), int(steps)
task = config.gencast_task()
shape = (1, members, steps, n_lat, n_lon, len(channel_order.target_channels(task)))
args = (task, np.array(["2020-01-01"], "datetime64[ns]"),
        np.arange(1, steps + 1) * np.timedelta64(12, "h"),
        np.linspace(-90, 90, n_lat), np.arange(n_lon) * 360 / n_lon)
gb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
before = gb()
if way == "numpy":
    template = forecast.chunk_to_dataset(np.zeros(shape, np.float32), *args)
else:
    template = forecast.forecast_template(shape, *args)
forecast.ForecastWriter(out, template).abort()
print(json.dumps({"forecast_gb": np.prod(shape) * 4 / 2**30, "before": before, "after": gb()}))
"""


def measure(way: str, n_lat: int, n_lon: int, members: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        args = [way, n_lat, n_lon, members, steps, os.path.join(d, "fc.nc")]
        out = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, args)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quarter", action="store_true", help="also 0.25 deg, 8 x 30 steps")
    args = p.parse_args()
    cases = [("1 deg, 8 x 10", way, 181, 360, 8, 10) for way in ("numpy", "lazy")]
    if args.quarter:
        cases.append(("0.25 deg, 8 x 30", "lazy", 721, 1440, 8, 30))
    print(f"{'case':18} {'layout':8} {'forecast GB':>12} {'peak RSS GB before':>19} {'after':>7}")
    for name, way, *size in cases:
        r = measure(way, *size)
        print(f"{name:18} {way:8} {r['forecast_gb']:12.2f} {r['before']:19.2f} {r['after']:7.2f}")


if __name__ == "__main__":
    main()
