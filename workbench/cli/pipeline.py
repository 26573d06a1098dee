"""Commands on a project's pipeline: ``run``, ``verify``, ``init`` and the ``servers`` it left."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from workbench.artifacts import load_model
from workbench.config import Task
from workbench.packaging import bentoml_home
from workbench.pipeline import STAGES, RunOutcome, init_project, run, verify
from workbench.pipeline.project import GATES
from workbench.reports import gate_table
from workbench.results import GateVerdict
from workbench.runtime import API_KEY_ENV
from workbench.serving.processes import ServerRecord, owner_alive
from workbench.serving.processes import stop as stop_server
from workbench.serving.server import state_dir
from workbench.validation.inputs import infer_task


def add_commands(sub: Any) -> None:
    """``run``, ``verify``, ``init`` and ``servers``."""
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
    init_p.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="the model's task, whose metric the gates use (default: inferred from "
        "DIR/models/model.joblib when it is there)",
    )
    init_p.add_argument("--force", action="store_true", help="overwrite an existing scaffold")
    init_p.set_defaults(func=_cmd_init)
    servers_p = sub.add_parser("servers", help="list servers started by workbench")
    servers_p.add_argument("--stop", action="store_true", help="stop every listed server")
    servers_p.set_defaults(func=_cmd_servers)


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
    if not print_run(outcome):
        return outcome.exit_code
    if manifest.get("bento_tag"):
        home = bentoml_home()
        prefix = "" if home == Path.home() / "bentoml" else f"BENTOML_HOME={home} "
        if (manifest.get("config") or {}).get("service", {}).get("auth", "api_key") == "api_key":
            prefix = f"{API_KEY_ENV}=<your key> {prefix}"
        print(f"\nBento: {manifest['bento_tag']} (store {home})")
        print(f"serve it:  {prefix}{_bentoml_command()} serve {manifest['bento_tag']}")
    return 0


def print_run(outcome: RunOutcome) -> bool:
    """Where a headless run wrote (its folder, reports, manifest), and its error on stderr;
    False when it failed."""
    print(f"\nrun folder: {outcome.out}")
    for report in outcome.reports:
        print(f"  report:   {report}")
    print(f"  manifest: {outcome.out / 'manifest.json'}")
    if outcome.error:
        print(f"\nerror: {outcome.error}", file=sys.stderr)
    return not outcome.error


def _cmd_servers(args: argparse.Namespace) -> int:
    records = sorted(state_dir().glob("*.json"))
    if not records:
        print("no workbench servers are running")
        return 0
    for path in records:
        try:
            record = ServerRecord.from_json(path.read_text())
        except ValueError as exc:
            print(f"{path.name}: skipped, nothing signalled: {exc}; remove it if no server runs")
            continue
        why = record.server.mismatch()
        owner = "alive" if owner_alive(record) else "dead"
        print(
            f"pid {record.server.pid:>7}  {record.url:<24} {record.bento_tag:<36} "
            f"owner {record.owner.pid} ({owner}){'' if why is None else f'  [{why}]'}"
        )
        if args.stop:
            outcome = stop_server(record, grace=5.0)
            for line in outcome.skipped:
                print(f"  skipped: {line}")
            path.unlink(missing_ok=True)
            if outcome.stopped:
                print(f"  stopped pids {', '.join(map(str, outcome.stopped))}")
            else:
                print("  nothing of it was running; record removed")
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


def _model_task(root: Path) -> Task | None:
    """The task of the model already in the project (``models/model.joblib``), else ``None``."""
    path = root / "models" / "model.joblib"
    if not path.is_file():
        return None
    task = infer_task(load_model(path), None)
    return "regression" if task == "regression" else "classification"


def _cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.dir).resolve()
    task: Task | None = args.task or _model_task(root)
    written = init_project(args.dir, task=task, force=args.force)
    print(f"scaffolded {root} ({len(written)} files):")
    for path in written:
        print(f"  {path.relative_to(root)}")
    if args.task:
        print(f"task: {task} (--task): the gates use {GATES[args.task]}")
    elif task is not None:
        print(f"task: {task}, inferred from models/model.joblib: the gates use {GATES[task]}")
    else:
        print(
            "task: not known yet (no models/model.joblib, no --task): the gates are a "
            f"classifier's ({GATES['classification']}); for a regressor run `workbench init "
            f"{args.dir} --task regression --force` or edit workbench.yaml"
        )
    print(
        "next: put the fitted model at models/model.joblib and the data at data/train.csv and "
        "data/test.csv, check workbench.yaml, then `workbench run`"
    )
    return 0
