"""Benchmark: the default forecast path's speed against an earlier commit, side by side.

    python benchmarks/forecast_speed.py --baseline 523e13d [--repeats 7]
        [--members 8 --inits 4 --steps 4] [--baseline_path DIR] [--new REF] [--json PATH]

Two persistent worker processes, one per source tree (this one, or a temporary `git
worktree` of `--new`; and the baseline: a temporary worktree of `--baseline` or an
existing checkout `--baseline_path`; temporary worktrees are removed at the end),
each with `PYTHONPATH` and the working directory set to its tree. Each imports
minigencast from its tree, sets the CLI's XLA flags (`cli.use_cpu_xla_flags`), loads the
shipped model (`data/pretrained`, `forecast.load_model`) and the embedded test split,
and runs `forecast.run(..., metadata=..., progress=False)` once to compile. Then, for
every line the parent writes to its stdin, it runs the same forecast again and prints its
wall seconds (`time.perf_counter`, the returned Dataset loaded). The parent alternates the
workers, swapping their order every round (A B B A A B ...), so that the machine's load
falls on both alike, and prints per tree the median and the minimum, the ratios
new / baseline, and "within 3 %: yes" when the ratio of medians is at most 1.03.

It checks that both forecasts have the same variables and shapes, and reports (does not
assert) whether they are equal: since issue 23 each init time has its own noise keys.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1.03


def worker(members: int, inits: int, steps: int, dump: str) -> None:
    """Runs in a tree: warm up, describe the forecast, then time one forecast per stdin line."""
    import numpy as np

    import minigencast
    from minigencast import cli, data, forecast, normalization

    reply, sys.stdout = sys.stdout, sys.stderr  # stdout carries only the replies
    xla_flags = cli.use_cpu_xla_flags()  # before JAX's first computation
    params, cfg, metadata = forecast.load_model("data/pretrained")
    stats = normalization.load_stats("data/pretrained/stats")
    test = data.load_embedded("test")
    init_times = test.time.values[1 : 1 + inits]  # the init is the last of two input frames

    def once():
        ds = forecast.run(
            params, cfg, test, stats, init_times, steps, members, metadata=metadata, progress=False
        )
        return ds.load()

    ds = once()
    np.savez(dump, **{name: ds[name].values for name in ds.data_vars})
    info = {"module": minigencast.__file__, "xla_flags": xla_flags}
    print(json.dumps(info), file=reply, flush=True)
    for _ in sys.stdin:
        t0, c0 = time.perf_counter(), time.process_time()
        once()
        print(time.perf_counter() - t0, time.process_time() - c0, file=reply, flush=True)


def start(tree: str, args, dump: str) -> tuple[subprocess.Popen, dict]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--dump", dump]
    cmd += ["--members", str(args.members), "--inits", str(args.inits), "--steps", str(args.steps)]
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the worker in {tree} failed to start (see its error above)")
    info = json.loads(line)
    if not os.path.realpath(info["module"]).startswith(os.path.realpath(tree) + os.sep):
        raise SystemExit(f"the worker for {tree} imported minigencast from {info['module']}")
    return proc, info


def time_once(proc: subprocess.Popen) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all the worker's threads) of one forecast."""
    proc.stdin.write("\n")
    proc.stdin.flush()
    wall, cpu = proc.stdout.readline().split()
    return float(wall), float(cpu)


def compare(new_dump: str, base_dump: str) -> bool:
    """Same variables and shapes (else exit 1); returns whether the values are equal."""
    import numpy as np

    new, base = np.load(new_dump), np.load(base_dump)
    shapes = [{k: f[k].shape for k in f.files} for f in (new, base)]
    if shapes[0] != shapes[1]:
        raise SystemExit(f"the forecasts differ in shape: new {shapes[0]}, baseline {shapes[1]}")
    return all(np.array_equal(new[k], base[k], equal_nan=True) for k in new.files)


@contextlib.contextmanager
def checkout(ref: str, path: str):
    """A temporary detached `git worktree` of `ref` at `path`, removed on exit."""
    git = ["git", "-C", ROOT, "worktree"]
    if subprocess.run([*git, "add", "--detach", "--quiet", path, ref]).returncode:
        name = os.path.basename(sys.argv[0])
        print(f"{name}: error: {ref}: git worktree add failed", file=sys.stderr)
        sys.exit(2)
    try:
        yield path
    finally:
        subprocess.run([*git, "remove", "--force", path], check=True)


def measure(args, trees: dict, tmp: str) -> dict:
    import numpy as np

    dumps = {name: os.path.join(tmp, f"{name}.npz") for name in trees}
    workers, infos = {}, {}
    try:
        for name, tree in trees.items():  # one at a time: compiling is not what we time
            workers[name], infos[name] = start(tree, args, dumps[name])
        if infos["new"]["xla_flags"] != infos["baseline"]["xla_flags"]:
            raise SystemExit(f"the workers' XLA_FLAGS differ: {infos}")
        times = {name: [] for name in trees}
        for r in range(args.repeats):
            for name in ("new", "baseline") if r % 2 == 0 else ("baseline", "new"):
                times[name].append(time_once(workers[name]))
    finally:
        for proc in workers.values():
            proc.stdin.close()
            proc.wait()
    result = {}
    for name, t in times.items():
        wall, cpu = [w for w, _ in t], [c for _, c in t]
        result[name] = {"median_s": float(np.median(wall)), "min_s": min(wall), "times_s": wall}
        result[name] |= {"cpu_median_s": float(np.median(cpu)), "cpu_s": cpu}
    result["ratio_median"] = result["new"]["median_s"] / result["baseline"]["median_s"]
    result["ratio_min"] = result["new"]["min_s"] / result["baseline"]["min_s"]
    result["ratio_cpu_median"] = result["new"]["cpu_median_s"] / result["baseline"]["cpu_median_s"]
    result["within_3_percent"] = result["ratio_median"] <= TOLERANCE
    # CPU-seconds are steadier than wall time on a shared machine.
    result["within_3_percent_cpu"] = result["ratio_cpu_median"] <= TOLERANCE
    result["forecasts_equal"] = compare(dumps["new"], dumps["baseline"])
    result["xla_flags"] = infos["new"]["xla_flags"]
    result["setting"] = {
        k: getattr(args, k)
        for k in ("new", "baseline", "baseline_path", "repeats", "members", "inits", "steps")
    }
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--baseline", default="523e13d", help="git ref to compare with (default: %(default)s)"
    )
    p.add_argument(
        "--baseline_path", help="an existing checkout of the baseline, instead of --baseline"
    )
    p.add_argument("--new", help="git ref to time instead of this tree (e.g. a merge commit)")
    p.add_argument("--repeats", type=int, default=7, help="timed forecasts per tree")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--inits", type=int, default=4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--json", help="also write the numbers to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dump", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.members, args.inits, args.steps, args.dump)
    if min(args.repeats, args.members, args.inits, args.steps) < 1:
        p.error("--repeats, --members, --inits and --steps must be >= 1")
    if args.baseline_path and not os.path.isdir(os.path.join(args.baseline_path, "minigencast")):
        p.error(f"--baseline_path {args.baseline_path}: no minigencast/ folder there")
    if args.json and os.path.exists(args.json):
        p.error(f"--json {args.json}: exists already; give a new path")

    with tempfile.TemporaryDirectory(prefix="forecast_speed_") as tmp, contextlib.ExitStack() as st:
        trees = {
            "new": st.enter_context(checkout(args.new, f"{tmp}/new")) if args.new else ROOT,
            "baseline": os.path.abspath(args.baseline_path)
            if args.baseline_path
            else st.enter_context(checkout(args.baseline, f"{tmp}/baseline")),
        }
        r = measure(args, trees, tmp)

    base = args.baseline_path or args.baseline
    print(f"{args.members} members x {args.inits} inits x {args.steps} steps, ", end="")
    print(f"{args.repeats} runs each, XLA_FLAGS={r['xla_flags']!r}")
    for name, label in (("new", args.new or "this tree"), ("baseline", f"baseline {base}")):
        t = r[name]
        times = " ".join(f"{x:.3f}" for x in t["times_s"])
        print(f"{label:>24}: median {t['median_s']:.3f} s, min {t['min_s']:.3f} s ({times})")
        print(f"{'':>24}  CPU-seconds median {t['cpu_median_s']:.2f}")
    print(f"new / baseline: median {r['ratio_median']:.4f}, min {r['ratio_min']:.4f}")
    print(f"new / baseline CPU-seconds: median {r['ratio_cpu_median']:.4f}")
    print(f"forecasts equal: {'yes' if r['forecasts_equal'] else 'no'} (same variables and shapes)")
    print(f"within 3 %: {'yes' if r['within_3_percent'] else 'no'} (wall median), ", end="")
    print(f"{'yes' if r['within_3_percent_cpu'] else 'no'} (CPU-seconds median)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
