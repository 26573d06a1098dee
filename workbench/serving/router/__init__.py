"""The canary router: one endpoint in front of the promoted version and a challenger.

A plain ASGI app run by uvicorn on 127.0.0.1 (``python -m router ...``, started and stopped as a
:class:`~workbench.serving.server.Server` by :mod:`.canary`), forwarding with aiohttp to two
``bentoml serve`` processes on loopback, each a Bento of its own:

- **The split.** A request goes to the challenger with probability ``share``, read from the
  rollout file (``bentos/<name>/release/rollout.yaml``, at most every :data:`SHARE_EVERY_S`; 0
  once it is aborted), so ``workbench rollout advance`` and ``abort`` take effect without a
  restart. A request carrying ``X-Workbench-Key`` is sticky: the key's SHA-256 read as a number
  in [0, 1) below the share goes to the challenger, so one key always lands on one arm, and
  raising the share only moves keys from the promoted version to the challenger.
- **Which version answered.** Every forwarded answer carries ``X-Workbench-Version`` (the Bento
  tag) and ``X-Workbench-Arm`` (``primary`` or ``challenger``); its ``X-Request-Id`` is prefixed
  with the arm (``challenger.<id>``), and ``POST /feedback`` sends each item to the arm whose id it
  names, so live metrics are scored per arm. The whole body is checked first by the runtime's own
  rules (one 400 naming each bad item, nothing applied), as a single Bento does.
- **Each arm apart.** ``GET /monitor`` holds both arms' monitoring reports (drift, prediction
  distribution, live metrics) and the router's own per-arm latency and errors; ``/metrics`` has the
  router's ``workbench_rollout_*`` series and both arms' series with ``arm`` and ``version``
  labels; ``GET /rollout`` is the split's state (open, like ``/metrics``).

Health: ``/livez`` is the router's own; ``/readyz`` and ``/healthz`` are 200 only when both arms
are ready. It imports no workbench (the standard library, aiohttp, uvicorn, PyYAML and
prometheus_client's text parser; its modules import each other relatively) and runs as the
top-level package ``router`` (``python -m router`` with ``workbench/serving`` on the path), as
the runtime runs inside a Bento, so it starts in well under a second without loading workbench;
the runtime's feedback rules are loaded from their file.

:mod:`.arms` (the split, each arm's figures, the share file), :mod:`.app` (the ASGI app),
:mod:`.exposition` (``/metrics``), ``__main__`` (the command).
"""
