"""The verdict of a monitoring report: PASS, FAIL or INCONCLUSIVE, and why, in sentences.

One function judges a report (``GET /monitor``'s JSON, or an offline file's drift and quality):
the service with the settings it was packaged with (its ``status``), ``workbench monitor`` with
the project's ``monitor:`` (and a replay's refused requests), ``workbench drift`` and batch
scoring with the Bento's. The rules:

* **FAIL** when the dataset drifted (``fail_on_drift``), a data-quality check failed
  (``fail_on_quality``) or a live-metric gate failed; a failure a setting turns off is a note;
* else **INCONCLUSIVE** when something could not be judged for want of data: the dataset drift
  verdict is "not enough data", a data-quality check could not yet fail, or a gate has no live
  value (too few labelled rows); each says what it still needs;
* else **PASS**. An empty window is INCONCLUSIVE (only that is said), never a pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..live_metrics import gate_verdicts
from ..quality import QUALITY_CHECKS, Status
from ..settings import Gate

#: Columns named per sentence before "...".
NAMED = 8


@dataclass(frozen=True)
class Judgement:
    """A verdict and its reasons: ``failures`` (FAIL), ``inconclusive`` (what lacked data),
    ``notes`` (what was seen but fails nothing)."""

    status: Status
    failures: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _names(items: list[str]) -> str:
    return ", ".join(items[:NAMED]) + (" ..." if len(items) > NAMED else "")


def _share(value: Any) -> str:
    """A share as a percentage, two significant digits below 0.1 % (``0.05%``)."""
    if value is None:
        return "—"
    return f"{value * 100:.2g}%" if 0 < value < 0.001 else f"{float(value):.1%}"


def _drift(drift: Mapping[str, Any] | None, fail: bool, out: Judgement) -> None:
    if drift is None:
        out.notes.append("the service ships no drift reference: drift was not checked")
        return
    verdict = drift["verdict"]
    if verdict == "drift":
        drifted = [c["column"] for c in drift["columns"] if c["drifted"]]
        text = (
            f"the dataset drifted: {drift['drifted_columns']} of {drift['tested_columns']} tested "
            f"columns ({_names(drifted)})"
        )
        (out.failures if fail else out.notes).append(
            text if fail else f"{text}; monitor.fail_on_drift is off"
        )
    elif verdict == "not enough data":
        needed = drift.get("values_needed")
        more = f"; {needed:,} more non-missing values needed" if needed else ""
        out.inconclusive.append(f"drift: not enough data ({drift.get('reason')}{more})")


def finding(check: Mapping[str, Any]) -> str:
    """One check's figure in words, e.g. ``x 50.0 % (training 20.0 %)``."""
    name = check["column"]
    if check.get("note"):
        return f"{name} {check['note']}"
    if check["check"] == "constant":
        return f"{name} one value"
    return f"{name} {_share(check['value'])} (training {_share(check['expected'])})"


def _quality(quality: Mapping[str, Any] | None, fail: bool, out: Judgement) -> None:
    if quality is None:
        return
    checks: list[Mapping[str, Any]] = quality["checks"]
    for name, spec in QUALITY_CHECKS.items():
        mine = [c for c in checks if c["check"] == name]
        failed = [finding(c) for c in mine if c["status"] == "FAIL"]
        if failed:
            text = f"data quality, {spec.display_name}: {_names(failed)}"
            (out.failures if fail else out.notes).append(
                text if fail else f"{text}; monitor.fail_on_quality is off"
            )
        waiting = [c for c in mine if c["status"] == "INCONCLUSIVE"]
        if waiting:
            needed = [c["needed"] for c in waiting if c.get("needed") is not None]
            more = f", up to {max(needed):,} more" if needed else ""
            out.inconclusive.append(
                f"data quality, {spec.display_name}: too few rows to tell for "
                f"{_names([c['column'] for c in waiting])}{more}"
            )


def _gates(gates: Mapping[str, Gate], metrics: Mapping[str, Any], out: Judgement) -> None:
    """Each live-metric gate on the report's ``metrics``."""
    labelled, least = metrics.get("labelled_rows", 0), metrics.get("min_labelled_rows", 0)
    for gate in gate_verdicts(gates, metrics.get("live", {})):
        metric = gate["metric"]
        if gate["passed"] is None:
            why = (metrics.get("unavailable") or {}).get(metric)
            if why is None or labelled < least:
                why = f"{labelled:,} labelled rows, {least:,} needed"
            out.inconclusive.append(f"gate {metric}: no live value ({why})")
        elif not gate["passed"]:
            bounds = " and ".join(
                f"{word} {gate[word]:g}" for word in ("min", "max") if gate[word] is not None
            )
            validation = metrics.get("validation", {}).get(metric)
            was = "" if validation is None else f"; {validation:.4g} at validation"
            out.failures.append(f"live {metric} {gate['value']:.4g} fails its gate ({bounds}{was})")


def judge_report(
    report: Mapping[str, Any],
    *,
    fail_on_drift: bool = True,
    fail_on_quality: bool = True,
    gates: Mapping[str, Gate] | None = None,
    failures: Iterable[str] = (),
) -> Judgement:
    """The verdict of ``report`` (its ``drift``, ``quality`` and ``metrics``) under these
    settings; ``failures``: more, found elsewhere (a replay's refused requests)."""
    out = Judgement("PASS")
    window = report.get("window")
    if window is not None and not window.get("rows"):
        needed = (report.get("drift") or {}).get("values_needed")
        more = f" ({needed:,} rows before drift is tested)" if needed else ""
        refused = list(failures)
        status: Status = "FAIL" if refused else "INCONCLUSIVE"
        return Judgement(status, refused, [f"the window is empty{more}"])
    _drift(report.get("drift"), fail_on_drift, out)
    _quality(report.get("quality"), fail_on_quality, out)
    _gates(gates or {}, report.get("metrics") or {}, out)
    out.failures.extend(failures)
    verdict: Status = "FAIL" if out.failures else "INCONCLUSIVE" if out.inconclusive else "PASS"
    return Judgement(verdict, out.failures, out.inconclusive, out.notes)


__all__ = ["Judgement", "finding", "judge_report"]
