"""The ``workbench`` command: headless runs and server housekeeping; errors are one line.

Each module registers the commands on what it names: :mod:`~workbench.cli.pipeline` (run, verify,
init, servers), :mod:`~workbench.cli.monitoring` (drift, monitor), :mod:`~workbench.cli.scoring`
(score), :mod:`~workbench.cli.versions` (versions, promote, rollback, serve, compare, shadow) and
:mod:`~workbench.cli.retraining` (retrain), :mod:`~workbench.cli.rollout` (rollout; serve --canary).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from workbench.cli import monitoring, pipeline, retraining, rollout, scoring, versions
from workbench.errors import WorkbenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description=(
            "Validate, package (BentoML) and launch a scikit-learn model headlessly; then monitor "
            "it, manage its versions and score files with it."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (pipeline, monitoring, scoring, versions, retraining, rollout):
        commands.add_commands(sub)
    return parser


#: Set to get the traceback of an unexpected error instead of its one line.
TRACEBACK_ENV = "WORKBENCH_TRACEBACK"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure is one line on stderr: its error type's exit code (2, or 1
    for a failed gate), 2 for a file that cannot be read or written and for anything unexpected.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "a file"
        print(
            f"error: could not read or write {where}: {exc.strerror or exc}; check the path, "
            "that its folder exists and that you may write there",
            file=sys.stderr,
        )
        return WorkbenchError.exit_code
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"error: unexpected {type(exc).__name__}: {first} (a bug in workbench: please "
            f"report it; {TRACEBACK_ENV}=1 shows the traceback)",
            file=sys.stderr,
        )
        return WorkbenchError.exit_code
