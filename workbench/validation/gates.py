"""Gates: whether each configured threshold holds, and why not.

A gate's name says what it measures (see :class:`workbench.config.ValidationOptions`): a metric
name gates the holdout value, ``cv_<metric>`` the cross-validation mean, ``beat_baseline`` and
``champion`` the advantage in the primary metric over a Dummy estimator and over the champion
(positive: the model is better). ``roundtrip`` is built in: the model must predict the same after a
save and reload. Gate names that cannot be computed for the model are refused up front.
"""

from __future__ import annotations

from workbench.config import (
    BASELINE_GATE,
    CHAMPION_GATE,
    CV_PREFIX,
    METRICS,
    Gate,
    ValidationOptions,
)
from workbench.errors import ConfigError
from workbench.results import (
    BaselineResult,
    ChampionResult,
    CVResult,
    GateVerdict,
    RoundTripResult,
)
from workbench.validation.metrics import Metrics, advantage, check_metric_fits

ROUNDTRIP_GATE = "roundtrip"


def check_gate_names(
    gates: dict[str, Gate], task: str, options: ValidationOptions, *, proba: bool, scores: bool
) -> None:
    """Every gate can be computed for this task, model and config, or one :class:`ConfigError`."""
    for name in gates:
        if name == CHAMPION_GATE and not options.champion:
            raise ConfigError(
                "gate `champion` needs the champion comparison, but `validation.champion` is "
                "false; set it to true or remove the gate"
            )
        if name in (BASELINE_GATE, CHAMPION_GATE):
            continue
        metric = name
        if name.startswith(CV_PREFIX):
            metric = name[len(CV_PREFIX) :]
            if options.cv_folds == 0:
                raise ConfigError(
                    f"gate `{name}` needs cross-validation, but `validation.cv_folds` is 0; "
                    "set it to 2 or more or remove the gate"
                )
        check_metric_fits(metric, task, proba=proba, scores=scores, label=f"gate `{name}`")


def check_monitor_gates(gates: dict[str, Gate], task: str) -> None:
    """Every live-metric gate (``monitor.gates``) is a metric of the task, or one
    :class:`ConfigError` now, before validation writes anything (packaging would refuse it)."""
    for metric in gates:
        if metric not in METRICS[task]:
            raise ConfigError(
                f"monitor.gates: {metric!r} is not a {task} metric; live metrics of a {task} "
                f"model are {', '.join(METRICS[task])}. Change it in workbench.yaml"
            )


def _within(value: float, gate: Gate) -> str:
    """Empty when ``value`` satisfies ``gate``, else why not."""
    if gate.min is not None and value < gate.min:
        return f"below the minimum {gate.min:g}"
    if gate.max is not None and value > gate.max:
        return f"above the maximum {gate.max:g}"
    return ""


def _verdict(name: str, gate: Gate, value: float | None, missing: str, context: str) -> GateVerdict:
    if value is None:
        return GateVerdict(
            metric=name, value=None, min=gate.min, max=gate.max, passed=False, reason=missing
        )
    why = _within(value, gate)
    reason = "; ".join(filter(None, [why, context]))
    return GateVerdict(
        metric=name, value=value, min=gate.min, max=gate.max, passed=not why, reason=reason
    )


def check_gates(
    gates: dict[str, Gate],
    *,
    metrics: Metrics,
    unavailable: dict[str, str],
    primary: str,
    cv: CVResult | None,
    baseline: BaselineResult,
    champion: ChampionResult | None,
) -> list[GateVerdict]:
    """A verdict per configured gate, in the config's order."""
    verdicts = []
    mine = metrics.get(primary)
    for name, gate in gates.items():
        if name == BASELINE_GATE:
            theirs = baseline.metrics.get(primary)
            value = advantage(primary, mine, theirs)
            context = f"{primary} {_num(mine)} vs {baseline.estimator} {_num(theirs)}"
            verdicts.append(
                _verdict(name, gate, value, f"{primary} unavailable; {context}", context)
            )
        elif name == CHAMPION_GATE:
            verdicts.append(_champion_verdict(gate, primary, mine, champion))
        elif name.startswith(CV_PREFIX):
            metric = name[len(CV_PREFIX) :]
            if cv is None or cv.error:
                why = f"cross-validation failed: {cv.error if cv else 'not run'}"
                verdicts.append(_verdict(name, gate, None, why, ""))
            else:
                value = cv.mean.get(metric)
                spread = f"mean of {cv.folds} folds, sd {_num(cv.std.get(metric))}"
                verdicts.append(
                    _verdict(name, gate, value, f"{metric} unavailable in every fold", spread)
                )
        else:
            why = f"{name} unavailable: {unavailable.get(name, 'not computed')}"
            verdicts.append(_verdict(name, gate, metrics.get(name), why, ""))
    return verdicts


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _champion_verdict(
    gate: Gate, primary: str, mine: float | None, champion: ChampionResult | None
) -> GateVerdict:
    if champion is None or (champion.tag is None and champion.error is None):
        note = champion.note if champion else "not compared"
        return GateVerdict(
            metric=CHAMPION_GATE,
            value=None,
            min=gate.min,
            max=gate.max,
            passed=True,
            reason=f"no champion yet ({note})",
        )
    if champion.error:
        return _verdict(
            CHAMPION_GATE,
            gate,
            None,
            f"champion {champion.tag}: {champion.error}; fix that or remove the `champion` gate",
            "",
        )
    theirs = champion.metrics.get(primary)
    context = f"{primary} {_num(mine)} vs champion {champion.tag} {_num(theirs)}"
    value = advantage(primary, mine, theirs)
    return _verdict(CHAMPION_GATE, gate, value, f"{primary} unavailable; {context}", context)


def roundtrip_verdict(result: RoundTripResult) -> GateVerdict:
    """The built-in gate: a model that predicts differently after save/reload cannot ship."""
    if result.error:
        reason = result.error
    elif result.mismatches:
        reason = (
            f"after joblib save and load the model predicts differently on {result.mismatches} "
            f"of {result.rows} rows"
        )
    else:
        reason = ""
    return GateVerdict(
        metric=ROUNDTRIP_GATE,
        value=None if result.error else float(result.mismatches),
        max=0.0,
        passed=result.passed,
        reason=reason,
    )
