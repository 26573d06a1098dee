"""What one generated service holds: its settings, model card and row model, and in each worker
the model, its batcher and whether it is ready.

The generated ``service.py`` reads its :class:`~.settings.Settings` (``settings.json``), creates
one :class:`Serving` at import, puts the route table's dispatcher in front of BentoML's app with
:meth:`Serving.install` (:mod:`.http.edge`), calls :meth:`Serving.deploy` (the start-up checks
and the workers' shared folder) from an ``@bentoml.on_deployment`` hook (once, in the ``bentoml
serve`` process, before any worker starts: a problem there is one line and exit code 1, not a
worker restarting forever) and :meth:`Serving.start` from the service's ``__init__`` in each
worker.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, TypeAdapter

from .batching import Batcher, Overloaded, QueueFull
from .card import ModelCard
from .explainer import ExplainBusy, Explainer, ExplainRefused, read_background
from .http import openapi
from .http.edge import install
from .http.handlers import route_table
from .http.routes import ASGIApp, Dispatcher
from .http.traffic import Traffic
from .monitoring.monitor import Monitor
from .monitoring.sharing import create_folder
from .predictor import Predictor, RowsRefused
from .settings import API_KEY_ENV, MODEL_FILE, ONNX_FILE, PREDICT_PATH, README_FILE, Settings

logger = logging.getLogger("bentoml.service")

#: The collector's thresholds once the worker has loaded (after ``gc.freeze()``). Python's
#: default (700, 10, 10) collects the young generation every 700 surviving containers; a request
#: leaves a few behind (the monitoring window keeps each one's row), so at thousands of requests
#: a second the collector ran all the time and a full pass every few thousand requests stalled
#: the event loop. Measured on the reference forest at c=32 (2 cores): +16 % requests/s and p99
#: from ~60 ms to ~10 ms with monitoring off, the same gain with it on (docs/benchmarks.md).
#: Garbage in reference cycles waits at most 50,000 container allocations longer.
GC_THRESHOLDS = (50_000, 50, 100)
#: ``POST /explain`` requests explained or waiting at once per worker; more is 429.
MAX_EXPLAINING = 4
MIN_KEY_CHARS = 16
"""The shortest API key a Bento serves with (``service.auth: api_key``)."""
MAKE_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


class DeploymentError(Exception):
    """This Bento must not serve here: what is wrong and what to do."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Serving:
    """The model-specific pieces of a service, and its state once a worker has started it."""

    def __init__(self, row_model: type[BaseModel], settings: Settings) -> None:
        self.row_model = row_model
        self.settings = settings
        self.card = ModelCard.read(settings.card_path)
        # /metadata answers the card as the file holds it, made once.
        self.card_json = json.dumps(json.loads(settings.card_path.read_bytes())).encode()
        self.rows_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[row_model])  # type: ignore[valid-type]
        self.batcher: Batcher | None = None
        self.monitor: Monitor | None = None
        self.traffic: Traffic | None = None
        self.ready = False
        self.explained: Any = None
        """The scikit-learn model ``/explain`` explains (loaded by :meth:`load` when on)."""
        self.explainer: Explainer | None = None
        self.predictor: Predictor | None = None
        self.explaining = 0
        # One thread of its own: explanations never wait in, or hold up, the model thread.
        self.explain_pool: ThreadPoolExecutor | None = None

    def app(
        self,
        inner: ASGIApp,
        *,
        traffic: Traffic | None = None,
        started: Callable[[], None] | None = None,
    ) -> Dispatcher:
        """The route table's dispatcher in front of ``inner`` (BentoML's app), counting into
        ``traffic`` (a new :class:`~.http.traffic.Traffic` if not given)."""
        if traffic is None:
            name = self.settings.model_tag.partition(":")[0]
            traffic = Traffic(
                service_name=name, service_version="", runner_name=name, paths=[PREDICT_PATH]
            )
        self.traffic = traffic
        return Dispatcher(
            inner,
            routes=route_table(self),
            settings=self.settings,
            traffic=traffic,
            started=started,
        )

    def document(self, spec: dict[str, Any], *, built: bool = True) -> dict[str, Any]:
        """The OpenAPI document of this service's route table, made from BentoML's ``spec``
        (:func:`.http.openapi.document`). During the build (not ``built``) BentoML describes
        the service with its boilerplate: the description is the README beside ``service.py``,
        the one the Bento will hold and describe the service with, as served."""
        readme = self.settings.folder / README_FILE
        if not built and readme.is_file():
            spec.setdefault("info", {})["description"] = readme.read_text(encoding="utf-8")
        return openapi.document(spec, route_table(self), self.settings)

    def install(self, service: Any) -> None:
        """Serve BentoML's ``service`` object behind this route table (:func:`.http.edge.install`:
        the dispatcher in front of BentoML's whole app in every worker)."""
        install(service, self)

    def check_deployment(self, model_dir: Path) -> None:
        """Refuse to serve without the API key auth requires, or with a model whose bytes are not
        the ones packaged; say at start which auth is in force."""
        settings = self.settings
        auth = settings.service.auth
        key = os.environ.get(API_KEY_ENV, "").strip()
        if auth == "api_key" and not key:
            raise DeploymentError(
                f"{API_KEY_ENV} is not set: this Bento requires an API key on every API route "
                f"(service.auth: api_key). Set {API_KEY_ENV}=<key> where it runs (a Kubernetes "
                "Secret, see deploy/kubernetes.yaml), or package it with `service.auth: none` to "
                "serve an open API"
            )
        if auth == "api_key" and len(key) < MIN_KEY_CHARS:
            raise DeploymentError(
                f"{API_KEY_ENV} is {len(key)} characters long; a key must have at least "
                f"{MIN_KEY_CHARS}: make one with {MAKE_KEY}"
            )
        served = [(model_dir / MODEL_FILE, settings.model_sha256)]
        if settings.service.runtime == "onnx":
            served.append((settings.folder / ONNX_FILE, settings.onnx_sha256))
        for path, packaged in served:
            found = file_sha256(path) if path.is_file() else "(no such file)"
            if packaged and found != packaged:
                raise DeploymentError(
                    f"model {settings.model_tag}: {path} has sha256 {found}, but this Bento was "
                    f"packaged with sha256 {packaged}; the model was altered or corrupted. Import "
                    "the Bento again (bentoml import) or package the model again"
                )
        if auth == "api_key":
            logger.info("auth: every API route requires 'Authorization: Bearer <%s>'", API_KEY_ENV)
        else:
            logger.warning("auth: none (service.auth: none): every API route is open")

    def deploy(self, model_dir: Path) -> None:
        """Once, in the ``bentoml serve`` process before any worker starts: the start-up checks
        (:meth:`check_deployment`), and with several monitored workers the private folder they
        share (:func:`~.monitoring.sharing.create_folder`; the workers inherit its name)."""
        self.check_deployment(model_dir)
        if self.settings.service.workers > 1 and self.settings.monitor.enabled:
            create_folder()

    def load(self, sklearn_model: Callable[[], Any]) -> Any:
        """What answers requests: the ONNX graph beside ``service.py`` (``runtime: onnx``), else
        ``sklearn_model()``, the scikit-learn model loaded from the store (which ``/explain``
        explains, whatever serves the predictions)."""
        settings = self.settings
        if settings.explanation is not None:
            self.explained = sklearn_model()
        if settings.service.runtime != "onnx":
            return self.explained if self.explained is not None else sklearn_model()
        from .onnx_model import OnnxModel  # onnxruntime is only needed for an ONNX Bento

        classes = None if settings.classes is None else np.asarray(settings.classes)
        graph = (settings.folder / ONNX_FILE).read_bytes()
        return OnnxModel(graph, classes=classes, probabilities=settings.probabilities)

    def start(self, model: Any, *, freeze: bool = True) -> Batcher:
        """Load the model into a predictor and batcher and warm it up: ready when the warm-up
        prediction succeeds. With ``freeze``, what exists now is kept out of the garbage
        collector."""
        settings = self.settings
        predictor = Predictor(model, self.row_model, settings)
        self.predictor = predictor
        if settings.monitor.enabled:
            self.monitor = Monitor(settings, self.row_model, self.card)
        batcher = Batcher(
            predictor.answer,
            max_rows=settings.service.max_batch_size,
            max_wait_s=settings.service.max_wait_s,
            max_queued_rows=settings.service.max_queue_rows,
            after_call=None if self.monitor is None else self.monitor.after_call,
        )
        try:
            batcher.warm_up([self.row_model.model_validate(settings.example)])
        except Exception as exc:  # noqa: BLE001 - not ready, and the log says why
            logger.error(
                "not ready: the warm-up prediction on the example row failed (%s: %s); /readyz "
                "answers 503",
                type(exc).__name__,
                exc,
            )
        else:
            self.ready = True
            logger.info(
                "model calls run %s (one row: %.3f ms; %d rows: %.1f ms)",
                "in the event loop" if batcher.inline else "in a thread of their own",
                batcher.call_s * 1000,
                batcher.max_rows,
                batcher.full_s * 1000,
            )
        self.batcher = batcher
        self.start_explainer(model)
        if freeze:
            # What exists now (libraries, the model) lives as long as the worker: keep it out of
            # the garbage collector's full passes, which would otherwise stall requests ~0.1 s.
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
        return batcher

    def start_explainer(self, model: Any) -> None:
        """``/explain``'s explainer (``service.explain: true``), checked on the warm-up row; when
        it fails, the log says why and ``/explain`` answers 503 (predictions are unaffected)."""
        spec = self.settings.explanation
        if spec is None:
            return
        settings = self.settings
        try:
            self.explainer = Explainer(
                self.explained if self.explained is not None else model,
                spec,
                columns=settings.columns,
                classes=settings.classes,
                background=read_background(settings.folder, settings.dtypes),
            )
            self._explain([self.row_model.model_validate(settings.example)])
        except Exception as exc:  # noqa: BLE001 - /explain is off, and the log says why
            self.explainer = None
            logger.error("/explain is unavailable: %s: %s", type(exc).__name__, exc)
            return
        self.explain_pool = ThreadPoolExecutor(1, thread_name_prefix="workbench-explain")

    def _explain(self, rows: Sequence[BaseModel]) -> list[str]:
        assert self.explainer is not None and self.predictor is not None
        X, warnings = self.predictor.inputs(rows)
        return self.explainer.answers(X, warnings)

    def _explain_or_refuse(self, rows: Sequence[BaseModel]) -> list[str]:
        try:
            return self._explain(rows)
        except Exception as exc:
            try:
                self._explain([self.row_model.model_validate(self.settings.example)])
            except Exception:  # noqa: BLE001 - the explainer itself is broken: a server fault
                raise exc from None
            raise ExplainRefused(f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    async def explain(self, rows: Sequence[BaseModel]) -> list[str]:
        """Each row's explanation as JSON text, computed in the explainer's own thread;
        :class:`ExplainBusy` when :data:`MAX_EXPLAINING` requests are already being explained."""
        assert self.explain_pool is not None, "no explainer: check `serving.explainer` first"
        if self.explaining >= MAX_EXPLAINING:
            raise ExplainBusy(f"{MAX_EXPLAINING} explanations are already in progress")
        self.explaining += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.explain_pool, self._explain_or_refuse, rows)
        finally:
            self.explaining -= 1

    async def predict(self, rows: Sequence[BaseModel]) -> list[Any]:
        """The typed API's answer (BentoML's own path: only when the runtime's route is not in
        front of it, e.g. before the worker has started)."""
        from bentoml.exceptions import BadInput, ServiceUnavailable

        if self.batcher is None:
            raise ServiceUnavailable("the model is not loaded yet")
        if not rows:
            return []
        try:
            answers = await self.batcher.submit(list(rows))
        except (Overloaded, QueueFull) as exc:
            raise ServiceUnavailable(str(exc) or "overloaded") from exc
        except RowsRefused as exc:
            raise BadInput(f"the model could not answer rows {sorted(exc.rows)}") from exc
        return list(json.loads("[" + ",".join(answers) + "]"))
