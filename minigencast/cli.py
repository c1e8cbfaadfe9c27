"""The `minigencast` command line.

Every subcommand is a thin shell around a Python function of the package (its
"API twin"), named in the subcommand's help; the CLI only parses flags and calls it.

  minigencast quickstart        train (or load) a small model, forecast, verify
  minigencast data toy-planet   generate the embedded toy-planet dataset
  minigencast download          fetch DeepMind's GenCast files (hash-pinned)
  minigencast stats             normalisation statistics of a dataset
  minigencast info              sizes and costs of a configuration
  minigencast train             train a denoiser
  minigencast forecast          roll out an ensemble forecast
  minigencast evaluate          verify a forecast; draw the paper's figures

Each subcommand lives in a pair of functions below, `_add_<name>(subparsers)` and
`_run_<name>(args)`. Imports of heavy modules happen inside `_run_*` so that
`minigencast --help` is instant.
"""

from __future__ import annotations

import argparse
import sys


# --------------------------------------------------------------------------- quickstart
def _add_quickstart(sub):
    p = sub.add_parser(
        "quickstart",
        help="Train (or load) a small model on the embedded dataset, forecast and verify it.",
        description="API twin: minigencast.quickstart.quickstart().",
    )
    p.add_argument("--out", default="quickstart_out", help="Output folder (default: %(default)s).")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="Load the small checkpoint shipped in data/ instead of training.",
    )
    p.set_defaults(run=_run_quickstart)


def _run_quickstart(args):
    from minigencast import quickstart

    quickstart.quickstart(out=args.out, pretrained=args.pretrained)


# --------------------------------------------------------------------------- data
def _add_data(sub):
    p = sub.add_parser("data", help="Datasets: `minigencast data toy-planet` generates the embedded toy-planet dataset.")
    p.set_defaults(run=_run_data)


def _run_data(args):
    raise NotImplementedError("`minigencast data` is being built (issue 4 (data layer)).")


# --------------------------------------------------------------------------- download
def _add_download(sub):
    p = sub.add_parser("download", help="Fetch DeepMind's GenCast stats, example data and checkpoints (sha256-pinned).")
    p.set_defaults(run=_run_download)


def _run_download(args):
    raise NotImplementedError("`minigencast download` is being built (issue 4 (data layer)).")


# --------------------------------------------------------------------------- stats
def _add_stats(sub):
    p = sub.add_parser("stats", help="Compute the four normalisation-statistics files of a dataset.")
    p.set_defaults(run=_run_stats)


def _run_stats(args):
    raise NotImplementedError("`minigencast stats` is being built (issue 4 (data layer)).")


# --------------------------------------------------------------------------- info
def _add_info(sub):
    p = sub.add_parser("info", help="Print a JSON description of a configuration: graph sizes, parameters, memory.")
    p.set_defaults(run=_run_info)


def _run_info(args):
    raise NotImplementedError("`minigencast info` is being built (issue 5 (geometry)).")


# --------------------------------------------------------------------------- train
def _add_train(sub):
    p = sub.add_parser("train", help="Train a GenCast denoiser.")
    p.set_defaults(run=_run_train)


def _run_train(args):
    raise NotImplementedError("`minigencast train` is being built (issue 8 (training)).")


# --------------------------------------------------------------------------- forecast
def _add_forecast(sub):
    p = sub.add_parser("forecast", help="Roll out an ensemble forecast.")
    p.set_defaults(run=_run_forecast)


def _run_forecast(args):
    raise NotImplementedError("`minigencast forecast` is being built (issue 8 (forecasting)).")


# --------------------------------------------------------------------------- evaluate
def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="Verify a forecast and draw the paper's figures.")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args):
    raise NotImplementedError("`minigencast evaluate` is being built (issue 9 (verification)).")


# --------------------------------------------------------------------------- parser
_ADDERS = [
    _add_quickstart,
    _add_data,
    _add_download,
    _add_stats,
    _add_info,
    _add_train,
    _add_forecast,
    _add_evaluate,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigencast",
        description="GenCast, the diffusion ensemble weather forecaster, in readable JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _ADDERS:
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"minigencast {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
