"""``workbench retrain``: a challenger from new labelled rows, promoted only if every gate holds."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from workbench.cli.pipeline import print_run
from workbench.config import load_config
from workbench.errors import DataError
from workbench.pipeline.retraining import run_retrain
from workbench.reports.retraining import retrain_text
from workbench.results import RetrainResult
from workbench.retraining import check_retrain
from workbench.runtime.settings import CAPTURE_DIR_ENV


def add_commands(sub: Any) -> None:
    """``retrain``."""
    p = sub.add_parser(
        "retrain",
        help="fit a challenger on new labelled rows; validate, package, shadow, promote it",
        description="Fit a clone of the promoted model (or the model retrain.script's "
        "train(X, y) returns) on the training data plus new labelled rows, split by the seed; "
        "validate it against the promoted version on the same test rows, package it, shadow it "
        "on recent traffic and promote it only if every gate holds. Runs 07_retrain.ipynb "
        "headlessly into a run folder (records, HTML report, manifest); workbench.yaml is never "
        "changed. Exit status: 0 promoted (or already the promoted version), 1 a gate refused "
        "it (nothing promoted), 2 bad input.",
    )
    p.add_argument("--config", default="workbench.yaml", help="path to workbench.yaml")
    p.add_argument(
        "--data", metavar="FILE", help="labelled rows (CSV or Parquet, the training columns)"
    )
    p.add_argument(
        "--capture",
        metavar="DIR",
        help=f"capture folder: its labelled rows when --data is not given, and the recent "
        f"traffic the shadow replays (default: ${CAPTURE_DIR_ENV})",
    )
    p.add_argument("--seed", type=_seed, help="seed of the split (default: retrain.seed)")
    p.add_argument(
        "--model-out",
        metavar="FILE",
        help="where the promoted model's file goes (default: "
        "models/<name>-retrained-<sha256[:12]>.joblib beside workbench.yaml)",
    )
    p.add_argument("--out", help="run folder (default: runs/retrain-<UTC time> beside the config)")
    p.add_argument("--kernel", help="Jupyter kernel name (default: this interpreter)")
    p.add_argument("--force", action="store_true", help="reuse a non-empty --out folder")
    p.set_defaults(func=_cmd_retrain)


def _seed(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 0, e.g. --seed 0")
    return int(text)


def _absolute(value: str | None) -> str | None:
    """A path given on the command line, relative to the working directory."""
    return None if value is None else str(Path(value).expanduser().resolve())


def _cmd_retrain(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    parameters = {
        "data": _absolute(args.data),
        "capture": _absolute(args.capture),
        "seed": args.seed,
        "model_out": _absolute(args.model_out),
    }
    if parameters["data"] is not None and not Path(parameters["data"]).is_file():
        raise DataError(f"new rows file {args.data!r} not found; check the path given as --data")
    # Everything that is bad input is refused here, before a kernel starts or a folder is made.
    check_retrain(config, data=parameters["data"], capture=parameters["capture"], seed=args.seed)
    outcome = run_retrain(
        args.config,
        parameters=parameters,
        out=args.out,
        kernel=args.kernel,
        force=args.force,
        progress=sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true",
        on_event=lambda message: print(message, flush=True),
    )
    record = outcome.out / "retrain.json"
    if record.is_file():
        print("\n" + retrain_text(RetrainResult.model_validate(json.loads(record.read_text()))))
    print_run(outcome)
    return outcome.exit_code
