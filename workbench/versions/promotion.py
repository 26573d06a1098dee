"""Promote a version and roll back, with the audit trail in ``bentos/<name>/release/``.

Promotion is gated on the project's test data: the candidate is re-scored and must hold every
metric gate of ``workbench.yaml`` and the ``champion`` gate against the version promoted now,
re-scored on the same rows (``champion: {min: 0}`` when the config sets none: no worse than what
serves). A version whose packaging gates failed is refused too. ``force`` promotes anyway and
records that, and the failed verdicts, with the reason. A rollback returns to the version promoted
before the current one and is not gated: it is the way back when production misbehaves.

Nothing is written to the BentoML store; the history file and the promoted manifest change
together or not at all (:func:`workbench.promotions.record_change`). The version promoted or rolled
back to is first checked against the project's records (:func:`workbench.integrity.verify_bento`),
and its entry records the hashes of its model and files: an anchor, reviewed in git, for every
later command that loads it.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from workbench.config import BASELINE_GATE, CHAMPION_GATE, CV_PREFIX, Config, Gate
from workbench.errors import GateFailure, VersionError
from workbench.integrity import VouchedBento, verify_bento
from workbench.promotions import (
    MANIFEST_FILE,
    Promotion,
    history_path,
    read_history,
    record_change,
    release_dir,
)
from workbench.results import BaselineResult, ChampionResult, GateVerdict, PromotionResult
from workbench.validation.gates import check_gates
from workbench.versions.catalog import StoredVersion, resolve_version, run_records
from workbench.versions.scoring import Scored, TestData, score_version

DEFAULT_CHAMPION_GATE = Gate(min=0.0)
"""Without a ``champion`` gate in the config, a promoted version may not be worse than the last."""


def _user(root: Path) -> str:
    """Who promotes: the git identity of the project (``user.email``), else ``user@host``."""
    try:
        email = subprocess.run(
            ["git", "config", "user.email"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        email = ""
    if email:
        return email
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _line(g: GateVerdict) -> str:
    value = "n/a" if g.value is None else f"{g.value:.4f}"
    text = f"{g.metric} {'PASS' if g.passed else 'FAIL'} {value} (needs {g.threshold})"
    return text + (f": {g.reason}" if g.reason else "")


def _champion(
    config: Config, promoted: str | None, data: TestData, candidate: StoredVersion
) -> tuple[ChampionResult | None, Scored | None]:
    if promoted is None:
        return ChampionResult(note=f"nothing of {config.name!r} is promoted yet"), None
    try:
        current = resolve_version(promoted, name=config.name)
    except VersionError as exc:
        return ChampionResult(tag=promoted, error=str(exc)), None
    if current.task != candidate.task:
        error = f"it is a {current.task} model and {candidate.tag} a {candidate.task} model"
        return ChampionResult(tag=promoted, error=error), None
    scored = score_version(current, data, config)
    return ChampionResult(tag=promoted, metrics=scored.metrics, note="promoted now"), scored


def promotion_gates(
    config: Config, candidate: StoredVersion, *, promoted: str | None
) -> tuple[list[GateVerdict], Scored, Scored | None]:
    """The verdicts a promotion of ``candidate`` is held to, both re-scored on the same rows."""
    data = TestData.load(config)
    scored = score_version(candidate, data, config)
    champion, champion_scored = _champion(config, promoted, data, candidate)
    checked = {
        name: gate
        for name, gate in config.gates.items()
        if name not in (BASELINE_GATE, CHAMPION_GATE) and not name.startswith(CV_PREFIX)
    }
    checked[CHAMPION_GATE] = config.gates.get(CHAMPION_GATE, DEFAULT_CHAMPION_GATE)
    verdicts = check_gates(
        checked,
        metrics=scored.metrics,
        unavailable=scored.unavailable,
        primary=scored.primary,
        cv=None,
        baseline=BaselineResult(estimator="none", metrics={}),
        champion=champion,
    )
    packaged = [
        g.model_copy(update={"metric": f"packaging {g.metric}"})
        for g in candidate.gates
        if not g.passed
    ]
    return [*packaged, *verdicts], scored, champion_scored


def promote(
    config: Config,
    reference: str,
    *,
    reason: str,
    force: bool = False,
    by: str | None = None,
) -> PromotionResult:
    """Promote the version ``reference`` (``name:version``) of ``config.name``.

    Raises :class:`~workbench.errors.GateFailure` naming every failed gate unless ``force``;
    :class:`~workbench.errors.VersionError` for an unknown version, one of another model, the
    version promoted already or an empty reason.
    """
    if not reason.strip():
        raise VersionError("a promotion needs a reason; it is recorded in the history file")
    candidate = resolve_version(reference, name=config.name)
    history = read_history(config.root, config.name)
    if history.promoted == candidate.tag:
        raise VersionError(f"{candidate.tag} is already the promoted version of {config.name!r}")
    vouched = verify_bento(config.root, candidate.tag)
    verdicts, scored, champion = promotion_gates(config, candidate, promoted=history.promoted)
    failed = [g for g in verdicts if not g.passed]
    if failed and not force:
        raise GateFailure(
            [g.metric for g in failed],
            f"{candidate.tag} cannot be promoted: {len(failed)} gate(s) failed on "
            f"{config.test_path.name}: "
            + "; ".join(_line(g) for g in failed)
            + ". Promote another version, or force the promotion (recorded with the reason and "
            "the failed gates)",
        )
    return _record(
        config,
        candidate,
        vouched,
        action="promote",
        previous=history.promoted,
        reason=reason.strip(),
        by=by,
        forced=bool(failed) and force,
        gates=verdicts,
        metrics=scored.metrics,
        champion_metrics=champion.metrics if champion else {},
    )


def _manifest_file(config: Config, version: StoredVersion) -> str | None:
    if version.manifest is None:
        return None
    return str(release_dir(config.root, config.name) / MANIFEST_FILE)


def rollback(config: Config, *, reason: str = "", by: str | None = None) -> PromotionResult:
    """Return to the version promoted before the current one (not gated)."""
    history = read_history(config.root, config.name)
    target = history.rollback_target
    if target is None:
        why = (
            f"{history.promoted} is promoted and no version was before it"
            if history.lineage
            else "nothing is promoted yet"
        )
        raise VersionError(
            f"{config.name!r} has no earlier promoted version to roll back to ({why})"
        )
    version = resolve_version(target, name=config.name)
    return _record(
        config,
        version,
        verify_bento(config.root, version.tag),
        action="rollback",
        previous=history.promoted,
        reason=reason.strip() or "rollback",
        by=by,
    )


def _record(  # noqa: PLR0913 - keyword-only, the fields of one history entry
    config: Config,
    version: StoredVersion,
    vouched: VouchedBento,
    *,
    action: Literal["promote", "rollback"],
    previous: str | None,
    reason: str,
    by: str | None,
    forced: bool = False,
    gates: list[GateVerdict] | None = None,
    metrics: dict[str, float | None] | None = None,
    champion_metrics: dict[str, float | None] | None = None,
) -> PromotionResult:
    """Record the change of the promoted version in the history (and its manifest)."""
    run, commit, _ = run_records(config.root).get(version.tag, (None, None, None))
    change = Promotion(
        action=action,
        version=version.tag,
        previous=previous,
        at=_now(),
        by=by or _user(config.root),
        reason=reason,
        forced=forced,
        run=run,
        git_commit=commit,
        gates=[_line(g) for g in gates or []],
        model_tag=vouched.model_tag,
        model_sha256=vouched.model_sha256,
        bento_sha256=vouched.bento_sha256,
    )
    record_change(config.root, config.name, change, manifest=version.manifest)
    return PromotionResult(
        name=config.name,
        action=action,
        version=version.tag,
        previous=previous,
        reason=reason,
        forced=forced,
        gates=gates or [],
        metrics=metrics or {},
        champion_metrics=champion_metrics or {},
        history_file=str(history_path(config.root, config.name)),
        manifest_file=_manifest_file(config, version),
    )
