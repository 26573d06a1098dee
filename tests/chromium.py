"""Debian's headless chromium for the browser tests (never a downloaded browser; see DESIGN.md)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [  # what works as root on these machines (see DESIGN.md); --headless comes from
    "--no-sandbox",  # playwright, the fresh --user-data-dir from launch_persistent_context
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("WORKBENCH_ARTIFACTS") or REPO / "tests" / "artifacts")
"""Screenshots and logs CI keeps (``$WORKBENCH_ARTIFACTS``, default ``tests/artifacts/``)."""


def require_chromium() -> None:
    """No silent skip: without the browser the suite fails and says how to install it."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make browser` (apt-get install chromium)")


@contextmanager
def chromium_context(**options: Any) -> Iterator[BrowserContext]:
    """A headless chromium with a fresh profile, closed (with its profile) on exit."""
    require_chromium()
    with (
        tempfile.TemporaryDirectory(prefix="workbench-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, **options
        )
        try:
            yield context
        finally:
            context.close()
