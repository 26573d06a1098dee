"""The steps of a retrain after its rows are written: fit, validate, package, shadow, promote.

Each step calls the stage's own core (``validate``, ``package``, ``shadow``, ``promote``) with
the retrain's config and run folder, so it writes the same record the stage writes anywhere
else, and notes its verdict in the :class:`Run`: a failed gate names itself in
``refused_by`` and ends the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from workbench.artifacts import sha256_file, write_atomic, write_record
from workbench.config import CHAMPION_GATE, Config
from workbench.data import load_frame, split_features
from workbench.errors import GateFailure
from workbench.packaging import package
from workbench.reports.versions import shadow_page
from workbench.results import (
    FittedModel,
    PromotionResult,
    RetrainStep,
    ShadowResult,
    ValidationResult,
)
from workbench.results.retraining import STEPS, Outcome, StepName, StepStatus
from workbench.retraining.rows import Rows, frame_bytes
from workbench.retraining.training import Champion, dump_model, fit_challenger
from workbench.validation import validate
from workbench.versions import promote, shadow

OnStep = Callable[[str], None]
LOG_FILE = "retrain.log"
MODEL_FILE = "model.joblib"
RECORD = "retrain.json"


@dataclass
class Run:
    """A retrain under way: its config and folder, its log, the steps so far and what the
    stages returned."""

    config: Config
    folder: Path
    on_step: OnStep
    steps: list[RetrainStep] = field(default_factory=list)
    refused_by: list[str] = field(default_factory=list)
    validation: ValidationResult | None = None
    bento_tag: str | None = None
    model_tag: str | None = None
    unchanged: bool = False
    """The challenger's Bento is the promoted version itself (same content)."""
    shadow: ShadowResult | None = None
    promotion: PromotionResult | None = None

    def log(self, line: str) -> None:
        """A line in ``retrain.log`` (a traceback: several), the first shown as progress."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with (self.folder / LOG_FILE).open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")
        self.on_step(line.splitlines()[0])

    def done(  # noqa: PLR0913 - keyword-only: the fields of one step
        self, name: StepName, *, passed: bool, detail: str, record: str | None, since: float
    ) -> bool:
        status: StepStatus = "passed" if passed else "failed"
        seconds = round(time.perf_counter() - since, 3)
        self.steps.append(
            RetrainStep(name=name, status=status, detail=detail, record=record, seconds=seconds)
        )
        self.log(f"{name}: {status}: {detail}")
        return passed

    def finish(self) -> Outcome:
        """The outcome; the steps not reached are marked skipped."""
        outcome: Outcome = (
            "refused" if self.refused_by else "unchanged" if self.unchanged else "promoted"
        )
        why = "nothing to promote" if outcome == "unchanged" else "a gate refused it before"
        for name in STEPS[len(self.steps) :]:
            self.steps.append(RetrainStep(name=name, status="skipped", detail=why))
        return outcome


def fit_step(run: Run, champion: Champion, train: Path, *, seed: int) -> FittedModel:
    """The challenger fitted on the run's training data and written as ``model.joblib``."""
    since = time.perf_counter()
    target = run.config.data.target
    X, y = split_features(load_frame(train, what="training data"), target, what="training data")
    fitted = fit_challenger(
        run.config, champion, X, y, seed=seed, log=run.log, log_file=run.folder / LOG_FILE
    )
    path = run.folder / MODEL_FILE
    dump_model(fitted.model, path)
    record = FittedModel(
        how=fitted.how,
        source=fitted.source,
        script_sha256=fitted.script_sha256,
        seeded=fitted.seeded,
        rows=len(X),
        file=str(path),
        sha256=sha256_file(path),
    )
    seeded = f"; random_state set to {seed}: {', '.join(fitted.seeded)}" if fitted.seeded else ""
    detail = f"{fitted.source} on {len(X):,} rows{seeded}"
    run.done("fit", passed=True, detail=detail, record=MODEL_FILE, since=since)
    return record


def validate_step(run: Run, derived: Config) -> bool:
    """The validate stage on the run's model and data; False when a gate failed."""
    since = time.perf_counter()
    result = run.validation = validate(derived, run_dir=run.folder)
    failed = [g.metric for g in result.gates if not g.passed]
    run.refused_by += [f"validate: {name}" for name in failed]
    champion = next((g for g in result.gates if g.metric == CHAMPION_GATE), None)
    detail = f"{len(result.gates) - len(failed)}/{len(result.gates)} gates pass"
    if failed:
        detail += f"; failed: {', '.join(failed)}"
    if champion is not None and champion.value is not None:
        detail += f"; champion {champion.value:+.4f} ({result.primary_metric})"
    return run.done(
        "validate", passed=not failed, detail=detail, record="validation.json", since=since
    )


def package_step(run: Run, derived: Config, champion: Champion) -> bool:
    """Build the challenger's Bento; False (and ``unchanged``) when it is the promoted one."""
    since = time.perf_counter()
    result = package(derived, run_dir=run.folder)
    run.bento_tag, run.model_tag = result.bento_tag, result.model_tag
    run.unchanged = result.bento_tag == champion.version.tag
    detail = result.bento_tag
    if run.unchanged:
        detail += ": the promoted version itself (same content): nothing to promote"
    run.done("package", passed=True, detail=detail, record="package.json", since=since)
    return not run.unchanged


def replay_file(run: Run, rows: Rows, held_out: Path) -> tuple[Path, str]:
    """Recent traffic for the shadow: the capture's latest request rows (``shadow.max_rows``),
    else the held-out new rows (the rows the challenger was fitted on would flatter it)."""
    recent = rows.recent
    if recent is None or recent.empty:
        return held_out, "the held-out new rows"
    path = run.folder / "data" / f"replay{rows.suffix}"
    write_atomic(path, frame_bytes(recent.tail(run.config.shadow.max_rows), rows.suffix))
    return path, "recent captured traffic"


def shadow_step(run: Run, derived: Config, champion: Champion, replay: tuple[Path, str]) -> bool:
    """Both versions served side by side on the replay; False when a ``shadow:`` gate failed."""
    since = time.perf_counter()
    logs = run.folder / "logs"  # the servers' logs
    logs.mkdir(exist_ok=True)
    result = run.shadow = shadow(
        derived, champion.version.tag, str(run.bento_tag), replay[0], log_dir=logs
    )
    write_record(run.folder, "shadow", result.to_json())
    write_atomic(run.folder / "shadow.html", shadow_page(result))
    run.refused_by += [f"shadow: {g.name}" for g in result.failed]
    agreement = "—" if result.agreement is None else f"{result.agreement:.3f}"
    detail = f"{result.rows_sent:,} rows of {replay[1]}; agreement {agreement}"
    if result.failed:
        detail += f"; failed: {', '.join(g.name for g in result.failed)}"
    return run.done(
        "shadow", passed=result.passed, detail=detail, record="shadow.json", since=since
    )


def promote_step(run: Run, derived: Config, champion: Champion, *, reason: str) -> bool:
    """The gated promotion (the metric and champion gates re-scored on the run's test rows)."""
    since = time.perf_counter()
    challenger = str(run.bento_tag)
    try:
        result = run.promotion = promote(derived, challenger, reason=reason)
    except GateFailure as exc:
        run.refused_by += [f"promote: {name}" for name in exc.failed]
        return run.done("promote", passed=False, detail=str(exc), record=None, since=since)
    write_record(run.folder, "promotion", result.to_json())
    detail = f"{challenger} promoted (was {champion.version.tag})"
    return run.done("promote", passed=True, detail=detail, record="promotion.json", since=since)
