"""Capture (only when ``WORKBENCH_CAPTURE_DIR`` is set where the Bento runs): each request and
each feedback is a JSON line in ``capture-<time>-<pid>-<n>.jsonl``; a file is closed at
``monitor.capture_file_mb`` and the oldest files of the folder are deleted while the folder's
capture files exceed ``monitor.capture_total_mb``."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path


class Capture:
    """JSON lines in ``folder``, rotated at ``file_bytes``, all files capped at ``total_bytes``."""

    def __init__(self, folder: Path, file_bytes: int, total_bytes: int) -> None:
        self.folder = folder
        self.file_bytes = max(1, file_bytes)
        self.total_bytes = max(self.file_bytes, total_bytes)
        self.pending: list[str] = []
        self.pending_bytes = 0
        self.dropped = 0
        self.part = 0
        self.path: Path | None = None
        self.lock = threading.Lock()  # lines come from the model thread and the event loop
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, line: str) -> None:
        with self.lock:
            if self.pending_bytes > min(self.total_bytes, 64 << 20):  # bounded between flushes
                self.dropped += 1
                return
            self.pending.append(line)
            self.pending_bytes += len(line) + 1

    def flush(self) -> None:
        with self.lock:
            lines, self.pending, self.pending_bytes = self.pending, [], 0
        for line in lines:
            data = (line + "\n").encode()
            if self.path is None or self.path.stat().st_size + len(data) > self.file_bytes:
                self.part += 1
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                self.path = self.folder / f"capture-{stamp}-{os.getpid()}-{self.part:05d}.jsonl"
                self.path.touch()
                self.prune()
            with open(self.path, "ab") as fh:
                fh.write(data)
        if lines:
            self.prune()

    def prune(self) -> None:
        """Delete the oldest capture files while the folder's total is over the cap."""
        files = []
        for path in self.folder.glob("capture-*.jsonl"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                files.append((stat.st_mtime, path.name, path, stat.st_size))
        files.sort()
        total = sum(f[3] for f in files)
        for _, _, path, size in files:
            if total <= self.total_bytes:
                break
            if path == self.path and len(files) > 1:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                if path == self.path:
                    self.path = None


__all__ = ["Capture"]
