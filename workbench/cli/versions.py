"""Commands on a model's versions: ``versions``, ``promote``, ``rollback``, ``serve`` the
promoted one, ``compare`` two and ``shadow`` a challenger behind a champion."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from workbench.cli.arguments import (
    model_name,
    model_reference,
    report_folder,
    rows,
    seconds,
    write_report,
)
from workbench.cli.rollout import add_canary_options, serve_canary
from workbench.config import Config, load_config
from workbench.errors import GateFailure, VersionError
from workbench.integrity import verify_bento
from workbench.promotions import history_path, promoted_tag, read_history
from workbench.reports.versions import (
    compare_page,
    compare_text,
    promotion_text,
    shadow_page,
    shadow_text,
    versions_text,
)
from workbench.runtime import API_KEY_ENV
from workbench.serving.server import Server
from workbench.versions import (
    compare_versions,
    list_versions,
    promote,
    resolve_version,
    rollback,
    shadow,
)


def add_commands(sub: Any) -> None:
    """``versions``, ``promote``, ``rollback``, ``serve``, ``compare`` and ``shadow``."""
    config_help = "the project's workbench.yaml (default: %(default)s)"
    p = sub.add_parser("versions", help="list the packaged versions of a model")
    p.add_argument("name", type=model_name, help="the model (service) name")
    p.add_argument("--config", default="workbench.yaml", help=config_help)
    p.set_defaults(func=_cmd_versions)
    p = sub.add_parser(
        "promote",
        help="make a version the one that serves (gated; recorded in bentos/<name>/release/)",
        description="Promote NAME:VERSION. It must pass the metric gates of workbench.yaml and "
        "the champion gate against the promoted version, both re-scored on the test data. "
        "Exit status: 0 promoted, 1 a gate failed (nothing changed), 2 bad input.",
    )
    p.add_argument("version", type=model_reference, metavar="NAME:VERSION")
    p.add_argument("--reason", required=True, help="why (recorded in the history)")
    p.add_argument("--force", action="store_true", help="promote although a gate fails")
    p.add_argument("--config", default="workbench.yaml", help=config_help)
    p.set_defaults(func=_cmd_promote)
    p = sub.add_parser("rollback", help="return to the version promoted before the current one")
    p.add_argument("name", type=model_name)
    p.add_argument("--reason", default="", help="why (recorded in the history)")
    p.add_argument("--config", default="workbench.yaml", help=config_help)
    p.set_defaults(func=_cmd_rollback)
    p = sub.add_parser("serve", help="serve the promoted version (or NAME:VERSION) on 127.0.0.1")
    p.add_argument("name", type=model_reference, metavar="NAME[:VERSION]")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--config", default="workbench.yaml", help=config_help)
    add_canary_options(p)
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser(
        "compare", help="two versions side by side, re-scored on the same test data (HTML report)"
    )
    p.add_argument(
        "a",
        type=model_reference,
        metavar="A",
        help="NAME:VERSION (or a VERSION of the config's model)",
    )
    p.add_argument("b", type=model_reference, metavar="B")
    p.add_argument("--config", default="workbench.yaml", help=config_help)
    p.add_argument("--out", metavar="DIR", help="report folder (default: ./compare-<UTC time>)")
    p.set_defaults(func=_cmd_compare)
    p = sub.add_parser(
        "shadow",
        help="replay a file to a champion and a challenger served side by side",
        description="Serve both versions on 127.0.0.1, send both the rows of --replay (bounded "
        "by --max-rows and --max-seconds), compare their answers, write shadow.json and "
        "shadow.html. Exit status: 0 the shadow: gates pass, 1 one fails, 2 bad input.",
    )
    p.add_argument("champion", type=model_reference, metavar="CHAMPION", help="NAME:VERSION")
    p.add_argument("challenger", type=model_reference, metavar="CHALLENGER", help="NAME:VERSION")
    p.add_argument("--replay", required=True, metavar="FILE", help="CSV or Parquet of requests")
    p.add_argument("--max-rows", type=rows, help="rows replayed at most (default: shadow.max_rows)")
    p.add_argument("--max-seconds", type=seconds, help="time bound (default: shadow.max_seconds)")
    p.add_argument("--batch-rows", type=rows, help="rows per request (default: shadow.batch_rows)")
    p.add_argument("--config", default="workbench.yaml", help=config_help)
    p.add_argument("--out", metavar="DIR", help="report folder (default: ./shadow-<UTC time>)")
    p.set_defaults(func=_cmd_shadow)


def _project(config_path: str, name: str, *, required: bool) -> Config | None:
    """The project whose ``workbench.yaml`` is ``config_path``; it must be the one of ``name``."""
    if not required and not Path(config_path).is_file():
        return None
    config = load_config(config_path)
    if config.name != name:
        raise VersionError(
            f"{name!r} is not the model of {config_path} (its name is {config.name!r}); pass "
            f"--config with the workbench.yaml of {name!r}"
        )
    return config


def _name(reference: str) -> str:
    return reference.split(":", 1)[0]


def _cmd_versions(args: argparse.Namespace) -> int:
    config = _project(args.config, args.name, required=False)
    root = config.root if config else Path.cwd()
    print(versions_text(list_versions(root, args.name)))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    config = _project(args.config, _name(args.version), required=True)
    assert config is not None
    if not args.reason.strip():
        raise VersionError("--reason is empty: say why (it is recorded in the history file)")
    try:
        result = promote(config, args.version, reason=args.reason, force=args.force)
    except GateFailure as exc:  # the core says what failed; the command says how to override
        raise GateFailure(exc.failed, f"{exc}: pass --force to promote anyway") from exc
    print(promotion_text(result))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    config = _project(args.config, args.name, required=True)
    assert config is not None
    nothing_before = read_history(config.root, config.name).rollback_target is None
    try:
        done = rollback(config, reason=args.reason)
    except VersionError as exc:
        if not nothing_before:
            raise
        raise VersionError(
            f"{exc}; promote a version with `workbench promote {config.name}:VERSION --reason ...`"
        ) from exc
    print(promotion_text(done))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    name = _name(args.name)
    config = _project(args.config, name, required=False)
    if args.canary is not None:
        return serve_canary(args, config)
    if args.share is not None:
        raise VersionError("--share is the challenger's: give it with --canary VERSION")
    root = config.root if config else Path.cwd()
    tag = args.name if ":" in args.name else promoted_tag(root, name)
    if tag is None:
        raise VersionError(
            f"no version of {name!r} is promoted ({history_path(root, name)}); promote one "
            f"(`workbench promote {name}:VERSION --reason ...`) or serve NAME:VERSION"
        )
    tag = resolve_version(tag, name=name).tag
    verify_bento(root, tag)
    timeout = config.launch.ready_timeout if config else 90.0
    server = Server.start(tag, port=args.port, timeout=timeout)
    server.set_origin("workbench serve")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(f"serving {tag} at {server.url} (pid {server.pid}); Ctrl-C stops it", flush=True)
        if not os.environ.get(API_KEY_ENV):
            print(
                f"API key made for this server (set {API_KEY_ENV} to choose one): {server.api_key}",
                flush=True,
            )
        while server.running:
            time.sleep(0.5)
        print(f"the server exited; last lines of {server.log_path}:\n{server.log_tail()}")
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _cmd_compare(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    folder = report_folder(args.out, "compare")
    result = compare_versions(config, args.a, args.b)
    write_report(
        folder, {"compare.json": result.to_json() + "\n", "compare.html": compare_page(result)}
    )
    print(compare_text(result))
    print(f"\nreport: {folder / 'compare.html'}\nresult: {folder / 'compare.json'}")
    return 0


def _cmd_shadow(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    folder = report_folder(args.out, "shadow")
    result = shadow(
        config,
        args.champion,
        args.challenger,
        args.replay,
        max_rows=args.max_rows,
        max_seconds=args.max_seconds,
        batch_rows=args.batch_rows,
    )
    write_report(
        folder, {"shadow.json": result.to_json() + "\n", "shadow.html": shadow_page(result)}
    )
    print(shadow_text(result))
    print(f"\nreport: {folder / 'shadow.html'}\nresult: {folder / 'shadow.json'}")
    if not result.passed:
        failed = ", ".join(g.name for g in result.failed)
        print(f"\nshadow gate(s) failed: {failed} (shadow: in workbench.yaml)", file=sys.stderr)
        return 1
    return 0
