"""Shadow: a challenger answers the champion's traffic before it takes over.

Both versions are served side by side on loopback (two ``bentoml serve`` processes, each with its
own key), a replay file is sent to both (:mod:`workbench.serving.replay`, bounded in rows and
time), and the answers are compared: agreement, a confusion table of champion against challenger
labels (or the distribution of their differences for a regressor), the shift of the prediction
distribution, latency of each, and metric deltas when the file holds the labels. The ``shadow:``
gates of ``workbench.yaml`` decide whether the challenger may take over.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]
from scipy.stats import ks_2samp  # type: ignore[import-untyped]

from workbench.config import Config, ShadowOptions
from workbench.data import load_frame
from workbench.errors import DataError, VersionError
from workbench.integrity import verify_bento
from workbench.results import LatencySummary, ShadowGateVerdict, ShadowResult
from workbench.serving.replay import Answers, Replay, Target, replay
from workbench.serving.server import Server
from workbench.validation.metrics import Outputs, advantage, align_labels, metric_values
from workbench.versions.catalog import StoredVersion, resolve_version

ROLES = ("champion", "challenger")
DISAGREEMENTS_KEPT = 20
HISTOGRAM_BINS = 20


def replay_frame(
    path: Path, versions: list[StoredVersion], target: str
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The replay file's rows, checked against both versions' input columns, and its labels."""
    frame = load_frame(path, what="replay", fix="check the replay file's path")
    needed = list(dict.fromkeys(n for v in versions for n in v.schema.names))
    missing = {
        v.tag: [c for c in v.schema.names if c not in frame.columns]
        for v in versions
        if any(c not in frame.columns for c in v.schema.names)
    }
    extra = [c for c in frame.columns if c not in needed and c != target]
    if missing or extra:
        parts = [f"{tag} needs {cols[:5]}" for tag, cols in missing.items()]
        if extra:
            parts.append(f"{extra[:5]} are inputs of neither version (nor the target {target!r})")
        raise DataError(
            f"replay file {path}: its columns do not match the input schema ({'; '.join(parts)}); "
            "replay rows with the model's input columns (and optionally the target)"
        )
    labels = frame[target] if target in frame.columns else None
    if labels is not None and labels.isna().any():
        labels = None
    return frame, labels


def _latency(got: Answers) -> LatencySummary:
    values = np.asarray(got.latency_ms, dtype=float)
    if not len(values):
        return LatencySummary(
            requests=0, errors=got.errors, p50_ms=None, p95_ms=None, p99_ms=None, mean_ms=None
        )
    p50, p95, p99 = (round(float(v), 3) for v in np.percentile(values, [50, 95, 99]))
    return LatencySummary(
        requests=len(values),
        errors=got.errors,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        mean_ms=round(float(values.mean()), 3),
    )


def _start_both(
    versions: list[StoredVersion], config: Config, log_dir: Path | None
) -> list[Server]:
    """Both servers, started at the same time; neither is left running if the other fails."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(Server.start, v.tag, timeout=config.launch.ready_timeout, log_dir=log_dir)
            for v in versions
        ]
        servers, failure = [], None
        for future in futures:
            try:
                servers.append(future.result())
            except BaseException as exc:  # noqa: PERF203 - collect, then stop the other
                failure = exc
    if failure is not None:
        for server in servers:
            server.stop()
        raise failure
    return servers


def _classification(
    result: dict[str, Any], answered: list[int], predictions: dict[str, list[Any]]
) -> None:
    champ = [str(predictions["champion"][i]) for i in answered]
    chall = [str(predictions["challenger"][i]) for i in answered]
    labels = sorted(set(champ) | set(chall))
    position = {label: i for i, label in enumerate(labels)}
    table = [[0] * len(labels) for _ in labels]
    for a, b in zip(champ, chall, strict=True):
        table[position[a]][position[b]] += 1
    shares = {}
    for role, values in (("champion", champ), ("challenger", chall)):
        counts = Counter(values)
        shares[role] = {label: counts[label] / len(values) for label in labels}
    p = np.array([shares["champion"][label] for label in labels])
    q = np.array([shares["challenger"][label] for label in labels])
    result.update(
        agreement=float(np.mean([a == b for a, b in zip(champ, chall, strict=True)])),
        labels=labels,
        confusion=table,
        shares=shares,
        shift=float(jensenshannon(p, q, base=2)) if len(labels) > 1 else 0.0,
        shift_test="Jensen-Shannon distance of the label shares (base 2)",
    )


def _regression(
    result: dict[str, Any],
    answered: list[int],
    predictions: dict[str, list[Any]],
    tolerance: float,
) -> None:
    champ = np.array([float(predictions["champion"][i]) for i in answered])
    chall = np.array([float(predictions["challenger"][i]) for i in answered])
    diff = chall - champ
    quantiles = np.percentile(diff, [5, 25, 50, 75, 95])
    counts, edges = np.histogram(diff, bins=HISTOGRAM_BINS)
    result.update(
        agreement=float(np.mean(np.abs(diff) <= tolerance)),
        tolerance=tolerance,
        difference={
            "mean": float(diff.mean()),
            "std": float(diff.std()),
            "min": float(diff.min()),
            **{f"p{q}": float(v) for q, v in zip((5, 25, 50, 75, 95), quantiles, strict=True)},
            "max": float(diff.max()),
            "mean_abs": float(np.abs(diff).mean()),
        },
        difference_histogram={
            "edges": [float(e) for e in edges],
            "counts": [float(c) for c in counts],
        },
        shift=float(ks_2samp(champ, chall).statistic),
        shift_test="two-sample Kolmogorov-Smirnov statistic of the predictions",
    )


def _metrics(
    version: StoredVersion, answers: list[dict[str, Any] | None], answered: list[int], y: pd.Series
) -> dict[str, float | None]:
    task = version.task
    rows = [answers[i] or {} for i in answered]
    if task == "regression":
        outputs = Outputs(predicted=np.array([float(r["prediction"]) for r in rows]))
        values, _ = metric_values(task, y.to_numpy(dtype=float), outputs)
        return values
    classes = np.asarray(version.card.get("classes") or [])
    labels, unseen = align_labels(y.reset_index(drop=True), classes)
    if unseen:
        return {}
    predicted = np.asarray([r["prediction"] for r in rows], dtype=classes.dtype)
    proba = None
    if all(isinstance(r.get("probabilities"), dict) for r in rows):
        proba = np.array([[r["probabilities"][str(c)] for c in classes] for r in rows])
    values, _ = metric_values(task, labels, Outputs(predicted, classes=classes, proba=proba))
    return values


def _differ(a: Any, b: Any, *, task: str, tolerance: float) -> bool:
    if task == "classification":
        return str(a) != str(b)
    return abs(float(a) - float(b)) > tolerance


def _label_metrics(
    result: dict[str, Any],
    versions: list[StoredVersion],
    answers: dict[str, list[dict[str, Any] | None]],
    answered: list[int],
    labels: pd.Series,
    config: Config,
) -> None:
    """Both versions' metrics on the replayed rows, from what they answered, and the deltas."""
    y = labels.iloc[answered]
    metrics = {
        role: _metrics(v, answers[role], answered, y)
        for role, v in zip(ROLES, versions, strict=True)
    }
    if not all(metrics.values()):
        return
    deltas: dict[str, float | None] = {}
    for name, mine in metrics["challenger"].items():
        theirs = metrics["champion"].get(name)
        deltas[name] = None if mine is None or theirs is None else mine - theirs
    primary = config.validation.primary_metric
    if primary is None:
        primary = "r2" if versions[0].task == "regression" else "roc_auc"
        if deltas.get(primary) is None and primary == "roc_auc":
            primary = "balanced_accuracy"  # a classifier without scores
    result.update(metrics=metrics, metric_deltas=deltas, primary_metric=primary)


def _gates(result: dict[str, Any], options: ShadowOptions) -> list[ShadowGateVerdict]:
    verdicts = []

    def check(
        name: str,
        value: float | None,
        bound: float | None,
        *,
        at_least: bool,
        missing: str = "not measured",
    ) -> None:
        if bound is None:
            return
        threshold = f"{'>=' if at_least else '<='} {bound:g}"
        if value is None:
            verdicts.append(
                ShadowGateVerdict(
                    name=name, value=None, threshold=threshold, passed=False, reason=missing
                )
            )
            return
        passed = value >= bound if at_least else value <= bound
        verdicts.append(
            ShadowGateVerdict(name=name, value=value, threshold=threshold, passed=passed)
        )

    check("min_agreement", result.get("agreement"), options.min_agreement, at_least=True)
    check("max_shift", result.get("shift"), options.max_shift, at_least=False)
    latency = result["latency"]
    ratio = None
    if latency["champion"].p95_ms and latency["challenger"].p95_ms is not None:
        ratio = latency["challenger"].p95_ms / latency["champion"].p95_ms
    check("max_latency_ratio", ratio, options.max_latency_ratio, at_least=False)
    primary = result.get("primary_metric")
    deltas = result.get("metrics") or {}
    gain = None
    if primary and deltas:
        gain = advantage(
            primary, deltas["challenger"].get(primary), deltas["champion"].get(primary)
        )
    if options.min_advantage is not None:
        verdict_name = f"min_advantage ({primary or 'no labels'})"
        why = "needs the target column in the replay file" if not deltas else "not measured"
        check(verdict_name, gain, options.min_advantage, at_least=True, missing=why)
    return verdicts


def shadow(
    config: Config,
    champion: str,
    challenger: str,
    replay_file: str | Path,
    *,
    max_rows: int | None = None,
    max_seconds: float | None = None,
    batch_rows: int | None = None,
    log_dir: Path | None = None,
) -> ShadowResult:
    """Serve both versions side by side, replay the file to both, compare what they answered."""
    options = config.shadow
    max_rows = max_rows or options.max_rows
    max_seconds = max_seconds or options.max_seconds
    batch_rows = batch_rows or options.batch_rows
    versions = [
        resolve_version(ref, name=None if ":" in ref else config.name)
        for ref in (champion, challenger)
    ]
    if versions[0].name != versions[1].name:
        raise VersionError(
            f"{versions[0].tag} and {versions[1].tag} are versions of different models; a "
            "challenger shadows a version of its own model"
        )
    if versions[0].tag == versions[1].tag:
        raise VersionError(f"champion and challenger are both {versions[0].tag}; give two versions")
    if versions[0].task != versions[1].task:
        raise VersionError(
            f"{versions[0].tag} is a {versions[0].task} model and {versions[1].tag} a "
            f"{versions[1].task} model; their answers cannot be compared"
        )
    path = Path(replay_file).expanduser().resolve()
    frame, labels = replay_frame(path, versions, config.data.target)
    task = versions[0].task
    for version in versions:  # before either is served: both Bentos and models as recorded
        verify_bento(config.root, version.tag)
    servers = _start_both(versions, config, log_dir)
    try:
        targets = [
            Target(role, server.url, server.api_key, version.schema.to_records(frame))
            for role, server, version in zip(ROLES, servers, versions, strict=True)
        ]
        done: Replay = replay(
            targets,
            batch_rows=batch_rows,
            max_rows=max_rows,
            max_seconds=max_seconds,
            what="the shadow replay",
        )
    finally:
        for server in servers:
            server.stop()
    for role, got in done.answers.items():
        if done.requests and got.errors == done.requests:
            raise DataError(
                f"the {role} refused every request of the replay ({got.first_errors[0]}); "
                "check that the file's values fit the input schema (see `workbench compare`)"
            )
    answers = {role: done.answers[role].answers for role in ROLES}
    answered = [i for i in range(done.sent) if answers["champion"][i] and answers["challenger"][i]]
    if not answered:
        raise DataError(f"replay file {path}: no row was answered by both versions")
    predictions = {role: [(a or {}).get("prediction") for a in answers[role]] for role in ROLES}
    result: dict[str, Any] = {
        "latency": {role: _latency(done.answers[role]) for role in ROLES},
    }
    if task == "classification":
        _classification(result, answered, predictions)
    else:
        _regression(result, answered, predictions, options.tolerance)
    if labels is not None:
        _label_metrics(result, versions, answers, answered, labels, config)
    gates = _gates(result, options)
    champ, chall = predictions["champion"], predictions["challenger"]
    disagreements = [
        {"row": i, "champion": champ[i], "challenger": chall[i]}
        for i in answered
        if _differ(champ[i], chall[i], task=task, tolerance=options.tolerance)
    ][:DISAGREEMENTS_KEPT]
    return ShadowResult(
        name=versions[0].name,
        champion=versions[0].tag,
        challenger=versions[1].tag,
        task=task,
        replay=str(path),
        rows_in_file=len(frame),
        rows_sent=len(answered),
        stopped_by=done.stopped_by,
        batch_rows=batch_rows,
        seconds=done.seconds,
        gates=gates,
        passed=all(g.passed for g in gates),
        disagreements=disagreements,
        **result,
    )
