"""``python -m router``: serve one rollout's router on 127.0.0.1 (see the package)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import uvicorn

from .app import Router
from .arms import ARMS, Arm, ShareFile

API_KEY_ENV = "WORKBENCH_API_KEY"


def _arm(name: str, given: str) -> Arm:
    tag, _, url = given.partition("=")
    if not tag or not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"--{name} must be TAG=http://127.0.0.1:PORT, not {given!r}")
    return Arm(name, tag, url.rstrip("/"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the canary router of one rollout")
    parser.add_argument("--rollout", required=True, type=Path, help="the rollout file")
    parser.add_argument("--primary", required=True, metavar="TAG=URL")
    parser.add_argument("--challenger", required=True, metavar="TAG=URL")
    parser.add_argument("--task", required=True, choices=["classification", "regression"])
    parser.add_argument("--classes", default="[]", help="the model's classes, as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.host != "127.0.0.1":
        raise SystemExit("the canary router serves 127.0.0.1 only")
    arms = {name: _arm(name, getattr(args, name)) for name in ARMS}
    router = Router(
        arms,
        ShareFile(args.rollout, arms["challenger"].tag),
        task=args.task,
        classes=json.loads(args.classes),
        key=os.environ.get(API_KEY_ENV, ""),
    )
    print(
        f"[workbench router] {arms['primary'].tag} and {arms['challenger'].tag} behind "
        f"http://{args.host}:{args.port}, share from {args.rollout}",
        flush=True,
    )
    uvicorn.run(
        router, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
