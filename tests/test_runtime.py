"""The runtime that ships inside every Bento, tested directly (no server): the batcher's answer
slicing, its per-request fallback and overload answer, the predictor's two input paths, and the
ASGI routes and auth driven through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from workbench.runtime import (
    API_KEY_ENV,
    Batcher,
    Category,
    Number,
    Overloaded,
    Predictor,
    Serving,
    Settings,
)
from workbench.runtime.batching import Job


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    size: Number | None = Field(None, alias="size cm")
    colour: Category | None = Field(None, alias="colour")


class FloatRow(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    a: Number = Field(alias="a")
    b: Number | None = Field(None, alias="b")


def echo(rows: list[Any]) -> list[str]:
    return [json.dumps(row) for row in rows]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_lone_request_goes_at_once_and_gets_its_own_answers():
    calls: list[list[Any]] = []

    def fn(rows: list[Any]) -> list[str]:
        calls.append(list(rows))
        return echo(rows)

    async def main() -> list[str]:
        return await Batcher(fn, max_rows=64, max_wait_s=1.0).submit([1, 2])

    assert run(main()) == ["1", "2"]
    assert calls == [[1, 2]]


def test_requests_arriving_during_a_call_share_the_next_call_and_get_their_own_slices():
    calls: list[list[Any]] = []
    gate = threading.Event()

    def fn(rows: list[Any]) -> list[str]:
        calls.append(list(rows))
        if len(calls) == 1:
            gate.wait(2)  # hold the model busy while the others queue up
        return echo(rows)

    async def main() -> list[list[str]]:
        batcher = Batcher(fn, max_rows=64, max_wait_s=5.0)
        first = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(batcher.submit([f"r{i}", f"s{i}"])) for i in range(5)]
        await asyncio.sleep(0.01)
        gate.set()
        return [await first, *[await job for job in rest]]

    answers = run(main())
    assert answers[0] == ['"a"']
    assert answers[1:] == [[f'"r{i}"', f'"s{i}"'] for i in range(5)]
    assert len(calls) == 2, calls  # the five waiting requests went in one model call
    assert calls[1] == [x for i in range(5) for x in (f"r{i}", f"s{i}")]


def test_a_batch_never_exceeds_max_rows():
    calls: list[int] = []
    gate = threading.Event()

    def fn(rows: list[Any]) -> list[str]:
        calls.append(len(rows))
        if len(calls) == 1:
            gate.wait(2)
        return echo(rows)

    async def main() -> None:
        batcher = Batcher(fn, max_rows=4, max_wait_s=5.0)
        jobs = [asyncio.ensure_future(batcher.submit([i])) for i in range(1)]
        await asyncio.sleep(0.01)
        jobs += [asyncio.ensure_future(batcher.submit([i, i])) for i in range(6)]
        await asyncio.sleep(0.01)
        gate.set()
        for job in jobs:
            await job

    run(main())
    assert max(calls) <= 4 and sum(calls) == 13


def test_when_a_shared_call_fails_each_request_is_tried_alone_and_only_the_bad_one_fails():
    gate = threading.Event()
    calls: list[list[Any]] = []

    def fn(rows: list[Any]) -> list[str]:
        calls.append(list(rows))
        if len(calls) == 1:
            gate.wait(2)
        if "bad" in rows:
            raise ValueError("the model refuses 'bad'")
        return echo(rows)

    async def main() -> list[Any]:
        batcher = Batcher(fn, max_rows=64, max_wait_s=5.0)
        first = asyncio.ensure_future(batcher.submit(["warm"]))
        await asyncio.sleep(0.01)
        jobs = [asyncio.ensure_future(batcher.submit([x])) for x in ("ok1", "bad", "ok2")]
        await asyncio.sleep(0.01)
        gate.set()
        await first
        return await asyncio.gather(*jobs, return_exceptions=True)

    ok1, bad, ok2 = run(main())
    assert ok1 == ['"ok1"'] and ok2 == ['"ok2"']
    assert isinstance(bad, ValueError)
    assert calls[1] == ["ok1", "bad", "ok2"] and calls[2:] == [["ok1"], ["bad"], ["ok2"]]


def test_the_after_call_hook_gets_each_calls_answered_jobs_in_the_model_thread():
    """The monitoring window is filled where the rows are, off the event loop: after each model
    call the batcher hands the hook the call's answered jobs (not a refused one), each with its
    own rows, answers and the context its caller gave, in the model thread."""
    gate = threading.Event()
    handed: list[tuple[str, list[tuple[Any, list[Any], list[str] | None]]]] = []

    def fn(rows: list[Any]) -> list[str]:
        if rows == ["warm"]:
            gate.wait(2)
        if "bad" in rows:
            raise ValueError("the model refuses 'bad'")
        return echo(rows)

    def after_call(jobs: list[Job]) -> None:
        handed.append(
            (threading.current_thread().name, [(j.context, j.rows, j.answers) for j in jobs])
        )

    async def main() -> list[Any]:
        batcher = Batcher(fn, max_rows=64, max_wait_s=5.0, after_call=after_call)
        first = asyncio.ensure_future(batcher.submit(["warm"]))
        await asyncio.sleep(0.01)
        jobs = [
            asyncio.ensure_future(batcher.submit(rows, context=context))
            for rows, context in ((["a", "b"], "A"), (["c"], None), (["bad"], "B"), (["d"], "D"))
        ]
        await asyncio.sleep(0.01)
        gate.set()
        assert await first == ['"warm"']
        return await asyncio.gather(*jobs, return_exceptions=True)

    a, c, bad, d = run(main())
    assert (a, c, d) == (['"a"', '"b"'], ['"c"'], ['"d"'])
    assert isinstance(bad, ValueError)
    assert [name.startswith("model") for name, _ in handed] == [True, True]
    assert handed[0][1] == [(None, ["warm"], ['"warm"'])]
    assert handed[1][1] == [
        ("A", ["a", "b"], ['"a"', '"b"']),
        (None, ["c"], ['"c"']),
        ("D", ["d"], ['"d"']),
    ]


def test_an_after_call_hook_that_fails_leaves_the_answers_standing():
    def after_call(jobs: list[Job]) -> None:
        raise RuntimeError("window broken")

    async def main() -> Any:
        batcher = Batcher(echo, max_rows=64, max_wait_s=1.0, after_call=after_call)
        return await batcher.submit([1], context="kept")

    assert run(main()) == ["1"]


def test_a_request_queued_longer_than_the_bound_is_answered_overloaded():
    def slow(rows: list[Any]) -> list[str]:
        time.sleep(0.3)
        return echo(rows)

    async def main() -> list[Any]:
        batcher = Batcher(slow, max_rows=1, max_wait_s=0.05)
        jobs = [asyncio.ensure_future(batcher.submit([i])) for i in range(3)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    first, *queued = run(main())
    assert first == ["0"]
    assert all(isinstance(result, Overloaded) for result in queued), queued


def test_a_model_with_short_calls_runs_in_the_event_loop_and_shares_calls_per_turn():
    """Warm-up times the model: a call of a few microseconds (one row, and max_rows rows) runs
    in the event loop, where the requests queued in one turn of the loop and the next go in one
    call, the after-call hook in the loop's thread too; a model that takes milliseconds keeps
    its own thread."""
    calls: list[tuple[str, int]] = []

    def quick(rows: list[Any]) -> list[str]:
        calls.append((threading.current_thread().name, len(rows)))
        return echo(rows)

    def slow(rows: list[Any]) -> list[str]:
        time.sleep(0.002)
        return echo(rows)

    hooked: list[str] = []
    inline = Batcher(
        quick,
        max_rows=64,
        max_wait_s=1.0,
        after_call=lambda _jobs: hooked.append(threading.current_thread().name),
    )
    inline.warm_up([1])
    threaded = Batcher(slow, max_rows=64, max_wait_s=1.0)
    threaded.warm_up([1])
    assert inline.inline and inline.full_s < 0.02 and not threaded.inline

    async def main() -> list[list[str]]:
        calls.clear()
        return list(await asyncio.gather(*(inline.submit([i]) for i in range(10))))

    assert run(main()) == [[str(i)] for i in range(10)]
    assert calls == [("MainThread", 10)]  # one call, in the loop's thread
    assert hooked == ["MainThread"]


def test_answer_texts_are_what_json_dumps_writes():
    """The answers' JSON text is made from parts (class keys, labels, ``float.__repr__``) and is
    byte for byte ``json.dumps`` of the answer, for string labels that need escaping, numbers,
    booleans and warnings."""
    from workbench.runtime.predictor import AnswerTexts

    for classes, values in ((["0", "1"], ["1", "0"]), (['a "b"', "é\\x"], ["é\\x", 'a "b"'])):
        texts = AnswerTexts(classes)
        table = [[0.1234567890123, 0.8765432109877], [1.0, 5e-324]]
        for warnings in (None, [["x: unseen category 'é'"], []]):
            assert texts.classified(values, table, warnings) == [
                json.dumps(
                    {
                        "prediction": value,
                        "probabilities": dict(zip(classes, probs, strict=True)),
                        "warnings": [] if warnings is None else warnings[i],
                    }
                )
                for i, (value, probs) in enumerate(zip(values, table, strict=True))
            ]
    for values in ([1, True, False], [1.5, -2.0e-300, 1e22]):
        assert AnswerTexts([]).estimated(values, None) == [
            json.dumps({"prediction": v, "probabilities": None, "warnings": []}) for v in values
        ]


def test_request_counts_are_tallied_then_written_as_prometheus_observe_would():
    """The dispatcher's tallies reach ``/metrics`` with the same counts, sums and buckets as a
    prometheus_client histogram observing each request, the in-progress gauge and the latest
    request time, before the exposition (and by the flush timer within FLUSH_S)."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from workbench.runtime.http import traffic as traffic_module
    from workbench.runtime.http.traffic import Traffic

    durations = [0.0004, 0.0049, 0.0051, 0.02, 0.3, 4.0, 12.0]  # (measured: a bit longer)
    reference = Histogram("d", "d", registry=CollectorRegistry())
    for d in durations:
        reference.observe(d)
    traffic = Traffic(service_name="s", service_version="v", runner_name="r", paths=["/predict"])

    async def main() -> None:
        for d in durations:
            traffic.count("/predict", 200, traffic.started("/predict") - d)
        traffic.started("/predict")  # one still in progress
        assert traffic.timer is not None  # the flush is scheduled
        await asyncio.sleep(traffic_module.FLUSH_S + 0.2)
        assert traffic.timer is not None  # shown again while a request is in progress

    run(main())
    text = generate_latest(traffic.registry).decode()

    def values(text: str, name: str) -> list[float]:
        return [
            round(float(line.rsplit(" ", 1)[1]), 1)
            for line in text.splitlines()
            if line.startswith(name) and 'code="200"' in line or line.startswith(f"{name}{{le")
        ]

    ours = values(text, "bentoml_service_request_duration_seconds_bucket")
    assert ours == values(generate_latest(reference).decode(), "d_bucket")
    assert ours[-1] == len(durations)
    assert 'bentoml_service_request_in_progress{endpoint="/predict"' in text
    in_progress = [
        line for line in text.splitlines() if line.startswith("bentoml_service_request_in_progress")
    ]
    assert in_progress[0].endswith(" 1.0")
    (total,) = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("bentoml_service_request_duration_seconds_sum") and 'code="200"' in line
    ]
    assert total == pytest.approx(sum(durations), abs=0.01)
    (last,) = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("bentoml_service_last_request_timestamp_seconds{")
    ]
    assert abs(last - time.time()) < 10


def test_a_handler_past_its_deadline_is_timed_out_and_its_task_goes_on_cleanly():
    """One sweep for all requests: a handler slower than the bound gets ``TimeoutError`` within
    the bound plus a tick, and its task is not left cancelled (its next await works); a fast one
    is untouched; a cancellation from outside stays a cancellation."""
    from workbench.runtime.http.routes import Deadlines

    deadlines = Deadlines(0.2)

    async def main() -> tuple[float, str, bool]:
        began = time.perf_counter()
        try:
            await deadlines.within(asyncio.sleep(5))
        except asyncio.TimeoutError:
            took = time.perf_counter() - began
        await asyncio.sleep(0.01)  # not cancelled again
        fast = await deadlines.within(asyncio.sleep(0.01, result="fast"))
        task = asyncio.ensure_future(deadlines.within(asyncio.sleep(5)))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            cancelled = True
        return took, fast, cancelled

    took, fast, cancelled = run(main())
    assert 0.2 <= took < 0.2 + deadlines.tick + 0.1
    assert fast == "fast" and cancelled and not deadlines.running and not deadlines.expired

    async def in_another_loop() -> None:  # the sweep starts again in a new loop
        await deadlines.within(asyncio.sleep(5))

    with pytest.raises(asyncio.TimeoutError):
        run(in_another_loop())


SERVICE = {
    "runtime": "sklearn",
    "max_batch_size": 64,
    "max_latency_ms": 1000,
    "max_queue_rows": 8192,
}


def settings(tmp_path: Path, *, service: dict[str, Any] | None = None, **changes: Any) -> Settings:
    """A service's settings (as ``settings.json`` holds them) in ``tmp_path`` beside a model
    card; ``service``: the ``service:`` settings that differ, the API open by default."""
    (tmp_path / "model_card.json").write_text(
        json.dumps({"model_tag": "m:1", "task": "classification"})
    )
    base: dict[str, Any] = {
        "model_tag": "m:1",
        "task": "classification",
        "columns": ["size cm", "colour"],
        "dtypes": {"size cm": "float64", "colour": "object"},
        "categories": {"colour": ["blue", "red"]},
        "fallback": {"colour": "red"},
        "example": {"size cm": 1.0, "colour": "red"},
        "service": {**SERVICE, "auth": "none", **(service or {})},
        "folder": tmp_path,
    }
    return Settings.model_validate({**base, **changes})


def mixed_model(handle_unknown: str = "ignore") -> Any:
    frame = pd.DataFrame({"size cm": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "colour": ["red", "blue"] * 3})
    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", "passthrough", ["size cm"]),
                ("cat", OneHotEncoder(handle_unknown=handle_unknown), ["colour"]),
            ]
        ),
        LogisticRegression(),
    )
    return model.fit(frame, np.array(["no", "no", "no", "yes", "yes", "yes"]))


def test_records_are_cast_to_training_dtypes_and_unseen_categories_are_flagged(tmp_path):
    model = mixed_model()
    predictor = Predictor(model, Row, settings(tmp_path, unseen_policy="accept"))
    rows = [Row(size=2.0, colour="plaid"), Row(size=5.0, colour="red")]
    answers = [json.loads(a) for a in predictor.answer(rows)]
    expected = model.predict(pd.DataFrame({"size cm": [2.0, 5.0], "colour": ["plaid", "red"]}))
    assert [a["prediction"] for a in answers] == expected.tolist()
    assert answers[0]["warnings"] == ["colour: unseen category 'plaid'"]
    assert answers[1]["warnings"] == []
    assert set(answers[0]["probabilities"]) == {"no", "yes"}


def test_an_unseen_category_is_replaced_by_the_fallback_when_the_model_cannot_take_it(tmp_path):
    model = mixed_model(handle_unknown="error")
    predictor = Predictor(model, Row, settings(tmp_path, unseen_policy="replace"))
    (answer,) = [json.loads(a) for a in predictor.answer([Row(size=2.0, colour="plaid")])]
    assert answer["warnings"] == ["colour: unseen category 'plaid' replaced by 'red'"]
    frame = pd.DataFrame({"size cm": [2.0], "colour": ["red"]})
    assert answer["prediction"] == model.predict(frame)[0]


@pytest.mark.parametrize("policy", ["accept", "replace"])
def test_a_frame_of_rows_gets_the_same_model_input_and_warnings_as_the_rows(tmp_path, policy):
    """Batch scoring's column-wise input (``frame_inputs``) equals the service's row-wise one
    (``inputs``), unseen categories and missing values included."""
    predictor = Predictor(mixed_model(), Row, settings(tmp_path, unseen_policy=policy))
    rows = [Row(size=2.0, colour="plaid"), Row(size=None, colour="red"), Row(size=1.0, colour=None)]
    by_rows, warned = predictor.inputs(rows)
    frame = pd.DataFrame({"size cm": [2.0, np.nan, 1.0], "colour": ["plaid", "red", None]})
    by_frame, frame_warned = predictor.frame_inputs(frame)
    pd.testing.assert_frame_equal(by_frame.reset_index(drop=True), by_rows)
    assert frame_warned == warned


def test_all_float_rows_become_one_array_and_missing_values_nan(tmp_path):
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 3.0]})
    model = LinearRegression().fit(X, [0.0, 1.0, 2.0, 3.0])
    spec = settings(
        tmp_path,
        task="regression",
        columns=["a", "b"],
        dtypes={"a": "float64", "b": "float64"},
        categories={},
        float_rows=True,
        frame_input=True,
    )
    predictor = Predictor(model, FloatRow, spec)
    inputs, warnings = predictor.inputs([FloatRow(a=1.0, b=None), FloatRow(a=2.0, b=2.0)])
    assert warnings is None and list(inputs.columns) == ["a", "b"]
    assert np.isnan(inputs.iloc[0, 1]) and inputs.iloc[1].tolist() == [2.0, 2.0]
    (answer,) = [json.loads(a) for a in predictor.answer([FloatRow(a=1.0, b=1.0)])]
    assert answer == {
        "prediction": pytest.approx(
            float(model.predict(pd.DataFrame({"a": [1.0], "b": [1.0]}))[0])
        ),
        "probabilities": None,
        "warnings": [],
    }


class Fallthrough:
    """Stands for BentoML's app behind the runtime's middlewares: it names itself."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b'{"served_by": "bentoml"}'
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def asgi_app(serving: Serving) -> Any:
    return serving.app(Fallthrough())


def started(tmp_path: Path, **service: Any) -> Serving:
    """A started worker's serving, with the ``service:`` settings that differ."""
    serving = Serving(Row, settings(tmp_path, service=service))
    serving.start(mixed_model(), freeze=False)
    return serving


async def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.request(method, path, **kwargs)


def test_a_started_worker_freezes_what_it_loaded_and_collects_the_young_less_often(tmp_path):
    """After start (as a served worker does it), the loaded objects are frozen out of the
    collector and its thresholds are GC_THRESHOLDS: young collections every 50,000 surviving
    containers, not Python's 700 (which ran all the time under load)."""
    import gc

    from workbench.runtime.service import GC_THRESHOLDS

    before = gc.get_threshold()
    try:
        Serving(Row, settings(tmp_path)).start(mixed_model())
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] >= 10_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_predict_route_answers_rows_and_names_the_row_and_field_of_a_bad_one(tmp_path):
    app = asgi_app(started(tmp_path))
    good = run(call(app, "POST", "/predict", json={"rows": [{"size cm": 5.0, "colour": "red"}]}))
    assert good.status_code == 200 and good.json()[0]["prediction"] in ("yes", "no")
    bad = run(
        call(
            app,
            "POST",
            "/predict",
            json={"rows": [{"size cm": 5.0}, {"size cm": "big", "colour": "red"}]},
        )
    )
    assert bad.status_code == 400
    assert [d["loc"] for d in bad.json()["detail"]] == [["rows", 1, "size cm"]]
    empty = run(call(app, "POST", "/predict", json={"rows": []}))
    assert empty.status_code == 200 and empty.json() == []


def test_metadata_is_the_model_card_and_other_paths_go_on(tmp_path):
    app = asgi_app(started(tmp_path))
    assert run(call(app, "GET", "/metadata")).json()["model_tag"] == "m:1"
    assert run(call(app, "GET", "/livez")).json() == {"served_by": "bentoml"}


def test_with_a_key_every_api_route_needs_it_and_health_stays_open(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "k3y")
    app = asgi_app(started(tmp_path, auth="api_key"))
    body = {"rows": [{"size cm": 5.0, "colour": "red"}]}
    refused = run(call(app, "POST", "/predict", json=body))
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert run(call(app, "GET", "/metadata")).status_code == 401
    key = {"authorization": "Bearer k3y"}
    assert run(call(app, "POST", "/predict", json=body, headers=key)).status_code == 200
    assert run(call(app, "GET", "/metadata", headers=key)).status_code == 200
    assert run(call(app, "GET", "/readyz")).json() == {"served_by": "bentoml"}


def test_cors_headers_are_added_for_an_allowed_origin_only(tmp_path):
    app = asgi_app(started(tmp_path, cors_origins=["http://notebook.example"]))
    allowed = run(call(app, "GET", "/metadata", headers={"origin": "http://notebook.example"}))
    assert allowed.headers["access-control-allow-origin"] == "http://notebook.example"
    other = run(call(app, "GET", "/metadata", headers={"origin": "http://elsewhere.example"}))
    assert "access-control-allow-origin" not in other.headers


PREDICT_BODY = {"rows": [{"size cm": 5.0, "colour": "red"}]}


def test_open_paths_are_matched_exactly_and_options_needs_cors(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "k3y")
    app = asgi_app(started(tmp_path, auth="api_key"))
    assert run(call(app, "GET", "/livez/../metadata")).status_code == 401
    assert run(call(app, "GET", "/livezz")).status_code == 401
    preflight = {"origin": "http://a.example", "access-control-request-method": "POST"}
    assert run(call(app, "OPTIONS", "/predict", headers=preflight)).status_code == 401
    with_cors = asgi_app(started(tmp_path, auth="api_key", cors_origins=["http://a.example"]))
    passed = run(call(with_cors, "OPTIONS", "/predict", headers=preflight))
    assert passed.json() == {"served_by": "bentoml"}  # on to BentoML's CORS middleware
    assert run(call(with_cors, "OPTIONS", "/predict")).status_code == 401  # not a preflight


def test_with_auth_required_and_no_key_every_protected_request_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    app = asgi_app(started(tmp_path, auth="api_key"))
    refused = run(
        call(app, "POST", "/predict", json=PREDICT_BODY, headers={"authorization": "Bearer "})
    )
    assert refused.status_code == 401


def test_a_body_that_is_not_json_is_415(tmp_path):
    app = asgi_app(started(tmp_path))
    for kind in ("text/csv", "multipart/form-data", "application/x-www-form-urlencoded"):
        answer = run(call(app, "POST", "/predict", content=b"x", headers={"content-type": kind}))
        assert answer.status_code == 415, kind
        assert "application/json" in answer.json()["error"]


def test_a_body_over_the_limit_is_413_before_it_is_read_and_when_chunked(tmp_path):
    app = asgi_app(started(tmp_path, max_body_mb=1000 / (1 << 20)))
    big = json.dumps({"rows": [{"size cm": 1.0, "colour": "red"}] * 100}).encode()
    declared = run(
        call(app, "POST", "/predict", content=big, headers={"content-type": "application/json"})
    )
    assert declared.status_code == 413 and "1,000 bytes" in declared.json()["error"]

    async def chunks() -> Any:
        for start in range(0, len(big), 200):
            yield big[start : start + 200]

    chunked = run(call(app, "POST", "/predict", content=chunks()))
    assert chunked.status_code == 413


def test_more_rows_than_the_limit_is_413_naming_the_limit(tmp_path):
    app = asgi_app(started(tmp_path, max_request_rows=3))
    answer = run(call(app, "POST", "/predict", json={"rows": [PREDICT_BODY["rows"][0]] * 4}))
    assert answer.status_code == 413
    assert "limit of 3 rows" in answer.json()["error"] and "batches" in answer.json()["error"]


def test_a_request_larger_than_a_batch_is_answered_in_several_model_calls(tmp_path):
    serving = started(tmp_path, max_batch_size=4)
    assert serving.batcher is not None
    calls: list[int] = []
    answer = serving.batcher.fn

    def counted(rows: list[Any]) -> list[str]:
        calls.append(len(rows))
        return answer(rows)

    serving.batcher.fn = counted
    rows = [{"size cm": float(i), "colour": "red"} for i in range(10)]
    result = run(call(asgi_app(serving), "POST", "/predict", json={"rows": rows}))
    assert result.status_code == 200 and len(result.json()) == 10
    assert calls == [4, 4, 2]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("Infinity", "finite_number"),
        ("NaN", "finite_number"),
        ("1e400", "finite_number"),
        ('"inf"', "float_type"),
        ("true", "float_type"),
        ('"5"', "float_type"),
    ],
)
def test_numbers_must_be_finite_json_numbers(tmp_path, value: str, kind: str):
    app = asgi_app(started(tmp_path))
    body = '{"rows": [{"size cm": ' + value + ', "colour": "red"}]}'
    answer = run(
        call(
            app,
            "POST",
            "/predict",
            content=body.encode(),
            headers={"content-type": "application/json"},
        )
    )
    assert answer.status_code == 400
    assert answer.json()["detail"][0] == {
        "type": kind,
        "loc": ["rows", 0, "size cm"],
        "msg": answer.json()["detail"][0]["msg"],
    }


def test_rows_the_model_cannot_answer_are_a_400_naming_them(tmp_path):
    class Picky:
        classes_ = np.array(["no", "yes"])

        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            if (X["size cm"] > 100).any():
                raise ValueError("Input contains infinity")
            return np.tile([0.25, 0.75], (len(X), 1))

        def predict(self, X: pd.DataFrame) -> np.ndarray:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]

    serving = Serving(Row, settings(tmp_path))
    serving.start(Picky(), freeze=False)
    rows = [{"size cm": v, "colour": "red"} for v in (1.0, 1e300, 2.0, 3.0, 1e301)]
    answer = run(call(asgi_app(serving), "POST", "/predict", json={"rows": rows}))
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert [d["loc"] for d in detail] == [["rows", 1], ["rows", 4]]
    assert all(d["type"] == "model_refused" and "infinity" in d["msg"] for d in detail)


def test_a_full_queue_is_429_and_a_long_wait_503_both_with_retry_after(tmp_path):
    gate = threading.Event()

    def held(rows: list[Any]) -> list[str]:
        gate.wait(2)
        return echo([1] * len(rows))

    serving = started(tmp_path)
    serving.batcher = Batcher(held, max_rows=2, max_wait_s=5.0, max_queued_rows=2)
    app = asgi_app(serving)

    async def main() -> list[httpx.Response]:
        first = asyncio.ensure_future(call(app, "POST", "/predict", json=PREDICT_BODY))
        await asyncio.sleep(0.05)  # the model is busy with the first
        second = asyncio.ensure_future(
            call(app, "POST", "/predict", json={"rows": PREDICT_BODY["rows"] * 2})
        )
        await asyncio.sleep(0.05)  # two rows wait now: the queue is full
        third = await call(app, "POST", "/predict", json=PREDICT_BODY)
        gate.set()
        return [await first, await second, third]

    first, second, third = run(main())
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert int(third.headers["retry-after"]) >= 1

    serving.batcher = Batcher(
        lambda rows: (time.sleep(0.3), echo([1] * len(rows)))[1], max_rows=1, max_wait_s=0.05
    )

    async def slow() -> list[httpx.Response]:
        jobs = [call(app, "POST", "/predict", json=PREDICT_BODY) for _ in range(3)]
        return list(await asyncio.gather(*jobs))

    statuses = sorted(r.status_code for r in run(slow()))
    assert statuses[0] == 200 and statuses[-1] == 503


def test_the_openapi_document_lists_every_status_and_the_bearer_scheme(tmp_path):
    from workbench.runtime.http.handlers import route_table
    from workbench.runtime.http.openapi import document

    spec = {
        "paths": {
            "/predict": {"post": {"responses": {"200": {"description": "ok"}, "404": {}}}},
            "/readyz": {"get": {"responses": {"200": {"description": "ok"}}}},
        }
    }
    secured = Serving(Row, settings(tmp_path, service={"auth": "api_key"}))
    patched = document(spec, route_table(secured), secured.settings)
    responses = patched["paths"]["/predict"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "413", "415", "429", "500", "503", "504"}
    assert (
        responses["400"]["content"]["application/json"]["schema"]["properties"]["detail"]["type"]
        == "array"
    )
    assert "Retry-After" in responses["429"]["headers"]
    assert patched["paths"]["/predict"]["post"]["security"] == [{"bearerAuth": []}]
    assert "401" in patched["paths"]["/metadata"]["get"]["responses"]
    assert patched["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "503" in patched["paths"]["/readyz"]["get"]["responses"]
    assert "security" not in patched["paths"]["/readyz"]["get"]  # auth=False in the table
    open_serving = Serving(Row, settings(tmp_path))
    open_spec = document({"paths": {}}, route_table(open_serving), open_serving.settings)
    assert "components" not in open_spec
    assert "401" not in open_spec["paths"]["/metadata"]["get"]["responses"]


def test_start_up_refuses_a_missing_key_and_a_changed_model(tmp_path, monkeypatch):
    from workbench.runtime import DeploymentError, file_sha256

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "saved_model.pkl").write_bytes(b"the packaged bytes")
    packaged = file_sha256(model_dir / "saved_model.pkl")
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    serving = Serving(Row, settings(tmp_path, service={"auth": "api_key"}, model_sha256=packaged))
    with pytest.raises(DeploymentError, match=f"{API_KEY_ENV} is not set.*service.auth: none"):
        serving.check_deployment(model_dir)
    monkeypatch.setenv(API_KEY_ENV, "k3y")
    with pytest.raises(DeploymentError, match=r"3 characters long.*at least 16.*token_urlsafe"):
        serving.check_deployment(model_dir)
    monkeypatch.setenv(API_KEY_ENV, "k3y-of-sixteen-chars")
    serving.check_deployment(model_dir)
    (model_dir / "saved_model.pkl").write_bytes(b"tampered bytes")
    with pytest.raises(DeploymentError, match=f"sha256 .* packaged with sha256 {packaged}"):
        serving.check_deployment(model_dir)


def test_not_ready_until_the_warm_up_prediction_succeeds(tmp_path):
    class Broken:
        def predict(self, X: Any) -> Any:
            raise RuntimeError("cannot predict")

    serving = Serving(Row, settings(tmp_path, task="regression"))
    serving.start(Broken(), freeze=False)
    assert serving.ready is False
    assert started(tmp_path).ready is True


def test_a_missing_category_is_nan_whatever_else_is_in_the_batch(tmp_path):
    """A null category reaches the model as NaN (as in training), also in a batch holding only
    nulls, so the answer for a row never depends on the rows it was batched with."""
    frame = pd.DataFrame(
        {
            "size cm": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "colour": ["red", None, "blue", "red", None, "blue"],
        }
    )
    from sklearn.impute import SimpleImputer

    model = make_pipeline(
        ColumnTransformer(
            [
                ("num", "passthrough", ["size cm"]),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["colour"],
                ),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, np.array(["no", "no", "no", "yes", "yes", "yes"]))
    predictor = Predictor(model, Row, settings(tmp_path))
    alone = json.loads(predictor.answer([Row(size=2.0, colour=None)])[0])
    mixed = json.loads(
        predictor.answer([Row(size=2.0, colour=None), Row(size=1.0, colour="red")])[0]
    )
    assert alone == mixed
    expected = model.predict_proba(pd.DataFrame({"size cm": [2.0], "colour": [np.nan]}))[0]
    assert [alone["probabilities"][c] for c in ("no", "yes")] == pytest.approx(expected, abs=1e-12)


def test_a_model_that_fails_on_everything_is_a_server_fault_not_the_rows(tmp_path):
    """When the model fails even on its own warm-up row, the rows are not to blame: the request
    is a 500 (logged), not a 400 telling the client to fix its values."""
    serving = started(tmp_path)

    class Broken:
        classes_ = np.array(["no", "yes"])

        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            raise RuntimeError("the model file is damaged")

    assert serving.batcher is not None
    serving.batcher.fn = Predictor(Broken(), Row, serving.settings).answer
    answer = run(call(asgi_app(serving), "POST", "/predict", json=PREDICT_BODY))
    assert answer.status_code == 500


def test_a_key_with_a_trailing_newline_and_any_scheme_case_is_accepted(tmp_path, monkeypatch):
    """A key read from a file usually ends in a newline; the `Bearer` scheme is case-insensitive."""
    monkeypatch.setenv(API_KEY_ENV, "k3y\n")
    app = asgi_app(started(tmp_path, auth="api_key"))
    for given in ("Bearer k3y", "bearer k3y", "BEARER k3y"):
        answer = run(call(app, "GET", "/metadata", headers={"authorization": given}))
        assert answer.status_code == 200, given
    assert (
        run(call(app, "GET", "/metadata", headers={"authorization": "Basic k3y"})).status_code
        == 401
    )


def test_rows_refused_in_a_shared_call_are_not_searched_for_twice(tmp_path):
    """When a call shared by several requests fails on one request's row, the rows found at
    fault are handed to that request and only the others are asked again: no second search."""
    calls: list[int] = []
    gate = threading.Event()

    class Picky:
        classes_ = np.array(["no", "yes"])

        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            calls.append(len(X))
            if len(calls) == 1:
                gate.wait(2)
            if (X["size cm"] > 100).any():
                raise ValueError("Input contains infinity")
            return np.tile([0.25, 0.75], (len(X), 1))

        def predict(self, X: pd.DataFrame) -> np.ndarray:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]

    predictor = Predictor(Picky(), Row, settings(tmp_path, labels_from_proba=True))

    async def main() -> list[Any]:
        batcher = Batcher(predictor.answer, max_rows=64, max_wait_s=5.0)
        first = asyncio.ensure_future(batcher.submit([Row(size=1.0, colour="red")]))
        await asyncio.sleep(0.05)
        bodies = [[1.0, 2.0], [3.0, 1e300, 4.0], [5.0]]
        jobs = [
            asyncio.ensure_future(batcher.submit([Row(size=v, colour="red") for v in body]))
            for body in bodies
        ]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        return await asyncio.gather(*jobs, return_exceptions=True)

    calls.clear()
    ok, bad, ok2 = run(main())
    assert len(ok) == 2 and len(ok2) == 1
    assert bad.rows == {1: "ValueError: Input contains infinity"}
    # the first call, the shared call of 6 rows, its halving search (4 calls), then the two
    # good requests once more: 8 calls (a second search per request made it 13)
    assert len(calls) == 8, calls


def test_the_window_finds_each_request_row_while_it_holds_it_and_reuses_slots_clean():
    """The monitoring window: a (request, row) pair finds its slot while the window holds that
    row and not after; a request partly overwritten keeps its newer rows; a batch larger than
    the window keeps its last rows; a reused slot has no label left from the row before."""
    from workbench.runtime.monitoring.window import MISSING, Kept, Window

    def kept(x: tuple[Any, ...], c: tuple[Any, ...]) -> Kept:
        return Kept(np.array(x, dtype=np.float64).reshape(-1, 1), [c])

    window = Window(5, ["x", "c"], numeric={"x"})
    first = window.add(kept((1.0, None, 3.0), ("a", "b", None)), ["1", "2", "3"], None, [0, 2], 1.0)
    assert first == 0 and window.rows == 3
    assert np.isnan(window.columns["x"][1])  # None is NaN in a number column
    assert window.slot(0, 1) == 1 and window.slot(2, 0) == 2
    assert window.slot(0, 2) is None  # row 2 belongs to request 2, not request 0
    assert window.slot(2, 1) is None and window.slot(7, 0) is None and window.slot(0, -1) is None
    window.labels[window.slot(0, 0)] = "yes"

    second = window.add(kept((4.0, 5.0, 6.0, 7.0), tuple("pqrs")), list("4567"), None, [0, 1], 2.0)
    assert second == 3 and window.end == 7 and window.rows == 5
    assert window.slot(0, 0) is None and window.slot(0, 1) is None  # overwritten
    assert window.slot(2, 0) == 2 and window.slot(4, 2) == 1  # wrapped around
    assert window.labels[window.slot(4, 1)] is MISSING  # slot 0 held request 0's labelled row
    assert [window.predictions[s] for s in window.order()] == ["3", "4", "5", "6", "7"]
    assert window.request_rows() == {2: 1, 3: 1, 4: 3}

    big = window.add(
        kept(tuple(range(12)), tuple("abcdefghijkl")), list("ABCDEFGHIJKL"), None, [0], 3.0
    )
    assert big == 7 and window.request_rows() == {7: 5}
    assert window.slot(7, 6) is None and window.slot(7, 7) is not None
    assert [window.columns["c"][s] for s in window.order()] == list("hijkl")


# --- the route table and its dispatcher -------------------------------------------------------


def test_a_wrong_method_is_one_405_with_allow_from_the_route_table(tmp_path):
    """Every route of the service's own answers a method it does not serve with the same 405,
    whose ``Allow`` is the route's methods in the table (and the CORS headers of any answer)."""
    from workbench.runtime.http.handlers import route_table

    serving = started(tmp_path, cors_origins=["http://a.example"])
    table = route_table(serving)
    app = asgi_app(serving)
    ours = {path: route for path, route in table.items() if route.handler and route.methods}
    assert set(ours) == {"/predict", "/metadata", "/feedback", "/monitor", "/metrics"}
    for path, route in ours.items():
        wrong = "DELETE"
        answer = run(call(app, wrong, path, headers={"origin": "http://a.example"}))
        assert answer.status_code == 405, path
        assert answer.headers["allow"] == ", ".join(sorted(route.methods or ())), path
        assert answer.json() == {
            "error": f"DELETE is not allowed on {path}: use {answer.headers['allow']}"
        }
        assert answer.headers["access-control-allow-origin"] == "http://a.example"


def test_a_preflight_goes_to_bentomls_cors_only_when_cors_is_on(tmp_path):
    preflight = {"origin": "http://a.example", "access-control-request-method": "POST"}
    with_cors = asgi_app(started(tmp_path, cors_origins=["http://a.example"]))
    for path in ("/predict", "/metadata", "/monitor", "/nowhere"):
        answer = run(call(with_cors, "OPTIONS", path, headers=preflight))
        assert answer.json() == {"served_by": "bentoml"}, path
    without = asgi_app(started(tmp_path))
    answer = run(call(without, "OPTIONS", "/metadata", headers=preflight))
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"


def test_a_path_not_in_the_table_goes_inward_after_the_key_check(tmp_path, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "k3y")
    app = asgi_app(started(tmp_path, auth="api_key"))
    key = {"authorization": "Bearer k3y"}
    assert run(call(app, "GET", "/nowhere")).status_code == 401
    assert run(call(app, "PUT", "/nowhere", headers=key)).json() == {"served_by": "bentoml"}
    open_app = asgi_app(started(tmp_path))
    assert run(call(open_app, "GET", "/nowhere")).json() == {"served_by": "bentoml"}


def test_which_routes_need_the_key_is_route_auth_in_the_table(tmp_path, monkeypatch):
    """Every table entry with ``auth`` answers 401 without the key (any method), every entry
    without it is served (BentoML's own routes pass inward whatever the method)."""
    from workbench.runtime.http.handlers import route_table

    monkeypatch.setenv(API_KEY_ENV, "k3y")
    serving = started(tmp_path, auth="api_key")
    app = asgi_app(serving)
    for path, route in route_table(serving).items():
        where = path + "app.css" if route.prefix else path
        method = sorted(route.methods)[0] if route.methods else "GET"
        answer = run(call(app, method, where))
        assert (answer.status_code == 401) == route.auth, (path, answer.status_code)
        if route.auth:
            assert answer.headers["www-authenticate"] == "Bearer"
        elif route.handler is None:
            assert answer.json() == {"served_by": "bentoml"}, path


def test_the_openapi_document_has_exactly_the_documented_routes_of_the_table(tmp_path):
    from workbench.runtime.http.handlers import route_table
    from workbench.runtime.http.openapi import document

    health = {"get": {"responses": {"200": {"description": "ok"}}}}
    bentoml_spec = {
        "paths": {
            "/predict": {"post": {"responses": {"200": {"description": "ok"}}}},
            **{path: json.loads(json.dumps(health)) for path in ("/livez", "/healthz", "/readyz")},
            "/metrics": json.loads(json.dumps(health)),
            "/somewhere-else": json.loads(json.dumps(health)),
        }
    }
    for window_rows in (0, 1000):
        serving = Serving(Row, settings(tmp_path, monitor={"window_rows": window_rows}))
        table = route_table(serving)
        spec = document(json.loads(json.dumps(bentoml_spec)), table, serving.settings)
        documented = {path for path, route in table.items() if route.doc is not None}
        assert set(spec["paths"]) == documented
        assert ("/feedback" in documented) == (window_rows > 0)
        for path, item in spec["paths"].items():
            methods = table[path].methods
            assert methods is None or {m.upper() for m in item} <= methods, path


# --- one settings contract ---------------------------------------------------------------------


def test_the_config_sections_are_the_runtime_settings_and_round_trip_into_the_bento(tmp_path):
    """``workbench.yaml``'s ``service:`` and ``monitor:`` are the runtime's models; what
    packaging writes (``settings.json``) reads back the same in the Bento, byte for byte."""
    from workbench.config import parse_config
    from workbench.runtime.settings import MonitorSettings, PackagedService, ServiceSettings

    config = parse_config(
        {
            "name": "m",
            "model": "m.joblib",
            "data": {"train": "t.csv", "test": "t.csv", "target": "y"},
            "service": {"max_batch_size": 16, "max_body_mb": 2, "cors_origins": ["http://a"]},
            "monitor": {"window_rows": 2000, "gates": {"accuracy": {"min": 0.8}}},
        },
        root=tmp_path,
    )
    assert type(config.service) is ServiceSettings and type(config.monitor) is MonitorSettings
    service = PackagedService.model_validate(
        {**config.service.model_dump(), **SERVICE, "max_batch_size": 16}
    )
    written = settings(tmp_path, service=service.model_dump(), monitor=config.monitor).write()
    (tmp_path / "settings.json").write_text(written)
    read = Settings.read(tmp_path)
    assert read.write() == written and read.folder == tmp_path
    assert read.service.max_batch_size == 16 and read.service.max_body_bytes == 2 << 20
    assert read.monitor == config.monitor and read.monitor.gates["accuracy"].min == 0.8
    assert read.service.cors()["access_control_allow_origins"] == ["http://a"]


def test_each_default_is_defined_once_in_the_runtime_and_shows_up_in_the_config(monkeypatch):
    """A default changed in the runtime's model is the config's default, and the drift options'
    defaults are the monitor section's."""
    from workbench.config import Config
    from workbench.runtime.settings import MonitorSettings, ServiceSettings
    from workbench.runtime.stattests import DriftOptions

    monkeypatch.setattr(ServiceSettings.model_fields["max_request_rows"], "default", 1234)
    ServiceSettings.model_rebuild(force=True)
    Config.model_rebuild(force=True)
    try:
        assert (
            Config(
                name="m", model="m", data={"train": "a", "test": "b", "target": "y"}
            ).service.max_request_rows
            == 1234
        )
    finally:
        monkeypatch.undo()
        ServiceSettings.model_rebuild(force=True)
        Config.model_rebuild(force=True)
    for name in ("min_window_rows", "drift_share"):
        assert MonitorSettings.model_fields[name].default == DriftOptions.model_fields[name].default
        assert (
            MonitorSettings.model_fields[name].metadata == DriftOptions.model_fields[name].metadata
        )
    monitor = MonitorSettings(min_window_rows=600, drift_share=0.3)
    assert monitor.drift == DriftOptions(min_window_rows=600, drift_share=0.3)


def test_a_bento_settings_file_must_hold_every_packaging_decision(tmp_path):
    from pydantic import ValidationError

    from workbench.runtime.settings import PackagedService

    for missing in ("runtime", "max_batch_size", "max_latency_ms", "max_queue_rows"):
        service = {k: v for k, v in SERVICE.items() if k != missing}
        with pytest.raises(ValidationError, match=missing):
            PackagedService.model_validate(service)
    with pytest.raises(ValidationError, match="runtime"):
        settings(tmp_path, service={"runtime": "auto"})


# --- the drift-test registry -------------------------------------------------------------------


def test_an_unknown_drift_test_lists_the_known_ones():
    from workbench.runtime.stattests import STATTESTS, get_stattest

    assert get_stattest("ks") is STATTESTS["ks"]
    with pytest.raises(ValueError, match="unknown drift test 'anderson'; the drift tests are ks, "):
        get_stattest("anderson")


def test_the_registry_chooses_one_test_per_column_and_gives_each_its_threshold():
    from workbench.runtime.stattests import DEFAULT_OPTIONS, STATTESTS, default_stattest

    assert default_stattest("number", distinct=None, small=True).name == "ks"
    assert default_stattest("text", distinct=None, small=False).name == "wasserstein"
    assert default_stattest("boolean", distinct=2, small=True).name == "z"
    assert default_stattest("category", distinct=3, small=True).name == "chisquare"
    assert default_stattest("integer", distinct=3, small=False).name == "jensenshannon"
    with pytest.raises(ValueError, match="does not test category columns"):
        default_stattest("category", distinct=None, small=True)
    for test in STATTESTS.values():
        assert test.default_threshold == getattr(DEFAULT_OPTIONS, test.threshold_option)
        assert test.description.startswith(test.display_name)
