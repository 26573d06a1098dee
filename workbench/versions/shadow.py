"""Shadow: a challenger answers the champion's traffic before it takes over.

Both versions are served side by side on loopback (two ``bentoml serve`` processes, each with its
own key), a replay file is sent to both (:mod:`workbench.serving.replay`, bounded in rows and
time), and the answers are compared: agreement, a confusion table of champion against challenger
labels (or the distribution of their differences for a regressor), the shift of the prediction
distribution, latency of each, and metric deltas when the file holds the labels. The ``shadow:``
gates of ``workbench.yaml`` decide whether the challenger may take over.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.config import Config, ShadowOptions
from workbench.data import load_frame
from workbench.errors import DataError, VersionError
from workbench.integrity import verify_bento
from workbench.results import ShadowGateVerdict, ShadowResult
from workbench.serving.replay import Replay, Target, replay
from workbench.serving.server import Server
from workbench.validation.metrics import advantage
from workbench.versions.agreement import ROLES, Answered, compare_answers, disagreements
from workbench.versions.catalog import StoredVersion, resolve_version


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
    batch_rows = batch_rows or options.batch_rows
    versions = _comparable_versions(config, champion, challenger)
    path = Path(replay_file).expanduser().resolve()
    frame, labels = replay_frame(path, versions, config.data.target)
    done = _replay_both(
        versions,
        frame,
        config,
        log_dir=log_dir,
        batch_rows=batch_rows,
        max_rows=max_rows or options.max_rows,
        max_seconds=max_seconds or options.max_seconds,
    )
    answers, answered = _answered_by_both(done, path)
    result = compare_answers(versions, done, answers, answered, labels, config)
    gates = _gates(result, options)
    return ShadowResult(
        name=versions[0].name,
        champion=versions[0].tag,
        challenger=versions[1].tag,
        task=versions[0].task,
        replay=str(path),
        rows_in_file=len(frame),
        rows_sent=len(answered),
        stopped_by=done.stopped_by,
        batch_rows=batch_rows,
        seconds=done.seconds,
        gates=gates,
        passed=all(g.passed for g in gates),
        disagreements=disagreements(answers, answered, versions[0].task, options.tolerance),
        **result,
    )


def _comparable_versions(config: Config, champion: str, challenger: str) -> list[StoredVersion]:
    """Both versions from the store: two versions of one model, of the same task."""
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
    return versions


def _replay_both(
    versions: list[StoredVersion],
    frame: pd.DataFrame,
    config: Config,
    *,
    log_dir: Path | None,
    batch_rows: int,
    max_rows: int,
    max_seconds: float,
) -> Replay:
    """Serve both versions (once the project's records vouch for both Bentos and models), send
    both the same rows, stop both servers."""
    for version in versions:  # before either is served
        verify_bento(config.root, version.tag)
    servers = _start_both(versions, config, log_dir)
    try:
        targets = [
            Target(role, server.url, server.api_key, version.schema.to_records(frame))
            for role, server, version in zip(ROLES, servers, versions, strict=True)
        ]
        return replay(
            targets,
            batch_rows=batch_rows,
            max_rows=max_rows,
            max_seconds=max_seconds,
            what="the shadow replay",
        )
    finally:
        for server in servers:
            server.stop()


def _answered_by_both(done: Replay, path: Path) -> tuple[Answered, list[int]]:
    """Each role's answers, and the rows both answered (refused when either refused them all,
    or no row was answered by both)."""
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
    return answers, answered
