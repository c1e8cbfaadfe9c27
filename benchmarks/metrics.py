"""Benchmark: fair CRPS of a 50-member 1 deg global field (181 x 360) for 30 lead times.

    python benchmarks/metrics.py [--members 50] [--leads 30] [--dask]

Prints seconds for our O(M log M) sorted CRPS (float32 input, blocked float64 kernel)
and, for comparison, the `scores` package's CRPS (also sorting-based) on a slice.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
import xarray as xr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from anywhere
from minigencast import metrics  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=50)
    p.add_argument("--leads", type=int, default=30)
    p.add_argument("--dask", action="store_true", help="Also time a dask-chunked (lazy) run.")
    args = p.parse_args()
    m, n_lead = args.members, args.leads
    lat, lon = np.linspace(-90, 90, 181), np.arange(360.0)
    rng = np.random.default_rng(0)
    truth = xr.DataArray(
        rng.standard_normal((n_lead, 181, 360), dtype=np.float32),
        dims=["lead_time", "lat", "lon"],
        coords={"lead_time": np.arange(n_lead), "lat": lat, "lon": lon},
    )
    noise = rng.standard_normal((m, n_lead, 181, 360), dtype=np.float32)
    forecast = truth + xr.DataArray(noise, dims=["sample", "lead_time", "lat", "lon"])
    print(f"forecast {dict(forecast.sizes)}, {forecast.nbytes / 1e6:.0f} MB float32")

    t0 = time.perf_counter()
    out = metrics.crps(forecast, truth, preserve_dims=["lead_time"])
    t1 = time.perf_counter()
    print(
        f"fair CRPS, {n_lead} lead times (numpy): {t1 - t0:.2f} s   (mean {float(out.mean()):.4f})"
    )

    if args.dask:
        lazy = forecast.chunk({"lead_time": 5})
        t0 = time.perf_counter()
        out2 = metrics.crps(lazy, truth, preserve_dims=["lead_time"]).compute()
        t1 = time.perf_counter()
        print(f"fair CRPS (dask, lead chunks of 5): {t1 - t0:.2f} s")
        np.testing.assert_allclose(out2.values, out.values, rtol=1e-5)

    # The `scores` package (our test oracle) also sorts the members (Hersbach 2000), in
    # plain xarray operations; timed on a few lead times and scaled.
    import scores.probability

    k = min(5, n_lead)
    t0 = time.perf_counter()
    scores.probability.crps_for_ensemble(
        forecast.isel(lead_time=slice(0, k)),
        truth.isel(lead_time=slice(0, k)),
        "sample",
        method="fair",
        preserve_dims=["lead_time"],
    )
    t1 = time.perf_counter()
    print(
        f"scores.crps_for_ensemble, {k} lead times: {t1 - t0:.2f} s "
        f"(x{n_lead / k:g} = {(t1 - t0) * n_lead / k:.1f} s for {n_lead})"
    )


if __name__ == "__main__":
    main()
