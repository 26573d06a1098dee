"""Closed-loop HTTP load on loopback, bounded in requests and in time: wrk, or an asyncio client.

``wrk`` (C, epoll; Debian package ``wrk``) costs the server least CPU on a 2-core machine, so it is
used when installed. Its Lua script (``post.lua``) sends the JSON body, stops each thread after its
share of the request bound and prints one JSON line. Without wrk, :func:`asyncio_load` does the
same from Python over keep-alive connections (it costs more CPU per request, which the server then
lacks: the report says which generator ran).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from workbench.serving.network import require_loopback

WRK_INSTALL = "apt-get install -y wrk   (Debian/Ubuntu; `brew install wrk` on macOS)"

LUA = r"""
-- wrk's own duration is always the -d time, even when every thread stopped early at its share of
-- the request bound; so each thread notes when it started and stopped (LuaJIT ffi, monotonic
-- clock) and done() divides by the time the requests really took.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } wb_timespec;
int clock_gettime(int clk_id, wb_timespec *tp);
]]
local ts = ffi.new("wb_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) wb_started = now_us() end
local f = assert(io.open(os.getenv("WB_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("WB_AUTH")
if auth and #auth > 0 then wrk.headers["Authorization"] = auth end
local limit = tonumber(os.getenv("WB_MAX_PER_THREAD") or "0")
local count = 0
function response(status, headers, body)
  count = count + 1
  if limit > 0 and count >= limit then
    wb_stopped = now_us()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  local duration, first, last, early = summary.duration, nil, nil, #threads > 0
  for _, thread in ipairs(threads) do
    local started, stopped = thread:get("wb_started"), thread:get("wb_stopped")
    if not started or not stopped then early = false break end
    first = (first and math.min(first, started)) or started
    last = (last and math.max(last, stopped)) or stopped
  end
  if early and last > first then duration = last - first end
  io.write(string.format(
    'WB_RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"stopped_early": %s}\n',
    summary.requests, duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    latency.mean, early and "true" or "false"))
end
"""


@dataclass
class LoadResult:
    """One load level against one server."""

    generator: str
    concurrency: int
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: list[str] = field(default_factory=list)
    stopped_early: bool = False
    """The level ended at its request bound, before its time bound."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    cpus: str | None = None,
) -> LoadResult:
    """``wrk -t1 -c<concurrency> -d<seconds>``, each thread stopping after its share of requests;
    with ``cpus`` (``taskset`` syntax, e.g. ``"0"``) pinned to those CPUs."""
    require_loopback(url, what="the load generator")
    binary = wrk_path()
    if binary is None:
        raise RuntimeError(f"wrk is not installed; install it with: {WRK_INSTALL}")
    threads = 1
    with tempfile.TemporaryDirectory(prefix="wb-wrk-") as tmp:
        script, body_file = Path(tmp) / "post.lua", Path(tmp) / "body.json"
        script.write_text(LUA)
        body_file.write_bytes(body)
        env = {
            **os.environ,
            "WB_BODY_FILE": str(body_file),
            "WB_MAX_PER_THREAD": str(max(1, max_requests // threads)),
            "WB_AUTH": (headers or {}).get("Authorization", ""),
        }
        pin = ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []
        proc = subprocess.run(
            [
                *pin,
                binary,
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds + 30,
        )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WB_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    data = json.loads(line.split(" ", 1)[1])
    wall = data["duration_us"] / 1e6
    kinds = []
    if data["status_errors"]:
        kinds.append("non-2xx status")
    if data["socket_errors"]:
        kinds.append("socket error or timeout")
    return LoadResult(
        generator="wrk",
        concurrency=concurrency,
        requests=data["requests"],
        seconds=round(wall, 3),
        requests_per_s=round(data["requests"] / wall, 1) if wall else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=data["status_errors"] + data["socket_errors"],
        error_kinds=kinds,
        stopped_early=bool(data.get("stopped_early")),
    )


_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)


async def _asyncio_load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    headers: dict[str, str],
) -> tuple[list[float], list[str], float]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[str] = []
    left = max_requests
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def client() -> None:
        nonlocal left
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            errors.append(type(exc).__name__)
            return
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while left > 0 and loop.time() < deadline:
                left -= 1
                started = time.perf_counter()
                writer.write(request)
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    match = _LENGTH.search(head)
                    await reader.readexactly(int(match.group(1)) if match else 0)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    errors.append(type(exc).__name__)
                    return
                latencies.append(time.perf_counter() - started)
                status = int(head[9:12])
                if status != 200:
                    errors.append(f"HTTP {status}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def asyncio_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """The same closed loop from Python over ``concurrency`` keep-alive connections."""
    host, port = require_loopback(url, what="the load generator")
    path = urlparse(url).path or "/"
    latencies, errors, wall = asyncio.run(
        _asyncio_load(
            host,
            port,
            path,
            body,
            concurrency=concurrency,
            max_requests=max_requests,
            seconds=seconds,
            headers=headers or {},
        )
    )
    values = np.array(latencies or [np.nan]) * 1000
    p50, p95, p99, top = (float(v) for v in np.percentile(values, [50, 95, 99, 100]))
    return LoadResult(
        generator="asyncio",
        concurrency=concurrency,
        requests=len(latencies),
        seconds=round(wall, 3),
        requests_per_s=round(len(latencies) / wall, 1) if wall else 0.0,
        p50_ms=round(p50, 3),
        p95_ms=round(p95, 3),
        p99_ms=round(p99, 3),
        max_ms=round(top, 3),
        errors=len(errors),
        error_kinds=sorted(set(errors)),
        stopped_early=len(latencies) >= max_requests,
    )


def load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    generator: str = "auto",
    headers: dict[str, str] | None = None,
    cpus: str | None = None,
) -> LoadResult:
    """One bounded closed-loop level with wrk when available (``generator="auto"``); ``cpus``
    pins wrk (``taskset`` syntax; the asyncio client is not pinned)."""
    use_wrk = generator == "wrk" or (generator == "auto" and wrk_path() is not None)
    options: dict[str, Any] = {"cpus": cpus} if use_wrk else {}
    run = wrk_load if use_wrk else asyncio_load
    return run(
        url,
        body,
        concurrency=concurrency,
        max_requests=max_requests,
        seconds=seconds,
        headers=headers,
        **options,
    )
