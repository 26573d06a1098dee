"""Commands that watch a model's inputs: ``drift`` (a file against the Bento's training data) and
``monitor`` (a running service, or a file replayed through a fresh one)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from workbench.cli.arguments import rate, report_folder, rows, seconds, share, write_report
from workbench.errors import DataError
from workbench.monitoring import drift_report
from workbench.monitoring.live import MAX_REPLAY_SECONDS
from workbench.reports.monitoring import drift_page, verdict_line
from workbench.reports.text import drift_table
from workbench.runtime import API_KEY_ENV
from workbench.runtime.drift import DEFAULT_OPTIONS, DriftOptions


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
            "(src/drift_reference.json) and write drift.json and drift.html. Exit status: 0 no "
            "drift, 1 the dataset drifted (e.g. a retraining trigger), 2 bad input."
        ),
    )
    drift_p.add_argument("bento", help="a Bento tag in the BentoML store, or a Bento folder")
    drift_p.add_argument("file", help="a CSV or Parquet file with the model's input columns")
    drift_p.add_argument("--out", metavar="DIR", help="report folder (default: ./drift-<UTC time>)")
    drift_p.add_argument(
        "--threshold-share",
        type=share,
        metavar="SHARE",
        default=DEFAULT_OPTIONS.drift_share,
        help="the dataset drifts when at least this share of the tested columns drift "
        "(default: %(default)s)",
    )
    drift_p.add_argument(
        "--min-rows",
        type=rows,
        metavar="N",
        default=DEFAULT_OPTIONS.min_window_rows,
        help="fewest non-missing values a column needs to be tested (default: %(default)s; "
        "smaller files raise false alarms with large references)",
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
            "/feedback. Writes monitor.json and monitor.html. Exit status: 0 pass, 1 the dataset "
            "drifted (monitor.fail_on_drift) or a live-metric gate in monitor.gates failed (a "
            "retraining trigger), 2 bad input."
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
    options = DriftOptions(drift_share=args.threshold_share, min_window_rows=args.min_rows)
    result = drift_report(args.bento, Path(args.file), options=options)
    out = report_folder(args.out, "drift")
    write_report(out, {"drift.json": result.to_json() + "\n", "drift.html": drift_page(result)})

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
    from workbench.config import MonitorSettings, load_config
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
    if args.url is not None:
        options = config.monitor if config is not None else MonitorSettings()
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
    print(monitor_verdict_line(result))
    print(f"\nreport: {out / 'monitor.html'}\nresult: {out / 'monitor.json'}")
    return 0 if result.passed else 1
