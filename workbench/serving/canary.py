"""A live rollout on this machine: the promoted version and a challenger behind one endpoint.

Three processes on 127.0.0.1, each a :class:`~workbench.serving.server.Server` (recorded, watched,
stopped with its children): the two versions' ``bentoml serve``, started through
:func:`~workbench.serving.launch.serve` (as the launch stage starts a Bento, with the same API
key), and the canary router in front of them (:mod:`workbench.serving.router`), which reads the
challenger's share from the rollout file while it serves.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workbench.config import Config
from workbench.runtime import API_KEY_ENV
from workbench.serving import router
from workbench.serving.launch import serve
from workbench.serving.server import Program, Server

ROUTER_TAG = "{name}-canary-router"
"""How the router's record names it (``workbench servers``)."""


@dataclass
class Canary:
    """The running rollout: the router (its URL is the endpoint) and both versions."""

    router: Server
    primary: Server
    challenger: Server

    @property
    def url(self) -> str:
        return self.router.url

    @property
    def api_key(self) -> str:
        return self.router.api_key

    @property
    def servers(self) -> list[Server]:
        return [self.router, self.primary, self.challenger]

    @property
    def running(self) -> bool:
        return all(server.running for server in self.servers)

    def state(self, *, timeout: float = 5.0) -> dict[str, Any]:
        """The router's ``GET /rollout``: the share, and each arm's requests, errors, latency."""
        answer = httpx.get(f"{self.url}/rollout", timeout=timeout)
        answer.raise_for_status()
        state: dict[str, Any] = answer.json()
        return state

    def stop(self) -> None:
        """Stop the router, then both versions, each with all its processes (idempotent)."""
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_arms(
    config: Config, tags: tuple[str, str], *, key: str, portable: bool | None
) -> list[Server]:
    """Both versions, started at once; neither left running when the other fails."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(serve, config, bento_tag=tag, portable=portable, api_key=key)
            for tag in tags
        ]
        started, failure = [], None
        for future in futures:
            try:
                started.append(future.result())
            except BaseException as exc:  # noqa: PERF203 - collect, then stop the other
                failure = exc
    if failure is not None:
        for server in started:
            server.stop()
        raise failure
    return started


def router_program(
    rollout_file: Path, arms: dict[str, Server], *, task: str, classes: list[Any] | None
) -> Program:
    """The router's command line (``python -m router`` with ``workbench/serving`` on the path,
    so it imports no workbench) for these arms."""
    folder = Path(router.__file__).resolve().parents[1]
    command = [sys.executable, "-m", "router", "--rollout", str(rollout_file)]
    for name, server in arms.items():
        command += [f"--{name}", f"{server.bento_tag}={server.url}"]
    command += ["--task", task, "--classes", json.dumps(classes or [])]
    return Program(tuple(command), env={"PYTHONPATH": str(folder)})


def start_canary(
    config: Config,
    primary: str,
    challenger: str,
    *,
    rollout_file: Path,
    task: str,
    classes: list[Any] | None,
    port: int | None = None,
    portable: bool | None = None,
) -> Canary:
    """Serve ``primary`` and ``challenger`` (Bento tags) behind one router on 127.0.0.1 (on
    ``port``, else a free one); the share is read from ``rollout_file``. The caller stops it."""
    key = os.environ.get(API_KEY_ENV) or secrets.token_urlsafe(24)
    arms = dict(
        zip(
            ("primary", "challenger"),
            _start_arms(config, (primary, challenger), key=key, portable=portable),
            strict=True,
        )
    )
    try:
        front = Server.start(
            ROUTER_TAG.format(name=config.name),
            port=port,
            timeout=config.launch.ready_timeout,
            log_dir=arms["primary"].log_path.parent,
            api_key=key,
            program=router_program(rollout_file, arms, task=task, classes=classes),
        )
    except BaseException:
        for server in arms.values():
            server.stop()
        raise
    return Canary(front, arms["primary"], arms["challenger"])


__all__ = ["Canary", "router_program", "start_canary"]
