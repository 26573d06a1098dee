"""Fuzzing the generated service: schemathesis against four served Bentos (a numeric classifier, a
mixed-type classifier with nulls and categories, a regressor, each with ``auth: api_key``; and the
mixed classifier with ``auth: none``, whose document has no security scheme), driven by each
server's own OpenAPI document, and Hypothesis against the runtime's row model and ASGI routes
in-process (no server).

The schemathesis runs use every check (``--checks all``) at its defaults and three of
workbench's own (:data:`HOOKS`). None is relaxed: a number column's OpenAPI range is the one
the service takes (a million times the training values' magnitude, where no model's arithmetic
overflows), so a schema-valid row is answered, and a category value's bound keeps any body of
them far under the body limit, so a schema-violating one is a 400, not a 413 (issue 24; before,
``positive_data_acceptance`` had to accept the 400 ``model_refused`` for ``1.7e308`` through a
scaler, and ``negative_data_rejection`` a 413). The number of examples is
set (``-n`` and ``generation.max-examples``), not ``--max-time``: with a time budget schemathesis
repeats fuzzing until it is spent. The run is bounded by the subprocess timeout instead.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, create_model
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from test_service import mixed_frame, mixed_model

from workbench import infer_schema, load_config, package, validate
from workbench.packaging.sources import TEMPLATE
from workbench.runtime import Boolean, Category, Integer, Number, Serving, Settings, Text
from workbench.runtime.columns import MAX_CATEGORY_CHARS, MAX_TEXT_CHARS
from workbench.schema import pipeline_encoders
from workbench.serving import Server

pytestmark = [pytest.mark.serve, pytest.mark.fuzz]

ST = str(Path(sys.executable).with_name("st"))
SEED = 20240611
#: Test cases for ``POST /predict`` per run (the other routes take no input: a few cases each);
#: about 1,100 requests per schema in all, some 20 s per run on this machine.
PREDICT_EXAMPLES = 1000
OTHER_EXAMPLES = 25
MIN_REQUESTS = 1000
ST_TIMEOUT_S = 240
#: Routes that stay open when an API key is required (``auth=False`` in the route table,
#: workbench.runtime.http.handlers.route_table).
OPEN_ROUTES = {"/", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json"}
#: Validation is not what these tests are about: the quick version of it.
QUICK_VALIDATION = {"cv_folds": 0, "importance_top": 0, "champion": False}

# Loaded by schemathesis from a file (`hooks` in the generated schemathesis.toml): checks of the
# service's own promises that the OpenAPI document cannot state.
HOOKS = '''
import json

import schemathesis


def _predict(case, response, status):
    return case.method.upper() == "POST" and case.path == "/predict" and (
        response.status_code == status
    )


def _body(response):
    try:
        return response.json()
    except Exception as exc:
        raise AssertionError(f"the body is not JSON: {response.text[:200]!r}") from exc


def _sent(case):
    """The JSON the request carried (None when it was not JSON)."""
    body = case.body
    if isinstance(body, (str, bytes)):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return body


@schemathesis.check
def rows_refused_only_by_the_model(ctx, response, case):
    """A 400 to a schema-valid body on POST /predict only names rows the model could not answer
    (`model_refused`): any other reason means the document accepts what the service refuses."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if not _predict(case, response, 400):
        return None
    detail = _body(response).get("detail") or []
    other = sorted({str(d.get("type")) for d in detail if d.get("type") != "model_refused"})
    if not detail or other:
        raise AssertionError(
            f"a schema-valid request was refused with 400 for {other or 'no stated reason'}"
        )
    return None


@schemathesis.check
def validation_errors_name_the_row_and_field(ctx, response, case):
    """Every 400 from POST /predict locates each error: under `rows` (row, then field), at the
    body ([]: not JSON or not an object) or at an unknown top-level key of the body."""
    if not _predict(case, response, 400):
        return None
    detail = _body(response).get("detail")
    if not isinstance(detail, list) or not detail:
        raise AssertionError("a 400 without a `detail` list")
    sent = _sent(case)
    keys = set(sent) if isinstance(sent, dict) else set()
    for error in detail:
        loc = error.get("loc")
        ok = isinstance(loc, list) and (
            loc == []
            or loc[0] == "rows"
            or (len(loc) == 1 and loc[0] in keys and error.get("type") == "extra_forbidden")
        )
        if not ok:
            raise AssertionError(f"a 400 detail with loc {loc!r}: {error!r}")
        if loc[:1] == ["rows"] and len(loc) > 1 and not isinstance(loc[1], int):
            raise AssertionError(f"a row error whose loc does not name the row: {error!r}")
    return None


@schemathesis.check
def one_answer_per_row(ctx, response, case):
    """A 200 from POST /predict holds one answer per row sent."""
    if not _predict(case, response, 200):
        return None
    sent = _sent(case)
    rows = sent.get("rows") if isinstance(sent, dict) else None
    answers = _body(response)
    if not isinstance(rows, list) or not isinstance(answers, list) or len(answers) != len(rows):
        raise AssertionError(
            f"{len(rows) if isinstance(rows, list) else '?'} rows got "
            f"{len(answers) if isinstance(answers, list) else 'no list of'} answers"
        )
    return None
'''

CONFIG = """\
hooks = "{hooks}"

[cache]
enabled = false

[[operations]]
include-name = "POST /predict"
generation.max-examples = {predict_examples}
"""


# --- the three projects (seeded generated data, nothing downloaded) -----------------------------


def write_project(
    folder: Path,
    *,
    name: str,
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    gates: dict[str, Any],
) -> Path:
    (folder / "data").mkdir(parents=True)
    (folder / "models").mkdir()
    train.to_csv(folder / "data" / "train.csv", index=False)
    test.to_csv(folder / "data" / "test.csv", index=False)
    features = [c for c in train.columns if c != target]
    reread = pd.read_csv(folder / "data" / "train.csv")  # fitted on what validation will read
    joblib.dump(model.fit(reread[features], reread[target]), folder / "models" / "model.joblib")
    config = {
        "name": name,
        "model": "models/model.joblib",
        "data": {"train": "data/train.csv", "test": "data/test.csv", "target": target},
        "gates": gates,
    }
    (folder / "workbench.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def numeric_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(0, 2, (n, 8)), columns=[f"x{i}" for i in range(8)])
    frame["label"] = (frame["x0"] + frame["x1"] - frame["x2"] > 0).astype(int)
    return frame


def numeric_project(folder: Path, name: str) -> Path:
    """Eight float columns, int labels: StandardScaler + LogisticRegression."""
    return write_project(
        folder,
        name=name,
        model=make_pipeline(StandardScaler(), LogisticRegression()),
        train=numeric_frame(400, 10),
        test=numeric_frame(120, 11),
        target="label",
        gates={"accuracy": {"min": 0.8}},
    )


def regression_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "area": rng.uniform(20, 200, n),
            "age": rng.uniform(0, 80, n),
            "rooms": rng.integers(1, 8, n),
        }
    )
    noise = rng.normal(0, 5, n)
    frame["price"] = 3 * frame["area"] - 0.5 * frame["age"] + 10 * frame["rooms"] + noise
    return frame


def regression_project(folder: Path, name: str) -> Path:
    """Two float columns and an integer column: StandardScaler + Ridge."""
    return write_project(
        folder,
        name=name,
        model=make_pipeline(StandardScaler(), Ridge()),
        train=regression_frame(400, 20),
        test=regression_frame(120, 21),
        target="price",
        gates={"r2": {"min": 0.9}},
    )


def mixed_project(folder: Path, name: str) -> Path:
    """Float with NaN, int, bool, string category with None; a ColumnTransformer with
    SimpleImputer and OneHotEncoder(handle_unknown="ignore"); string labels."""
    model = mixed_model("ignore")
    folder = write_project(
        folder,
        name=name,
        model=model,
        train=mixed_frame(400, 0),
        test=mixed_frame(120, 1),
        target="label",
        gates={"accuracy": {"min": 0.6}},
    )
    raw = yaml.safe_load((folder / "workbench.yaml").read_text())
    raw["service"] = {"cors_origins": ["http://notebook.example"]}  # preflights pass the auth
    (folder / "workbench.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder


PROJECTS = {"numeric": numeric_project, "mixed": mixed_project, "regression": regression_project}
# Every schema with the key; the open service (the same handlers, a document without a security
# scheme) once, on the richest schema: the other two open runs found nothing the keyed ones did
# not and cost a minute of the suite's CPU.
CASES = [*((kind, "api_key") for kind in PROJECTS), ("mixed", "none")]


def set_options(folder: Path, auth: str) -> None:
    path = folder / "workbench.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["validation"] = QUICK_VALIDATION
    raw["service"] = {**raw.get("service", {}), "auth": auth}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def bentos(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    """The four Bentos, packaged once: (kind, auth) -> Bento tag."""
    tags: dict[tuple[str, str], str] = {}
    for kind, make in PROJECTS.items():
        first = make(tmp_path_factory.mktemp(f"fuzz_{kind}"), f"fuzz_{kind}_key")
        for auth in (auth for k, auth in CASES if k == kind):
            name = f"fuzz_{kind}_{'key' if auth == 'api_key' else 'open'}"
            folder = first
            if auth != "api_key":  # the same model and data, another name and service block
                folder = tmp_path_factory.mktemp(f"fuzz_{kind}_open")
                for sub in ("data", "models"):
                    shutil.copytree(first / sub, folder / sub)
                raw = yaml.safe_load((first / "workbench.yaml").read_text())
                (folder / "workbench.yaml").write_text(
                    yaml.safe_dump({**raw, "name": name}, sort_keys=False)
                )
            set_options(folder, auth)
            config = load_config(folder / "workbench.yaml")
            validate(config).raise_for_gates()
            tags[(kind, auth)] = package(config).bento_tag
    return tags


@dataclass
class Served:
    kind: str
    auth: str
    server: Server
    folder: Path

    @property
    def key_required(self) -> bool:
        return self.auth == "api_key"


@pytest.fixture(scope="module", params=CASES, ids=[f"{k}-{a}" for k, a in CASES])
def served(
    request: pytest.FixtureRequest,
    bentos: dict[tuple[str, str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """One of the four Bentos served on 127.0.0.1 (one at a time), stopped with all its workers."""
    kind, auth = request.param
    folder = tmp_path_factory.mktemp(f"served_{kind}_{auth}")
    server = Server.start(bentos[(kind, auth)], log_dir=folder)
    try:
        yield Served(kind, auth, server, folder)
    finally:
        server.stop()


# --- running schemathesis -----------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    output: str
    entries: list[dict[str, Any]]
    """The HAR entries: one per request schemathesis sent."""

    @property
    def generated(self) -> int | None:
        found = re.search(r"(\d+) generated", self.output)
        return int(found.group(1)) if found else None

    def failures(self) -> str:
        """The FAILURES section of the output (or its tail)."""
        start = self.output.find("FAILURES")
        text = self.output[start:] if start >= 0 else self.output[-3000:]
        return text[:6000]

    def statuses(self) -> Counter[tuple[str, str, int]]:
        return Counter(
            (e["request"]["method"], urlparse(e["request"]["url"]).path, e["response"]["status"])
            for e in self.entries
        )


def schemathesis(
    served: Served, name: str, *, key: bool, predict_examples: int, sanitize: bool = True
) -> Run:
    """``st run`` against the server's own ``/docs.json``: every check, seeded, one worker."""
    folder = served.folder / name
    folder.mkdir()
    hooks = folder / "workbench_checks.py"
    hooks.write_text(HOOKS)
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG.format(hooks=hooks, predict_examples=predict_examples))
    har = folder / "requests.har.json"
    header = ["-H", f"Authorization: Bearer {served.server.api_key}"] if key else []
    command = [
        ST,
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{served.server.url}/docs.json",
        "--mode",
        "all",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "-n",
        str(OTHER_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        # off only where no key is sent: the HAR keeps the real response headers
        "--output-sanitize",
        "true" if sanitize else "false",
        *header,
    ]
    # Loopback only: nothing may go through a proxy.
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    env.pop("SCHEMATHESIS_HOOKS", None)
    try:
        done = subprocess.run(
            command, cwd=folder, env=env, capture_output=True, text=True, timeout=ST_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"st run did not finish in {ST_TIMEOUT_S} s: {exc.stdout!r:.2000}")
    output = done.stdout + done.stderr
    (folder / "st.out").write_text(output)
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    return Run(done.returncode, output, entries)


def test_schemathesis_finds_no_failure_in_over_a_thousand_requests(served: Served):
    """Fuzzed from its own OpenAPI document (examples, coverage and fuzzing phases, positive and
    negative data, every check, the key sent when one is required), the service sends only
    documented statuses and bodies, never a 5xx, accepts what the document accepts and refuses
    what it refuses: schemathesis exits 0 after at least 1,000 requests."""
    run = schemathesis(served, "fuzz", key=served.key_required, predict_examples=PREDICT_EXAMPLES)
    statuses = run.statuses()
    print(
        f"\n{served.kind}-{served.auth}: {len(run.entries)} requests, {run.generated} generated, "
        f"exit {run.returncode}; by status: {dict(Counter(s for _, _, s in statuses.elements()))}"
    )
    assert run.returncode == 0, (
        f"schemathesis found failures ({served.kind}, auth {served.auth}):\n{run.failures()}"
    )
    assert len(run.entries) >= MIN_REQUESTS, (len(run.entries), run.output[-2000:])
    assert not [s for s in statuses if s[2] >= 500]
    if not served.key_required:
        assert not [s for s in statuses if s[2] == 401], "an open API answered 401"


def test_without_the_key_every_api_route_answers_401(served: Served):
    """With ``auth: api_key`` and no ``Authorization`` header, every request to an API route
    (any method, any body) is the documented 401 with ``WWW-Authenticate: Bearer``, while health,
    metrics and the docs stay open; with ``auth: none`` nothing answers 401. Schemathesis (its
    ``ignored_auth`` check included) finds no failure either way."""
    run = schemathesis(served, "keyless", key=False, predict_examples=60, sanitize=False)
    assert run.returncode == 0, run.failures()
    api = [e for e in run.entries if urlparse(e["request"]["url"]).path not in OPEN_ROUTES]
    assert len(api) >= 50
    if not served.key_required:
        assert not [e for e in run.entries if e["response"]["status"] == 401]
        return
    wrong = Counter(
        (e["request"]["method"], urlparse(e["request"]["url"]).path, e["response"]["status"])
        for e in api
        if e["response"]["status"] != 401
    )
    assert not wrong, wrong
    for entry in api:
        headers = {h["name"].lower(): h["value"] for h in entry["response"]["headers"]}
        assert headers.get("www-authenticate") == "Bearer", entry["request"]["url"]
    opened = [e for e in run.entries if urlparse(e["request"]["url"]).path in OPEN_ROUTES]
    assert opened and not [e for e in opened if e["response"]["status"] == 401]


# --- Hypothesis against the row model and the ASGI routes, in-process --------------------------


def row_frame(n: int, seed: int) -> pd.DataFrame:
    """Every column kind, required and nullable, as a CSV reader would give them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size cm": rng.normal(10, 3, n),
            "weight": rng.normal(0.07, 0.01, n),  # a scale < 1: 1e308 overflows the scaler
            "count": rng.integers(0, 5, n),
            "visits": rng.integers(0, 9, n).astype(float),
            "flag": rng.random(n) > 0.5,
            "colour": rng.choice(["red", "green", "blue"], n).astype(object),
            "shape": rng.choice(["round", "square"], n).astype(object),
            "note": [f"note {i} " + " ".join(rng.choice(["ok", "late"], 3)) for i in range(n)],
        }
    )
    frame.loc[rng.random(n) < 0.1, "size cm"] = np.nan
    frame.loc[rng.random(n) < 0.1, "visits"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = None
    return frame


class Fallthrough:
    """Stands for BentoML's app behind the runtime's middlewares (as in tests/test_runtime.py)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"served_by": "bentoml"}'})


@dataclass
class InProcess:
    app: Any
    columns: list[str]
    fields: dict[str, str]
    """Column name -> the Python attribute name of the generated ``Row`` model."""
    classes: set[str]
    max_rows: int


TYPES = {
    "number": Number,
    "integer": Integer,
    "boolean": Boolean,
    "category": Category,
    "text": Text,
}


def row_config() -> ConfigDict:
    """The ``model_config`` of the ``Row`` class in service.py.tmpl, as the template has it."""
    pattern = r"class Row\(BaseModel\):.*?model_config = (ConfigDict\([^)]*\))"
    found = re.search(pattern, TEMPLATE.read_text(), re.S)
    assert found, "service.py.tmpl has no `model_config = ConfigDict(...)` in class Row"
    config: ConfigDict = eval(found.group(1), {"ConfigDict": ConfigDict})
    return config


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> InProcess:
    """The runtime as a generated service sets it up: a ``Row`` model made the way
    service.py.tmpl writes it (the runtime's field types, aliases = the column names, nullable
    columns Optional with default None, the template's own ``model_config``), ``Serving`` started
    on a fitted ColumnTransformer pipeline, its middlewares in front of a stand-in for BentoML."""
    train = row_frame(300, 3)
    labels = np.where(train["size cm"].fillna(10) + train["count"] > 12, "yes", "no")
    numeric = ["size cm", "weight", "count", "visits"]
    model = make_pipeline(
        ColumnTransformer(
            [
                # the scaler makes 1e308 overflow: rows the model refuses (a 400 naming them)
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                ("flag", "passthrough", ["flag"]),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    ["colour", "shape"],
                ),
                ("note", TfidfVectorizer(), "note"),
            ]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(train, labels)
    schema = infer_schema(train, encoders=pipeline_encoders(model))
    kinds = {c.name: (c.kind, c.nullable) for c in schema.columns}
    assert kinds == {
        "size cm": ("number", True),
        "weight": ("number", False),
        "count": ("integer", False),
        "visits": ("integer", True),
        "flag": ("boolean", False),
        "colour": ("category", True),
        "shape": ("category", False),
        "note": ("text", False),
    }
    fields = schema.fields()
    definitions: dict[str, Any] = {}
    for column in schema.columns:
        kind = TYPES[column.kind]
        definitions[fields[column.name]] = (
            (Optional[kind], Field(None, alias=column.name))  # noqa: UP045 - as service.py has it
            if column.nullable
            else (kind, Field(alias=column.name))
        )
    row: type[BaseModel] = create_model("Row", __config__=row_config(), **definitions)
    folder = tmp_path_factory.mktemp("card")
    (folder / "model_card.json").write_text(
        json.dumps({"model_tag": "fuzz:1", "task": "classification"})
    )
    max_rows = 20
    spec = Settings.model_validate(
        {
            "model_tag": "fuzz:1",
            "task": "classification",
            "columns": schema.names,
            "dtypes": schema.request_dtypes(),
            "categories": {
                c.name: c.categories or [] for c in schema.columns if c.kind == "category"
            },
            "example": schema.to_records(train.head(1))[0],
            "service": {
                "auth": "none",
                "runtime": "sklearn",
                "max_batch_size": 8,
                "max_latency_ms": 1000,
                "max_queue_rows": 8192,
                "max_request_rows": max_rows,
            },
            "folder": folder,
        }
    )
    serving = Serving(row, spec)
    serving.start(model, freeze=False)
    assert serving.ready
    app = serving.app(Fallthrough())
    return InProcess(app, schema.names, fields, {"no", "yes"}, max_rows)


async def post(
    app: Any, body: bytes, content_type: str | None = "application/json"
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    headers = {} if content_type is None else {"content-type": content_type}
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.post("/predict", content=body, headers=headers)


class Raw(str):
    """A JSON token written as is (``1e400``, ``-0``, ``NaN``...), not as a string."""


RAW_TOKENS = [
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e308",
    "1.7976931348623157e308",
    "5e-324",
    "-0",
    "-0.0",
    "1E+2",
    str(10**400),
    str(-(10**400)),
    str(2**63),
    str(2**63 - 1),
    str(-(2**63)),
    str(-(2**63) - 1),
    "3.0",
    "3.5",
    "0.1e1",
]


def to_json(value: Any) -> str:
    """JSON text of ``value``; floats nan/inf become the tokens NaN/Infinity, :class:`Raw` is
    written as is."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


def junk_values() -> st.SearchStrategy[Any]:
    """Any JSON value, and tokens and strings JSON does not mean as numbers."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**63 - 1]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0]),
        st.sampled_from(RAW_TOKENS).map(Raw),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "inf", "nan", "1e400", "3", "true", ""]),
        st.text(max_size=12),
        st.text(st.characters(categories=["Co", "Cc", "Zs", "So"]), max_size=4),
        st.sampled_from(["red", "green", "blue", "plaid", "\u0000", "\U0001f600", "é", "\ud800"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=6,
    )


JUNK = junk_values()
#: Values a client might send for each column of :func:`row_frame`: good ones, edge ones, junk.
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "size cm": st.one_of(st.none(), st.floats(-1e6, 1e6)),
    "weight": st.floats(allow_nan=False, allow_infinity=False),
    "count": st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(-1e18, 1e18).map(round)),
    "visits": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.just(3.0)),
    "flag": st.booleans(),
    "colour": st.one_of(st.none(), st.sampled_from(["red", "green", "blue"]), st.text()),
    "shape": st.one_of(st.sampled_from(["round", "square"]), st.text(max_size=5)),
    # any string up to the cap; one over it is refused
    "note": st.one_of(
        st.text(), st.sampled_from(["", "x" * MAX_TEXT_CHARS, "x" * (MAX_TEXT_CHARS + 1)])
    ),
}
VALUES = {name: st.one_of(good, good, JUNK) for name, good in GOOD.items()}
EXTRA_KEYS = st.dictionaries(
    st.one_of(
        st.sampled_from(["", "rows", "__unknown__", "SIZE CM", "size  cm"]), st.text(max_size=6)
    ),
    JUNK,
    max_size=2,
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    """A row: each column present or left out, and perhaps keys that are not columns."""
    row = {
        name: draw(values)
        for name, values in VALUES.items()
        if draw(st.integers(0, 9)) > 0  # a column left out now and then
    }
    for key, value in draw(EXTRA_KEYS).items():
        if key not in VALUES and draw(st.integers(0, 3)) == 0:
            row[key] = value
    return row


ROWS = rows()
NULLABLE = ("size cm", "visits", "colour")
#: Rows the schema accepts, values anywhere in their type's range (1e308 included).
VALID_ROWS = st.fixed_dictionaries(
    {name: GOOD[name] for name in GOOD if name not in NULLABLE},
    optional={name: GOOD[name] for name in NULLABLE},
)
WRONG_ENVELOPES = st.one_of(
    JUNK,
    st.builds(lambda r: {"data": [r]}, ROWS),
    st.builds(lambda r, j: {"rows": [r], "extra": j}, ROWS, JUNK),
    st.builds(lambda j: {"rows": j}, JUNK),
    st.builds(lambda r: [r], ROWS),
)
NOT_JSON = st.one_of(st.binary(max_size=40), st.sampled_from([b"", b" ", b"{", b"[]]"]))


@st.composite
def bodies(draw: st.DrawFn, max_rows: int) -> tuple[bytes, Any]:
    """A request body (bytes) and what it holds (None when it is not JSON)."""
    choice = draw(st.integers(0, 19))
    if choice == 0:  # not JSON at all, or not UTF-8
        return draw(NOT_JSON), None
    if choice == 1:  # a lone surrogate, raw (not UTF-8) or escaped
        row = {"size cm": 1.0, "colour": draw(st.characters(categories=["Cs"]))}
        text = to_json({"rows": [row]})
        raw = json.dumps({"rows": [row]}, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return draw(st.sampled_from([text.encode(), raw])), None
    if choice == 2:  # the wrong envelope
        body = draw(WRONG_ENVELOPES)
        return to_json(body).encode(), body
    some = VALID_ROWS if choice < 10 else ROWS
    body = {"rows": draw(st.lists(some, max_size=max_rows + 4))}
    return to_json(body).encode(), body


def check_answer(answer: httpx.Response, body: bytes, data: Any, in_process: InProcess) -> None:
    """200 with one well-formed answer per row, or a 4xx with an `error`; a 400 locates each of
    its errors (see the test below)."""
    status = answer.status_code
    assert status == 200 or 400 <= status < 500, (status, answer.text[:300], body[:300])
    payload = answer.json()
    if status == 200:
        sent = data["rows"]
        assert isinstance(payload, list) and len(payload) == len(sent)
        for one in payload:
            assert one["prediction"] in in_process.classes
            assert set(one["probabilities"]) == in_process.classes
            assert all(math.isfinite(p) for p in one["probabilities"].values())
            assert isinstance(one["warnings"], list)
        return
    assert isinstance(payload.get("error"), str), payload
    if status != 400:
        return
    detail = payload.get("detail")
    assert isinstance(detail, list) and detail, payload
    top = set(data) if isinstance(data, dict) else set()
    for error in detail:
        assert {"type", "loc", "msg"} <= set(error), error
        loc = error["loc"]
        envelope = loc == [] or (
            len(loc) == 1 and loc[0] in top and error["type"] == "extra_forbidden"
        )
        assert envelope or loc[0] == "rows", (error, body[:300])
        if loc[:1] == ["rows"] and len(loc) > 1:
            assert isinstance(loc[1], int) and 0 <= loc[1] < len(data["rows"]), error


# 1e308 / 0.01 in the scaler, then inf - inf: the rows the model refuses
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@settings(
    max_examples=300,
    deadline=5000,  # ms; a shared machine: catches a hang, not jitter
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_body_is_answered_200_or_4xx_and_every_400_names_where(
    in_process: InProcess, data: st.DataObject
):
    """Whatever the body (NaN and ±Infinity as JSON tokens and as strings, integers past int64 and
    10**400, 1e308 and 1e400, unicode with surrogates and escapes, missing and extra fields, wrong
    types, nested junk, the wrong envelope, not JSON, not UTF-8), POST /predict answers 200 with one
    answer per row, or a 4xx with an `error`; every 400 has a `detail` list whose `loc` is [] (not
    JSON, not an object), an unknown top-level key, or starts with "rows" and the row index."""
    body, parsed = data.draw(bodies(in_process.max_rows))
    kind = data.draw(
        st.sampled_from(
            ["application/json", "application/json; charset=utf-8", "Application/JSON", None]
        )
    )
    answer = asyncio.run(post(in_process.app, body, kind))
    reasons = (
        sorted({d.get("type") for d in answer.json().get("detail", [])})
        if answer.status_code == 400
        else []
    )
    event(f"HTTP {answer.status_code} {' '.join(map(str, reasons[:3]))}")
    check_answer(answer, body, parsed, in_process)


def test_a_category_value_is_bounded(in_process: InProcess):
    """An unseen category is echoed in the row's warnings and listed by /monitor, so its value
    is capped (at MAX_CATEGORY_CHARS, below text's cap): at the cap it is answered (with its
    warning), one over it is a 400 naming the row and the field."""
    good = {"size cm": 10.0, "weight": 0.07, "count": 2, "flag": True, "shape": "round"}
    good["note"] = "fine"
    at_cap = {**good, "colour": "x" * MAX_CATEGORY_CHARS}
    answer = asyncio.run(post(in_process.app, json.dumps({"rows": [good, at_cap]}).encode()))
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()[1]["warnings"], answer.json()[1]  # unseen, and said so
    over = {**good, "colour": "x" * (MAX_CATEGORY_CHARS + 1)}
    answer = asyncio.run(post(in_process.app, json.dumps({"rows": [good, over]}).encode()))
    assert answer.status_code == 400, answer.text[:300]
    assert [d["loc"] for d in answer.json()["detail"]] == [["rows", 1, "colour"]]


@settings(max_examples=100, deadline=5000, database=None)
@given(data=st.data())
def test_a_key_that_is_not_a_column_name_is_refused_naming_it(
    in_process: InProcess, data: st.DataObject
):
    """A row must use the training column names (the OpenAPI document lists only those and forbids
    other properties): any other key, the Python attribute names of the generated Row model
    included (`size_cm` for `size cm`), is a 400 whose `loc` is ["rows", i, key]."""
    good = {
        "size cm": 10.0,
        "weight": 0.07,
        "count": 2,
        "visits": 1,
        "flag": True,
        "colour": "red",
        "shape": "round",
        "note": "fine",
    }
    named = {f: c for c, f in in_process.fields.items() if f != c}  # size_cm -> size cm
    key = data.draw(
        st.one_of(st.sampled_from(sorted(named)), st.text(min_size=1, max_size=8)).filter(
            lambda k: k not in good
        )
    )
    # keyed by the attribute name instead of the column name (or an unknown key beside them)
    row = {k: v for k, v in good.items() if k != named.get(key)}
    row[key] = data.draw(st.sampled_from([1.0, 2, True, "red", None]))
    answer = asyncio.run(post(in_process.app, json.dumps({"rows": [good, row]}).encode()))
    assert answer.status_code == 400, (key, answer.text[:300])
    assert ["rows", 1, key] in [d["loc"] for d in answer.json()["detail"]], answer.json()
