"""Explanations (``POST /explain``, the validate report): additivity, agreement, cost; and
``/predict`` with and without ``/explain`` in the Bento.

    .venv/bin/python benchmarks/explain.py [--rows 100] [--serve] [--rounds 3] [--requests 3000]

**In process** (always), per model, on ``--rows`` test rows explained by the method workbench
chooses (:func:`workbench.explanation.choose_explanation`, the runtime's
:class:`~workbench.runtime.explainer.Explainer`):

* **additivity**: the largest |output - base value - sum of contributions|, the output being the
  model's own (``predict_proba``, ``decision_function``, the booster's raw score);
* **agreement** with a reference computed independently on the same rows, per input column:
  ``shap.LinearExplainer`` (linear), ``shap.TreeExplainer`` (scikit-learn trees, LightGBM,
  XGBoost; a Pipeline's encoded features summed per input column by hand), and for the sampled
  method the exact Shapley values over the same background rows (every coalition enumerated), so
  the figure is the sampling error of 8 permutations x 16 rows;
* **cost**: ms per row explaining ``--rows`` rows at once and one row at a time (median of 5),
  and the seconds to choose and check the method.

**Served** (``--serve``): the same random forest packaged twice, ``service.explain`` false and
true (shap installed and imported only in the second), both served from this environment on
127.0.0.1; ``/predict`` load (one row a request, c=16, ``--requests`` each, ``--rounds``
interleaved rounds) on both, and ``/explain`` at 1 and 100 rows per request. Writes
``benchmarks/results/explain.json`` and ``.md``. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# A store and server records of its own (set before workbench imports bentoml).
os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="workbench-bench-store-"))
os.environ.setdefault("WORKBENCH_STATE_DIR", tempfile.mkdtemp(prefix="workbench-bench-state-"))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "examples"))

from workbench.explanation import choose_explanation  # noqa: E402
from workbench.schema import infer_schema, pipeline_encoders  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SEED = 7


def breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=SEED)


def shop(rows: int = 2000) -> pd.DataFrame:
    from model_projects import frame

    data = frame(seed=SEED, rows=rows)
    return data.assign(label=(data["label"] == "yes").astype(int))


def encoded(last: Any, *, dense: bool = False) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    one_hot = OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)
    encode = ColumnTransformer([("colour", one_hot, ["colour"])], remainder="passthrough")
    return Pipeline([("encode", encode), ("model", last)])


def models() -> list[tuple[str, Any, pd.DataFrame, str]]:
    """(name, unfitted model, data, target)."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    cancer, orders = breast_cancer(), shop()
    return [
        (
            "scaled logistic regression (30 columns)",
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            cancer,
            "target",
        ),
        (
            "random forest, 100 trees (30 columns)",
            RandomForestClassifier(100, random_state=0),
            cancer,
            "target",
        ),
        (
            "histogram gradient boosting (30 columns)",
            HistGradientBoostingClassifier(random_state=0),
            cancer,
            "target",
        ),
        (
            "one-hot + gradient boosting (3 columns)",
            encoded(GradientBoostingClassifier(random_state=0)),
            orders,
            "label",
        ),
        (
            "one-hot + LightGBM (3 columns)",
            encoded(LGBMClassifier(n_estimators=100, verbose=-1, random_state=0), dense=True),
            orders,
            "label",
        ),
        (
            "one-hot + XGBoost (3 columns)",
            encoded(
                XGBClassifier(n_estimators=100, max_depth=4, random_state=0, n_jobs=1), dense=True
            ),
            orders,
            "label",
        ),
        (
            "one-hot + k-nearest neighbours (3 columns)",
            encoded(KNeighborsClassifier(15)),
            orders,
            "label",
        ),
        (
            "scaled k-nearest neighbours (30 columns)",
            make_pipeline(StandardScaler(), KNeighborsClassifier(15)),
            cancer,
            "target",
        ),
    ]


def exact_shapley(explainer: Any, X: pd.DataFrame, index: np.ndarray) -> np.ndarray:
    """The Shapley values the permutation method estimates: every coalition of the input
    columns, absent ones from each background row, averaged over the background."""
    background = explainer.background
    columns = list(X.columns)
    width = len(columns)
    out = np.zeros((len(X), width))
    for i in range(len(X)):
        value: dict[frozenset[int], float] = {}
        for size in range(width + 1):
            for coalition in itertools.combinations(range(width), size):
                batch = background.copy()
                for j in coalition:
                    batch[columns[j]] = X.iloc[i, j]
                batch = batch.astype(background.dtypes.to_dict())
                value[frozenset(coalition)] = float(
                    np.asarray(explainer.model.predict_proba(batch))[:, index[i]].mean()
                )
        for j in range(width):
            for coalition, v in value.items():
                if j in coalition:
                    continue
                weight = (
                    math.factorial(len(coalition))
                    * math.factorial(width - len(coalition) - 1)
                    / math.factorial(width)
                )
                out[i, j] += weight * (value[coalition | {j}] - v)
    return out


def reference(
    model: Any, chosen: Any, explainer: Any, X: pd.DataFrame, labels: list[Any]
) -> tuple[str, np.ndarray | None]:
    """(what the reference is, its values per input column for the explained outputs)."""
    import shap

    spec = chosen.spec
    classes = list(model.classes_)
    index = np.array([classes.index(label) for label in labels])
    sign = np.where(index == 1, 1.0, -1.0)[:, None]
    pre, last = explainer.pre, explainer.last
    Xt = X if pre is None else pre.transform(X)
    Xt = Xt.toarray() if hasattr(Xt, "toarray") else Xt
    if spec.method == "permutation":
        if X.shape[1] > 8:
            return "exact Shapley (skipped: 2^30 coalitions)", None
        return "exact Shapley, same 16 background rows", exact_shapley(explainer, X, index)
    if spec.method == "linear":
        means = np.asarray(spec.means)
        values = shap.LinearExplainer(last, (means, np.eye(len(means)))).shap_values(Xt)
        return f"shap.LinearExplainer {shap.__version__}", sign * values
    values = np.asarray(shap.TreeExplainer(last).shap_values(Xt))
    values = values[np.arange(len(X)), :, index] if values.ndim == 3 else sign * values
    if spec.features is not None:
        grouped = np.zeros((len(X), X.shape[1]))
        for feature, column in enumerate(spec.features):
            if column >= 0:
                grouped[:, column] += values[:, feature]
        values = grouped
    return f"shap.TreeExplainer {shap.__version__}", values


def measure(name: str, model: Any, data: pd.DataFrame, target: str, rows: int) -> dict[str, Any]:
    X, y = data.drop(columns=target), data[target]
    cut = int(len(X) * 0.75)
    model.fit(X.iloc[:cut], y.iloc[:cut])
    schema = infer_schema(X.iloc[:cut], encoders=pipeline_encoders(model))
    classes = np.asarray(model.classes_).tolist()
    started = time.perf_counter()
    chosen = choose_explanation(model, X.iloc[:cut], X.iloc[cut:], schema, classes=classes)
    choose_s = time.perf_counter() - started
    explainer = chosen.explainer(model, schema, classes)
    served = schema.as_served(X.iloc[cut:].head(rows))
    labels, value, base, phi = explainer.explain(served)
    additivity = float(np.max(np.abs(value - base - phi.sum(axis=1))))
    what, expected = reference(model, chosen, explainer, served, labels)
    batch_ms, single_ms = [], []
    for _ in range(5):
        t = time.perf_counter()
        explainer.explain(served)
        batch_ms.append((time.perf_counter() - t) * 1000 / len(served))
        t = time.perf_counter()
        for i in range(min(10, len(served))):
            explainer.explain(served.iloc[[i]])
        single_ms.append((time.perf_counter() - t) * 1000 / min(10, len(served)))
    return {
        "model": name,
        "method": chosen.spec.method,
        "output": chosen.spec.output,
        "sample_size": chosen.spec.sample_size,
        "rows": len(served),
        "additivity_error": additivity,
        "reference": what,
        "max_difference": None if expected is None else float(np.max(np.abs(phi - expected))),
        "mean_abs_contribution": float(np.mean(np.abs(phi))),
        "ms_per_row_batch": round(statistics.median(batch_ms), 3),
        "ms_per_row_single": round(statistics.median(single_ms), 3),
        "choose_s": round(choose_s, 3),
        "reason": chosen.spec.reason,
    }


def _project(folder: Path, explain: bool) -> Any:
    """The bundled example with a 100-tree forest, ``service.explain`` as given."""
    import joblib
    import yaml
    from breast_cancer import write_example
    from sklearn.ensemble import RandomForestClassifier

    from workbench import load_config

    write_example(folder)
    train = pd.read_csv(folder / "data" / "train.csv")
    forest = RandomForestClassifier(100, random_state=0)
    forest.fit(train.drop(columns="target"), train["target"])
    joblib.dump(forest, folder / "models" / "model.joblib")
    raw = yaml.safe_load((REPO / "workbench.yaml").read_text())
    raw.update(name="explain_bench", gates={}, monitor={})
    raw["service"] = {"explain": explain}
    raw["validation"] = {"cv_folds": 0, "importance_top": 0, "champion": False, "explain_rows": 0}
    (folder / "workbench.yaml").write_text(yaml.safe_dump(raw))
    return load_config(folder / "workbench.yaml")


def _rss_mb(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def serve_part(rounds: int, requests: int) -> dict[str, Any]:
    """/predict with and without /explain in the Bento, interleaved; /explain's cost."""
    import httpx
    from loadgen import load

    from workbench import package, validate
    from workbench.serving.launch import serve

    root = Path(tempfile.mkdtemp(prefix="workbench-explain-bench-"))
    servers, out = {}, {}
    for explain in (False, True):
        config = _project(root / f"explain-{explain}", explain)
        validate(config)
        packaged = package(config)
        started = time.perf_counter()
        servers[explain] = serve(config, portable=False)
        out[explain] = {
            "bento": packaged.bento_tag,
            "ready_s": round(time.perf_counter() - started, 1),
            "predict": [],
        }
    try:
        test = pd.read_csv(root / "explain-True" / "data" / "test.csv").drop(columns="target")
        rows = test.to_dict(orient="records")
        body = json.dumps({"rows": rows[:1]}).encode()
        for _ in range(rounds):
            for explain, server in servers.items():
                headers = {
                    "Authorization": f"Bearer {server.api_key}",
                    "Content-Type": "application/json",
                }
                result = load(
                    f"{server.url}/predict",
                    body,
                    concurrency=16,
                    max_requests=requests,
                    seconds=60,
                    headers=headers,
                )
                out[explain]["predict"].append(result.to_dict())
        server = servers[True]
        key = {"Authorization": f"Bearer {server.api_key}"}
        for size, repeats in ((1, 30), (100, 5)):
            took = []
            for r in range(repeats):
                chunk = [rows[(r * size + i) % len(rows)] for i in range(size)]
                t = time.perf_counter()
                answer = httpx.post(
                    f"{server.url}/explain", json={"rows": chunk}, headers=key, timeout=60
                )
                took.append((time.perf_counter() - t) * 1000 / size)
                assert answer.status_code == 200, answer.text
            out[True][f"explain_ms_per_row_{size}"] = round(statistics.median(took), 3)
        for explain, server in servers.items():
            out[explain]["rss_mb"] = round(_rss_mb(server.pid), 1)
    finally:
        for server in servers.values():
            server.stop()
    return {"off": out[False], "on": out[True]}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| model | method | output | additivity error | reference | max difference | "
        "ms/row (100 at once) | ms/row (one at a time) | choose (s) |",
        "|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["models"]:
        diff = "—" if r["max_difference"] is None else f"{r['max_difference']:.1e}"
        size = "" if r["sample_size"] is None else f" ({r['sample_size']} samples)"
        lines.append(
            f"| {r['model']} | {r['method']}{size} | {r['output']} | {r['additivity_error']:.1e} "
            f"| {r['reference']} | {diff} | {r['ms_per_row_batch']:.2f} | "
            f"{r['ms_per_row_single']:.2f} | {r['choose_s']:.2f} |"
        )
    served = report.get("served")
    if served:
        lines += [
            "",
            "| Bento | ready (s) | RSS (MB) | /predict req/s (rounds) | p50 / p99 (ms) |",
            "|---|---:|---:|---|---|",
        ]
        for name, part in (("explain off", served["off"]), ("explain on", served["on"])):
            rates = ", ".join(f"{p['requests_per_s']:.0f}" for p in part["predict"])
            p50 = statistics.median(p["p50_ms"] for p in part["predict"])
            p99 = statistics.median(p["p99_ms"] for p in part["predict"])
            lines.append(
                f"| {name} | {part['ready_s']} | {part['rss_mb']} | {rates} | "
                f"{p50:.1f} / {p99:.1f} |"
            )
        on = served["on"]
        lines += [
            "",
            f"/explain over HTTP: {on['explain_ms_per_row_1']} ms per row one row a "
            f"request, {on['explain_ms_per_row_100']} ms per row 100 rows a request.",
        ]
    lines += ["", f"Machine: {report['machine']}, {report['date']}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help="also the served comparison")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.machine()}",
        "date": date.today().isoformat(),
        "models": [],
    }
    for name, model, data, target in models():
        print(f"measuring {name} ...", flush=True)
        report["models"].append(measure(name, model, data, target, args.rows))
    if args.serve:
        print("serving the forest with and without /explain ...", flush=True)
        report["served"] = serve_part(args.rounds, args.requests)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explain.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "explain.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
