"""Commands that watch a model's inputs: ``drift`` (a file against the Bento's training data) and
``monitor`` (a running service, or a file replayed through a fresh one).

Both exit with the status of what they judged (:data:`EXIT_CODES`): 0 PASS, 1 FAIL, 3
INCONCLUSIVE (not enough data to judge; 0 with ``monitor.fail_on_inconclusive: false``), and 2
on bad input."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from workbench.cli.arguments import rate, report_folder, rows, seconds, share, write_report
from workbench.errors import DataError
from workbench.monitoring import drift_report, find_bento
from workbench.monitoring.drift import read_monitor_settings
from workbench.monitoring.live import MAX_REPLAY_SECONDS
from workbench.reports.monitoring import drift_page, verdict_line
from workbench.reports.quality import quality_table, status_line
from workbench.reports.text import drift_table
from workbench.runtime import API_KEY_ENV
from workbench.runtime.quality import Status
from workbench.runtime.settings import MonitorSettings

EXIT_CODES: dict[Status, int] = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}
"""What ``drift`` and ``monitor`` exit with, by status (INCONCLUSIVE: unless
``fail_on_inconclusive`` is off, then 0); 2 is bad input."""


def exit_code(status: Status, monitor: MonitorSettings) -> int:
    """The exit status of a judged status under ``monitor.fail_on_inconclusive``."""
    if status == "INCONCLUSIVE" and not monitor.fail_on_inconclusive:
        return 0
    return EXIT_CODES[status]


def add_commands(sub: Any) -> None:
    """``drift`` and ``monitor``."""
    _add_drift(sub)
    _add_monitor(sub)


def _add_drift(sub: Any) -> None:
    drift_p = sub.add_parser(
        "drift",
        help="check a CSV/Parquet file of live inputs for drift against a Bento's training data",
        description=(
            "Compare each input column of FILE with the training reference the Bento ships "
            "(src/drift_reference.json): drift, and the data-quality checks (missing, constant, "
            "unseen, out-of-range values, absent columns), judged with the Bento's monitor: "
            "settings; write drift.json and drift.html. Exit status: 0 PASS, 1 FAIL (the "
            "dataset drifted or a data-quality check failed: e.g. a retraining trigger), 3 "
            "INCONCLUSIVE (too few rows to judge; 0 with --no-fail-on-inconclusive), 2 bad input."
        ),
    )
    drift_p.add_argument("bento", help="a Bento tag in the BentoML store, or a Bento folder")
    drift_p.add_argument("file", help="a CSV or Parquet file with the model's input columns")
    drift_p.add_argument("--out", metavar="DIR", help="report folder (default: ./drift-<UTC time>)")
    drift_p.add_argument(
        "--threshold-share",
        type=share,
        metavar="SHARE",
        help="the dataset drifts when at least this share of the testable columns drift "
        "(default: the Bento's monitor.drift_share, 0.5 unless set)",
    )
    drift_p.add_argument(
        "--min-rows",
        type=rows,
        metavar="N",
        help="fewest non-missing values a column needs to be tested (default: the Bento's "
        "monitor.min_window_rows, 500 unless set; smaller files raise false alarms with large "
        "references)",
    )
    for flag, what in (
        ("quality", "a failed data-quality check fails the check (exit 1)"),
        ("inconclusive", "too few rows to judge exits 3 (else 0)"),
    ):
        drift_p.add_argument(
            f"--fail-on-{flag}",
            action=argparse.BooleanOptionalAction,
            help=f"{what} (default: the Bento's monitor.fail_on_{flag}, true unless set)",
        )
    drift_p.set_defaults(func=_cmd_drift)


def _add_monitor(sub: Any) -> None:
    monitor_p = sub.add_parser(
        "monitor",
        help="check a running service (or a file replayed through a fresh one) for drift and "
        "live-metric gates",
        description=(
            "Read GET /monitor of the service at --url (its key from WORKBENCH_API_KEY), after "
            "replaying --file through it when given; without --url, replay --file through a fresh "
            "local server of the packaged model. Labels in the file's target column go to POST "
            "/feedback. Writes monitor.json and monitor.html. Exit status: 0 PASS, 1 FAIL (the "
            "dataset drifted, monitor.fail_on_drift; a data-quality check failed, "
            "monitor.fail_on_quality; a live-metric gate in monitor.gates failed: a retraining "
            "trigger), 3 INCONCLUSIVE (not enough data to judge, e.g. a window under "
            "monitor.min_window_rows; 0 with monitor.fail_on_inconclusive: false), 2 bad input."
        ),
    )
    monitor_p.add_argument("--url", help="the service, e.g. http://127.0.0.1:3000")
    monitor_p.add_argument("--file", help="a CSV or Parquet file to replay (labels as feedback)")
    monitor_p.add_argument(
        "--config", default="workbench.yaml", help="workbench.yaml with the monitor: section"
    )
    monitor_p.add_argument(
        "--rate", type=rate, default=500.0, help="replay bound, rows per second (default 500)"
    )
    monitor_p.add_argument("--max-rows", type=rows, help="replay at most this many rows")
    monitor_p.add_argument(
        "--max-seconds",
        type=seconds,
        default=MAX_REPLAY_SECONDS,
        help="the replay stops after this long (default %(default)g)",
    )
    monitor_p.add_argument(
        "--run",
        metavar="DIR",
        help="without --url: the run folder whose packaged Bento to serve (default: .workbench/ "
        "beside the config, else the newest runs/<time>/)",
    )
    monitor_p.add_argument(
        "--out",
        metavar="DIR",
        help="report folder (default: runs/monitor-<UTC time> beside the config, which the "
        "scaffold's .gitignore ignores)",
    )
    monitor_p.set_defaults(func=_cmd_monitor)


def _cmd_drift(args: argparse.Namespace) -> int:
    given = {
        "drift_share": args.threshold_share,
        "min_window_rows": args.min_rows,
        "fail_on_quality": args.fail_on_quality,
        "fail_on_inconclusive": args.fail_on_inconclusive,
    }
    monitor = read_monitor_settings(find_bento(args.bento))
    monitor = monitor.model_copy(update={k: v for k, v in given.items() if v is not None})
    result = drift_report(args.bento, Path(args.file), monitor=monitor)
    out = report_folder(args.out, "drift")
    write_report(out, {"drift.json": result.to_json() + "\n", "drift.html": drift_page(result)})

    print(f"Bento {result.bento_tag}: {result.file} ({result.rows:,} rows)")
    if result.ignored_columns:
        print(f"ignored (not model inputs): {', '.join(result.ignored_columns)}")
    print("\n" + drift_table(result) + "\n")
    print(verdict_line(result))
    if result.drifted:
        print(f"drifted columns: {', '.join(result.drifted_column_names)}")
    if result.quality is not None:
        print("\n" + quality_table(result.quality) + "\n")
    print(status_line(result))
    print(f"\nreport: {out / 'drift.html'}\nresult: {out / 'drift.json'}")
    return exit_code(result.status, monitor)


def _package_run(root: Path, given: str | None) -> Path | None:
    """The run folder whose package record to serve: ``given``, else ``.workbench/`` beside the
    config when it has one, else the newest ``runs/<time>/`` that has one."""
    if given is not None:
        return Path(given)
    if (root / ".workbench" / "package.json").is_file():
        return None
    runs = sorted((root / "runs").glob("*/package.json"))
    return runs[-1].parent if runs else None


def _cmd_monitor(args: argparse.Namespace) -> int:
    from workbench.config import load_config
    from workbench.monitoring.live import check_packaged, check_service
    from workbench.reports.monitoring import (
        monitor_verdict_line,
        replay_line,
        write_monitor_report,
    )

    config_path = Path(args.config)
    if args.url is None and args.file is None:
        raise DataError(
            "give --url URL (a running service; key from WORKBENCH_API_KEY) or --file FILE (replay "
            "it through a fresh local server of the packaged model), or both"
        )
    config = load_config(config_path) if args.url is None or config_path.is_file() else None
    bounds = {"rate": args.rate, "max_rows": args.max_rows, "max_seconds": args.max_seconds}
    options = config.monitor if config is not None else MonitorSettings()
    if args.url is not None:
        file = None if args.file is None else Path(args.file)
        key = os.environ.get(API_KEY_ENV, "").strip()
        result = check_service(args.url, options, key=key, file=file, **bounds)
    else:
        assert config is not None
        result = check_packaged(
            config,
            Path(args.file),
            run_dir=_package_run(config.root, args.run),
            on_serve=lambda s: print(f"serving {s.bento_tag} at {s.url} for the replay"),
            **bounds,
        )
    root = config.root if config is not None else Path.cwd()
    out = report_folder(args.out, "monitor", under=root / "runs")
    write_monitor_report(out, result)
    window = result.report.get("window", {})
    if result.replay is not None:
        r = result.replay
        print(replay_line(r, r.file))
    print(
        f"{result.model_tag}: {window.get('rows', 0):,} rows in the window, "
        f"{window.get('labelled_rows', 0):,} labelled; drift: {result.verdict}"
    )
    if result.columns:
        print("\n" + drift_table(result) + "\n")
    if result.quality is not None:
        print(quality_table(result.quality) + "\n")
    print(monitor_verdict_line(result))
    print(f"\nreport: {out / 'monitor.html'}\nresult: {out / 'monitor.json'}")
    return exit_code(result.status, options)
