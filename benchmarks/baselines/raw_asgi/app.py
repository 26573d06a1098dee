"""Baseline (r): the HTTP stack's own ceiling, a raw ASGI app with no BentoML at all.

``POST /predict`` reads the whole body and answers a constant JSON body of the generated service's
shape; ``GET /readyz`` and ``/livez`` answer 200. It runs in uvicorn configured as BentoML's worker
configures it (``_bentoml_impl.worker.service``: ``log_config=None``, backlog 2048, no server
header, one worker), with the loop and HTTP parser named explicitly: uvloop and httptools, which
is what uvicorn's ``auto`` picks for BentoML when they are installed. Nothing else runs per
request, so every server's req/s divided by this one's (``×raw``) is the share of the bare HTTP
stack it keeps.

    python app.py --port 8123           # 127.0.0.1 only; stopped by PID (SIGTERM)
"""

from __future__ import annotations

import argparse
import json

ANSWER = json.dumps(
    [{"prediction": 0, "probabilities": {"0": 0.5, "1": 0.5}, "warnings": []}]
).encode()
JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ANSWER)).encode()),
]
OK = b"ok"
TEXT_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
NOT_FOUND_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"9")]


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/predict" and method == "POST":
        more = True
        while more:  # the whole body is read, as every other server must
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})
    elif path in ("/readyz", "/livez") and method == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_HEADERS})
        await send({"type": "http.response.body", "body": OK})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": NOT_FOUND_HEADERS})
        await send({"type": "http.response.body", "body": b"not found"})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="raw ASGI constant endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.host != "127.0.0.1":
        raise SystemExit("the raw ASGI baseline only listens on 127.0.0.1")
    config = uvicorn.Config(
        app=app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        backlog=2048,
        log_config=None,
        workers=1,
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
