"""The router's ASGI app: the split, feedback per arm, each arm apart (see the package)."""

from __future__ import annotations

import asyncio
import hmac
import importlib.util
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from .arms import Arm, ShareFile, arm_for
from .exposition import own_metrics, relabel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VERSION_HEADER = b"x-workbench-version"
ARM_HEADER = b"x-workbench-arm"
KEY_HEADER = b"x-workbench-key"
REQUEST_ID_HEADER = b"x-request-id"
MAX_FEEDBACK_BYTES = 4 << 20
UPSTREAM_TIMEOUT_S = 60.0
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"host"}
)
FEEDBACK_MODULE = Path(__file__).resolve().parents[2] / "runtime" / "monitoring" / "feedback.py"


def _feedback_rules() -> Any:
    """The runtime's ``POST /feedback`` checks (a module of the standard library only)."""
    spec = importlib.util.spec_from_file_location("workbench_feedback_rules", FEEDBACK_MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FEEDBACK = _feedback_rules()


async def _answer(
    send: Send,
    status: int,
    payload: Any,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    text: bool = False,
) -> None:
    body = payload.encode() if text else json.dumps(payload).encode()
    kind = b"text/plain; version=0.0.4" if text else b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class Router:
    """The ASGI app (see the module docstring): ``arms`` by name, the rollout file's share, the
    model's task and classes (for feedback) and the API key the arms require."""

    def __init__(
        self, arms: dict[str, Arm], share: ShareFile, *, task: str, classes: list[Any], key: str
    ) -> None:
        self.arms = arms
        self.share = share
        self.task = task
        self.classes = classes
        self.key = key.strip().encode()
        self.client: aiohttp.ClientSession | None = None
        self.own: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            "/livez": self.livez,
            "/readyz": self.readyz,
            "/healthz": self.readyz,
            "/metrics": self.metrics,
            "/monitor": self.monitor,
            "/rollout": self.rollout,
            "/feedback": self.feedback,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            handler = self.own.get(scope["path"], self.proxy)
            await handler(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # aiohttp, not httpx: against one Bento at c=16 here httpx's AsyncClient did
                # 210-350 requests/s (p50 25-40 ms), aiohttp 1,730 (p50 8 ms); docs/rollout.md.
                # Answers pass on as they came (no decompression), bodies stream both ways.
                self.client = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=200),
                    timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_S),
                    auto_decompress=False,
                    skip_auto_headers=["User-Agent", "Accept-Encoding"],
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.client is not None, "the router's client starts with its lifespan"
        return self.client

    def authorized(self, scope: Scope) -> bool:
        scheme, _, given = (_header(scope, b"authorization") or b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.key)

    async def refuse_unauthorized(self, scope: Scope, send: Send) -> bool:
        if self.key and not self.authorized(scope):
            error = {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"}
            await _answer(send, 401, error, [(b"www-authenticate", b"Bearer")])
            return True
        return False

    # ------------------------------------------------------------ the split

    async def proxy(
        self, scope: Scope, receive: Receive, send: Send, arm: Arm | None = None
    ) -> None:
        """Forward the request to its arm (its own choice unless given), streaming both ways,
        and tell which version answered."""
        arm = arm or self.arms[arm_for(_header(scope, KEY_HEADER), self.share.current())]
        started = time.perf_counter()
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]

        async def body() -> AsyncIterator[bytes]:
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                more = message.get("more_body", False)

        query = scope.get("query_string", b"").decode("latin-1")
        url = arm.url + scope["path"] + (f"?{query}" if query else "")
        given = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        try:
            async with self.http.request(
                scope["method"], URL(url, encoded=True), headers=given, data=body()
            ) as response:
                out = [
                    (k, self._request_id(arm, v) if k.lower() == REQUEST_ID_HEADER else v)
                    for k, v in response.raw_headers
                    if k.lower() not in HOP_BY_HOP
                ]
                start = {"type": "http.response.start", "status": response.status}
                await send({**start, "headers": [*out, *self._which(arm)]})
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            arm.observe(scope["path"], 502, time.perf_counter() - started)
            error = {"error": f"the {arm.name} version ({arm.tag}) did not answer: {exc!r}"}
            await _answer(send, 502, error, self._which(arm))
            return
        arm.observe(scope["path"], status, time.perf_counter() - started)

    async def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        timeout: float = UPSTREAM_TIMEOUT_S,
    ) -> tuple[int, bytes]:
        """(status, body) of one request to an arm; (0, why) when it did not answer."""
        try:
            async with self.http.request(
                method, url, headers=headers, json=json, timeout=aiohttp.ClientTimeout(timeout)
            ) as answer:
                return answer.status, await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return 0, repr(exc).encode()

    @staticmethod
    def _which(arm: Arm) -> list[tuple[bytes, bytes]]:
        return [(VERSION_HEADER, arm.tag.encode()), (ARM_HEADER, arm.name.encode())]

    @staticmethod
    def _request_id(arm: Arm, given: bytes) -> bytes:
        return arm.name.encode() + b"." + given

    # ------------------------------------------------------------ feedback, per arm

    async def feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Each item to the arm its request id names, after the whole body passed the runtime's
        checks; the counts of both arms added up."""
        if scope["method"] != "POST":
            await self.proxy(scope, receive, send, self.arms["primary"])  # its 405
            return
        if await self.refuse_unauthorized(scope, send):
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_FEEDBACK_BYTES:
                await _answer(
                    send,
                    413,
                    {
                        "error": "the feedback body is over 4 MiB: send the "
                        "labels in several requests"
                    },
                )
                return
            more = message.get("more_body", False)
        try:
            body = b"".join(chunks)
            data = json.loads(body) if body.strip() else None
            FEEDBACK.read_feedback(data, self.task, self.classes)
        except ValueError as exc:  # FeedbackError is a ValueError; so is bad JSON
            payload: dict[str, Any] = {
                "error": str(exc)
                if isinstance(exc, FEEDBACK.FeedbackError)
                else f"the body is not valid JSON ({exc})"
            }
            if getattr(exc, "detail", None):
                payload["detail"] = exc.detail  # type: ignore[attr-defined]
            await _answer(send, 400, payload)
            return
        assert isinstance(data, dict)  # read_feedback checked it
        await self._give_feedback(scope, data["feedback"], send)

    async def _give_feedback(self, scope: Scope, items: list[dict[str, Any]], send: Send) -> None:
        groups: dict[str, list[dict[str, Any]]] = {name: [] for name in self.arms}
        unknown: list[dict[str, Any]] = []
        for item in items:
            arm, dot, given = item["request_id"].partition(".")
            if dot and arm in groups:
                groups[arm].append({**item, "request_id": given})
            else:
                unknown.append({"request_id": item["request_id"], "row": item.get("row", 0)})
        totals: Counter[str] = Counter(unknown=len(unknown))
        headers = {"authorization": (_header(scope, b"authorization") or b"").decode("latin-1")}
        for name, group in groups.items():
            if not group:
                continue
            arm = self.arms[name]
            status, body = await self.fetch(
                "POST", f"{arm.url}/feedback", headers=headers, json={"feedback": group}
            )
            if status != 200:
                payload = json.loads(body) if status else {"error": body.decode()}
                await _answer(send, status or 502, payload, self._which(arm))
                return
            counts = json.loads(body)
            for key in ("applied", "unchanged", "updated", "unknown"):
                totals[key] += int(counts.get(key, 0))
            unknown += [
                {**u, "request_id": f"{name}.{u['request_id']}"}
                for u in counts.get("unknown_ids", [])
            ]
        result = {k: totals[k] for k in ("applied", "unchanged", "updated", "unknown")}
        await _answer(send, 200, {**result, "unknown_ids": unknown[:1000]})

    # ------------------------------------------------------------ each arm apart

    def state(self) -> dict[str, Any]:
        share = self.share.current()
        counts = {name: arm.summary() for name, arm in self.arms.items()}
        total = sum(c["requests"] for c in counts.values())
        return {
            "share": share,
            "state": self.share.state,
            "rollout_file": str(self.share.path),
            "observed_share": counts["challenger"]["requests"] / total if total else None,
            "arms": counts,
        }

    async def rollout(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(send, 200, self.state())

    async def monitor(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Both arms' ``/monitor`` reports beside what the router measured of each."""
        if await self.refuse_unauthorized(scope, send):
            return
        headers = {"authorization": (_header(scope, b"authorization") or b"").decode("latin-1")}
        arms = self.arms.values()
        answers = await asyncio.gather(
            *(self.fetch("GET", f"{arm.url}/monitor", headers=headers) for arm in arms)
        )
        state = self.state()
        for (name, arm), (status, body) in zip(self.arms.items(), answers, strict=True):
            report: Any = (
                json.loads(body)
                if status == 200
                else {
                    "error": f"the {name} version ({arm.tag}) did not report: "
                    f"{status or ''} {body[:200].decode(errors='replace')}".strip()
                }
            )
            state["arms"][name]["report"] = report
        await _answer(send, 200, state)

    async def livez(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(send, 200, "\n", text=True)

    async def readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        answers = await asyncio.gather(
            *(self.fetch("GET", f"{arm.url}/readyz", timeout=2.0) for arm in self.arms.values())
        )
        ready = all(status == 200 for status, _ in answers)
        text = "\n" if ready else "not ready: an arm's /readyz is not 200\n"
        await _answer(send, 200 if ready else 503, text, text=True)

    async def metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The router's own series, then both arms' (the runtime's) with ``arm`` and
        ``version`` labels. The caller's key goes on to the arms: with it they add their
        monitoring series (``monitor.public_metrics``), as each would to the caller directly."""
        given = _header(scope, b"authorization")
        headers = {"authorization": given.decode("latin-1")} if given else None
        texts = await asyncio.gather(
            *(
                self.fetch("GET", f"{arm.url}/metrics", headers=headers)
                for arm in self.arms.values()
            )
        )
        families: dict[str, tuple[list[str], list[str]]] = {}
        for arm, (status, body) in zip(self.arms.values(), texts, strict=True):
            if status == 200:
                relabel(body.decode(), {"arm": arm.name, "version": arm.tag}, families)
        lines = own_metrics(self.arms, self.share.current())
        for head, samples in families.values():
            lines += head + samples
        await _answer(send, 200, "\n".join(lines) + "\n", text=True)
