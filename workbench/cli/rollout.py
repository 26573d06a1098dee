"""``workbench rollout status|advance|abort NAME`` and ``workbench serve NAME --canary VERSION``:
a challenger on a share of live traffic, and the share moved or the rollout ended."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from workbench.cli.arguments import share
from workbench.config import Config, load_config
from workbench.errors import VersionError
from workbench.rollouts import ROLLOUT_MANIFEST_FILE, Rollout, read_rollout, rollout_path
from workbench.runtime import API_KEY_ENV
from workbench.versions import abort_rollout, advance_rollout, live_states, serve_rollout


def add_commands(sub: Any) -> None:
    """``rollout`` with its three actions (``serve --canary`` is an option of ``serve``)."""
    p = sub.add_parser(
        "rollout",
        help="the live rollout of a challenger: status, advance the share, abort",
        description="status: the rollout file (bentos/NAME/release/rollout.yaml) and each "
        "running canary router's figures per arm; advance: move the challenger's share (default: "
        "the next of 0.01, 0.05, 0.1, 0.25, 0.5, 1); abort: every request to the promoted version "
        "again. A running router follows the file within a second. Exit 2 on bad input.",
    )
    p.add_argument("action", choices=["status", "advance", "abort"])
    p.add_argument("name", metavar="NAME")
    p.add_argument("--share", type=share, help="advance: the challenger's new share, in (0, 1]")
    p.add_argument("--reason", default="", help="why (recorded in the history)")
    p.add_argument("--config", default="workbench.yaml", help="the project's workbench.yaml")
    p.set_defaults(func=_cmd_rollout)


def add_canary_options(parser: argparse.ArgumentParser) -> None:
    """``serve``'s options for a live rollout (``--canary``, ``--share``, ``--reason``)."""
    parser.add_argument(
        "--canary",
        metavar="VERSION",
        help="also serve this version behind one endpoint, on --share of the requests (a live "
        "rollout, recorded in bentos/NAME/release/rollout.yaml; `workbench rollout` moves it)",
    )
    parser.add_argument(
        "--share", type=share, help="--canary: the challenger's share of requests (default 0.1)"
    )
    parser.add_argument("--reason", default="", help="--canary: why (recorded in the history)")


def _config(path: str, name: str) -> Config:
    config = load_config(path)
    if config.name != name:
        raise VersionError(
            f"{name!r} is not the model of {path} (its name is {config.name!r}); pass --config "
            f"with the workbench.yaml of {name!r}"
        )
    return config


def rollout_text(rollout: Rollout) -> str:
    """The rollout as a person reads it: state, versions, share, the last changes."""
    if not rollout.history:
        return f"no rollout of {rollout.name} yet"
    lines = [
        f"rollout of {rollout.name}: {rollout.state}",
        f"  promoted   {rollout.promoted}  ({1 - rollout.served_share:.1%} of requests)",
        f"  challenger {rollout.challenger}  ({rollout.served_share:.1%} of requests)",
        "history (last 5):",
    ]
    for change in rollout.history[-5:]:
        before = "" if change.previous_share is None else f"{change.previous_share:g} -> "
        why = f": {change.reason}" if change.reason else ""
        moved = f"{before}{change.share:g}"
        lines.append(f"  {change.at}  {change.action:<8} {moved}  {change.by}{why}")
    return "\n".join(lines)


def _live_text(name: str) -> list[str]:
    lines = []
    for state in live_states(name):
        lines.append(
            f"router {state['url']} (share {state['share']:g}, observed "
            f"{state['observed_share'] or 0:.1%}):"
        )
        for arm, figures in state["arms"].items():
            lines.append(
                f"  {arm:<10} {figures['version']}: {figures['requests']} requests, "
                f"{figures['server_errors']} 5xx, {figures['client_errors']} 4xx, p50 "
                f"{figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
            )
    return lines


def _cmd_rollout(args: argparse.Namespace) -> int:
    config = _config(args.config, args.name)
    if args.share is not None and args.action != "advance":
        raise VersionError("--share is for `rollout advance`; `status` and `abort` take none")
    if args.action == "status":
        print(rollout_text(read_rollout(config.root, config.name)))
        print("\n".join(_live_text(config.name)) or "no canary router of it runs here")
        return 0
    if args.action == "advance":
        rollout = advance_rollout(config, share=args.share, reason=args.reason)
    else:
        rollout = abort_rollout(config, reason=args.reason)
    print(rollout_text(rollout))
    path = rollout_path(config.root, config.name)
    print(f"\nwritten: {path} and {path.with_name(ROLLOUT_MANIFEST_FILE)}")
    return 0


def serve_canary(args: argparse.Namespace, config: Config | None) -> int:
    """``workbench serve NAME --canary VERSION [--share S]`` until Ctrl-C."""
    if config is None:
        raise VersionError(
            f"--canary needs the project of {args.name!r} (its promoted version, its rollout "
            "file): run it where its workbench.yaml is, or pass --config"
        )
    canary, rollout = serve_rollout(
        config, args.canary, share=args.share, port=args.port, reason=args.reason
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(rollout_text(rollout), flush=True)
        print(
            f"\nserving at {canary.url} (router pid {canary.router.pid}); the share follows "
            f"{rollout_path(config.root, config.name)}; Ctrl-C stops all three servers",
            flush=True,
        )
        if not os.environ.get(API_KEY_ENV):
            print(
                f"API key made for this rollout (set {API_KEY_ENV} to choose one): "
                f"{canary.api_key}",
                flush=True,
            )
        while canary.running:
            time.sleep(0.5)
        stopped = next(s for s in canary.servers if not s.running)
        print(
            f"{stopped.bento_tag} exited; last lines of {stopped.log_path}:\n{stopped.log_tail()}"
        )
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        canary.stop()


__all__ = ["add_canary_options", "add_commands", "rollout_text", "serve_canary"]
