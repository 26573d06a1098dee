"""The ``workbench`` command: headless runs and server housekeeping; errors are one line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import psutil

from workbench.errors import DataError, WorkbenchError
from workbench.monitoring import drift_report
from workbench.packaging import bentoml_home
from workbench.pipeline import STAGES, init_project, run, verify
from workbench.reports import gate_table
from workbench.reports.monitoring import drift_page, verdict_line
from workbench.reports.text import drift_table
from workbench.results import GateVerdict
from workbench.runtime import API_KEY_ENV
from workbench.runtime.drift import DEFAULT_OPTIONS, DriftOptions
from workbench.serving.server import state_dir, terminate_tree


def _parameter(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"-p {text!r}: expected NAME=VALUE, e.g. -p seed=1")
    name, raw = text.split("=", 1)
    try:
        value: object = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


def _stages(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in STAGES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {unknown or [text]}; choose from {', '.join(STAGES)}"
        )
    first = STAGES.index(chosen[0])
    if chosen != STAGES[first : first + len(chosen)]:
        raise argparse.ArgumentTypeError(
            f"stages {','.join(chosen)} are not a contiguous, ordered subset of {','.join(STAGES)}"
        )
    return chosen


def _cmd_run(args: argparse.Namespace) -> int:
    outcome = run(
        args.config,
        out=args.out,
        stages=args.stages,
        parameters=dict(args.parameters),
        kernel=args.kernel,
        force=args.force,
        progress=sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true",
        on_event=lambda message: print(message, flush=True),
    )
    manifest = outcome.manifest
    gates = [GateVerdict.model_validate(g) for g in manifest.get("gates") or []]
    if gates:
        print("\n" + gate_table(gates))
    print(f"\nrun folder: {outcome.out}")
    for report in outcome.reports:
        print(f"  report:   {report}")
    print(f"  manifest: {outcome.out / 'manifest.json'}")
    if outcome.error:
        print(f"\nerror: {outcome.error}", file=sys.stderr)
        return outcome.exit_code
    if manifest.get("bento_tag"):
        home = bentoml_home()
        prefix = "" if home == Path.home() / "bentoml" else f"BENTOML_HOME={home} "
        if (manifest.get("config") or {}).get("service", {}).get("auth", "api_key") == "api_key":
            prefix = f"{API_KEY_ENV}=<your key> {prefix}"
        print(f"\nBento: {manifest['bento_tag']} (store {home})")
        print(f"serve it:  {prefix}{_bentoml_command()} serve {manifest['bento_tag']}")
    return 0


def _cmd_servers(args: argparse.Namespace) -> int:
    records = sorted(state_dir().glob("*.json"))
    if not records:
        print("no workbench servers are running")
        return 0
    for path in records:
        info = json.loads(path.read_text())
        alive = psutil.pid_exists(info["pid"])
        owner = "alive" if psutil.pid_exists(info["owner"]) else "gone"
        print(
            f"pid {info['pid']:>7}  {info['url']:<24} {info['bento_tag']:<36} "
            f"owner {info['owner']} ({owner}){'' if alive else '  [not running]'}"
        )
        if args.stop:
            terminate_tree(info["pid"], grace=5.0)
            path.unlink(missing_ok=True)
            print(f"  stopped {info['pid']}")
    return 0


def _bentoml_command() -> str:
    """``bentoml`` when it is on PATH as this environment's, else its full path (copy-ready)."""
    own = Path(sys.executable).parent / "bentoml"
    if not own.exists() or shutil.which("bentoml") == str(own):
        return "bentoml"
    return str(own)


def _cmd_verify(args: argparse.Namespace) -> int:
    found = verify(args.run_dir)
    if found.ok:
        print(f"{found.run_dir}: all {found.checked} hashes match the manifest")
        return 0
    print(f"{found.run_dir}: {len(found.differences)} of {found.checked} differ from the manifest:")
    for line in found.differences:
        print(f"  {line}")
    return 1


def _cmd_init(args: argparse.Namespace) -> int:
    written = init_project(args.dir, force=args.force)
    root = Path(args.dir).resolve()
    print(f"scaffolded {root} ({len(written)} files):")
    for path in written:
        print(f"  {path.relative_to(root)}")
    print(
        "next: put the fitted model at models/model.joblib and the data at data/train.csv and "
        "data/test.csv, check workbench.yaml, then `workbench run`"
    )
    return 0


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share in (0, 1], e.g. 0.5")
    return value


def _rows(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of rows >= 1")
    return int(text)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, then rename: never half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _cmd_drift(args: argparse.Namespace) -> int:
    options = DriftOptions(drift_share=args.threshold_share, min_window_rows=args.min_rows)
    result = drift_report(args.bento, Path(args.file), options=options)
    if args.out:
        out = Path(args.out)
    else:
        out = Path.cwd() / f"drift-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder path")
    outputs = {"drift.json": result.to_json() + "\n", "drift.html": drift_page(result)}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in outputs.items():
            write_atomic(out / name, text)
    except OSError as exc:
        raise DataError(f"could not write the report into {out} ({exc})") from exc

    print(f"Bento {result.bento_tag}: {result.file} ({result.rows:,} rows)")
    if result.ignored_columns:
        print(f"ignored (not model inputs): {', '.join(result.ignored_columns)}")
    print("\n" + drift_table(result) + "\n")
    print(verdict_line(result))
    if result.drifted:
        print(f"drifted columns: {', '.join(result.drifted_column_names)}")
    print(f"\nreport: {out / 'drift.html'}\nresult: {out / 'drift.json'}")
    if result.drifted is None:
        raise DataError(
            f"no verdict, {result.reason}; give a file with more rows, or lower --min-rows "
            "(below 500 the distances raise false alarms)"
        )
    return 1 if result.drifted else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Validate, package (BentoML) and launch a scikit-learn model headlessly.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the stage notebooks with papermill")
    run_p.add_argument("--config", default="workbench.yaml", help="path to workbench.yaml")
    run_p.add_argument("--out", help="run folder (default: runs/<UTC time> beside the config)")
    run_p.add_argument(
        "--stages",
        type=_stages,
        default=STAGES,
        help="comma-separated contiguous stages (default: validate,package,launch)",
    )
    run_p.add_argument(
        "-p",
        dest="parameters",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="notebook parameter override (repeatable)",
    )
    run_p.add_argument("--kernel", help="Jupyter kernel name (default: this interpreter)")
    run_p.add_argument("--force", action="store_true", help="reuse a non-empty --out folder")
    run_p.set_defaults(func=_cmd_run)
    verify_p = sub.add_parser(
        "verify", help="re-hash a run's inputs and Bento against its manifest"
    )
    verify_p.add_argument("run_dir", help="a run folder written by `workbench run`")
    verify_p.set_defaults(func=_cmd_verify)
    init_p = sub.add_parser("init", help="scaffold a model project (notebooks, config, CI)")
    init_p.add_argument("dir", help="the project folder (created if missing)")
    init_p.add_argument("--force", action="store_true", help="overwrite an existing scaffold")
    init_p.set_defaults(func=_cmd_init)
    drift_p = sub.add_parser(
        "drift",
        help="check a CSV/Parquet file of live inputs for drift against a Bento's training data",
        description=(
            "Compare each input column of FILE with the training reference the Bento ships "
            "(src/drift_reference.json) and write drift.json and drift.html. Exit status: 0 no "
            "drift, 1 the dataset drifted (e.g. a retraining trigger), 2 bad input."
        ),
    )
    drift_p.add_argument("bento", help="a Bento tag in the BentoML store, or a Bento folder")
    drift_p.add_argument("file", help="a CSV or Parquet file with the model's input columns")
    drift_p.add_argument("--out", metavar="DIR", help="report folder (default: ./drift-<UTC time>)")
    drift_p.add_argument(
        "--threshold-share",
        type=_share,
        metavar="SHARE",
        default=DEFAULT_OPTIONS.drift_share,
        help="the dataset drifts when at least this share of the tested columns drift "
        "(default: %(default)s)",
    )
    drift_p.add_argument(
        "--min-rows",
        type=_rows,
        metavar="N",
        default=DEFAULT_OPTIONS.min_window_rows,
        help="fewest non-missing values a column needs to be tested (default: %(default)s; "
        "smaller files raise false alarms with large references)",
    )
    drift_p.set_defaults(func=_cmd_drift)
    servers_p = sub.add_parser("servers", help="list servers started by workbench")
    servers_p.add_argument("--stop", action="store_true", help="stop every listed server")
    servers_p.set_defaults(func=_cmd_servers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
