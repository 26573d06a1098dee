"""Stage results: typed, JSON-serialisable, and rendered as HTML in notebooks and reports.

Each result is a frozen pydantic model; ``_repr_html_`` makes ``display(result)`` (or a bare
``result`` at the end of a cell) show a readable table without any widget or network, so the
nbconvert report of a headless run shows the same thing a person saw.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.errors import GateFailure, ServingError
from workbench.profile import ReferenceProfile
from workbench.schema import InputSchema

_STYLE = (
    "<style>.wb-table{border-collapse:collapse;margin:4px 0;font-size:13px}"
    ".wb-table th,.wb-table td{border:1px solid #d0d7de;padding:3px 10px;text-align:left}"
    ".wb-table th{background:#f6f8fa}.wb-pass{color:#1a7f37;font-weight:600}"
    ".wb-fail{color:#cf222e;font-weight:600}.wb-code{font-family:monospace;"
    "background:#f6f8fa;padding:2px 6px}</style>"
)


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def table_html(headers: list[str], rows: list[list[str]], *, css_class: str = "") -> str:
    """A small HTML table; cells are already-escaped HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr class='{css_class}'>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table class='wb-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict_html(passed: bool, text: str | None = None) -> str:
    label = text or ("PASS" if passed else "FAIL")
    return f"<span class='{'wb-pass' if passed else 'wb-fail'}'>{html.escape(label)}</span>"


class GateVerdict(_Result):
    """One gate checked against one value.

    ``metric`` is the gate's name as written in ``workbench.yaml`` (``roc_auc``, ``cv_roc_auc``,
    ``beat_baseline``, ``champion``) or ``roundtrip``, the built-in check that the model survives
    being saved and reloaded. ``reason`` says why a gate failed (or why it passed without a value).
    """

    metric: str
    value: float | None
    min: float | None = None
    max: float | None = None
    passed: bool
    reason: str = ""

    @property
    def threshold(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


def gate_table(gates: list[GateVerdict]) -> str:
    """Plain-text gate table: value, threshold, verdict and why."""
    width = max([len("gate"), *(len(g.metric) for g in gates)]) + 2
    lines = [f"{'gate':<{width}}{'value':>10}  {'threshold':<20}verdict"]
    for g in gates:
        value = "n/a" if g.value is None else f"{g.value:.4f}"
        verdict = "pass" if g.passed else "FAIL"
        if g.reason:
            verdict += f": {g.reason}"
        lines.append(f"{g.metric:<{width}}{value:>10}  {g.threshold:<20}{verdict}")
    return "\n".join(lines)


class Curve(_Result):
    """A thinned ROC (x = false positive rate, y = true positive rate) or precision-recall curve
    (x = recall, y = precision) for one class, with its area (ROC-AUC or average precision)."""

    label: str
    x: list[float]
    y: list[float]
    area: float | None = None


class CVResult(_Result):
    """k-fold cross-validation of a clone of the model on (a sample of) the training data."""

    folds: int
    splitter: str
    seed: int
    rows: int
    """Training rows used; fewer than the training data when it was sampled."""
    sampled: bool
    per_fold: list[dict[str, float | None]] = []
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = []


class BaselineResult(_Result):
    """A Dummy estimator fitted on the training data, scored on the same test data."""

    estimator: str
    metrics: dict[str, float | None]


class ChampionResult(_Result):
    """The model of the same name packaged last, scored on the same test data as the candidate.

    ``tag`` is ``None`` when there is no champion; ``error`` says why one could not be scored.
    """

    tag: str | None = None
    metrics: dict[str, float | None] = {}
    """Recomputed now, on the candidate's test data."""
    stored_metrics: dict[str, float | None] = {}
    """As recorded when the champion was packaged (its own test data at the time)."""
    note: str = ""
    error: str | None = None


class FeatureImportance(_Result):
    feature: str
    mean: float
    std: float


class ImportanceResult(_Result):
    """Permutation importance on a seeded sample of the test data, largest first."""

    metric: str
    rows: int
    repeats: int
    features: list[FeatureImportance]
    error: str | None = None


class RoundTripResult(_Result):
    """The model saved with joblib, loaded back, and asked again: same predictions?"""

    passed: bool
    rows: int
    bytes: int = 0
    mismatches: int = 0
    max_proba_diff: float | None = None
    error: str | None = None


class LatencyResult(_Result):
    """In-process prediction latency on test rows (no server, no serialisation)."""

    single_row_p50_ms: float
    single_row_p95_ms: float
    single_row_calls: int
    batch_rows: int
    batch_ms: float
    """Median time of one ``predict`` call on ``batch_rows`` rows."""


_VALIDATION_STYLE = (
    "<style>.wb-row-pass td{background:#dafbe1}.wb-row-fail td{background:#ffebe9}"
    ".wb-plots{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}"
    ".wb-plots img{border:1px solid #d0d7de;max-width:100%}.wb-primary td{font-weight:600}</style>"
)


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    label = html.escape(alt)
    return f"<img alt='{label}' title='{label}' src='data:image/png;base64,{data}'/>"


class ValidationResult(_Result):
    """What the validate stage measured and decided.

    ``metrics`` are the holdout (test data) values; ``cv``, ``baseline`` and ``champion`` hold the
    same metrics for the cross-validation folds, a Dummy estimator and the champion. The plots are
    rendered on demand (:meth:`figures`) from the data kept here, so the JSON record stays small.
    """

    name: str
    task: str
    target: str
    metrics: dict[str, float | None]
    gates: list[GateVerdict]
    passed: bool
    input_schema: InputSchema
    classes: list[Any] | None = None
    rows: dict[str, int]
    inputs: dict[str, str]
    """sha256 of the model, train and test files."""
    seconds: float
    primary_metric: str | None = None
    """The metric ``beat_baseline`` and ``champion`` compare."""
    unavailable: dict[str, str] = {}
    """Metric -> why it is ``None`` for this model or data."""
    cv: CVResult | None = None
    baseline: BaselineResult | None = None
    champion: ChampionResult | None = None
    confusion: list[list[int]] | None = None
    """Rows: true class, columns: predicted class, both in ``classes`` order."""
    roc: list[Curve] = []
    pr: list[Curve] = []
    actual: list[float] = []
    """Regression: a seeded sample of test targets, paired with ``predicted``."""
    predicted: list[float] = []
    profile: ReferenceProfile | None = None
    """Training-input profile for drift checks (quantile bins, category shares)."""
    importance: ImportanceResult | None = None
    roundtrip: RoundTripResult | None = None
    latency: LatencyResult | None = None
    steps_s: dict[str, float] = {}
    """Seconds spent in each step of the validation."""

    @property
    def failed(self) -> list[GateVerdict]:
        return [g for g in self.gates if not g.passed]

    def gate_table(self) -> str:
        """Plain-text gate table (for the CLI): value, threshold, verdict and why."""
        return gate_table(self.gates)

    def raise_for_gates(self) -> None:
        """Raise :class:`GateFailure` naming every failed gate and why (stops a headless run)."""
        if self.failed:
            names = [g.metric for g in self.failed]
            raise GateFailure(
                names,
                f"{self.name}: {len(names)} gate(s) failed: "
                + "; ".join(
                    f"{g.metric} = {_fmt(g.value)} (needs {g.threshold})"
                    + (f": {g.reason}" if g.reason else "")
                    for g in self.failed
                )
                + ". Improve the model or change the gates in workbench.yaml; "
                "nothing was packaged.",
            )

    def figures(self) -> dict[str, bytes]:
        """The plots as PNG bytes, keyed by name (rendered now, from the data in this result)."""
        from workbench import plots

        out: dict[str, bytes] = {}
        if self.confusion is not None and self.classes is not None:
            out["confusion matrix"] = plots.confusion_png(self.confusion, self.classes)
        if self.roc:
            out["ROC curve"] = plots.roc_png(self.roc)
        if self.pr:
            out["precision-recall curve"] = plots.pr_png(self.pr)
        if self.actual:
            out["prediction error"] = plots.prediction_error_png(self.actual, self.predicted)
        if self.importance and self.importance.features:
            out["permutation importance"] = plots.importance_png(
                self.importance.features, self.importance.metric
            )
        return out

    def _gates_html(self) -> str:
        if not self.gates:
            return "<p>No gates configured.</p>"
        head = "".join(f"<th>{h}</th>" for h in ("gate", "value", "threshold", "verdict", "why"))
        body = "".join(
            f"<tr class='wb-row-{'pass' if g.passed else 'fail'}'>"
            f"<td>{html.escape(g.metric)}</td><td>{_fmt(g.value)}</td>"
            f"<td>{html.escape(g.threshold)}</td><td>{verdict_html(g.passed)}</td>"
            f"<td>{html.escape(g.reason)}</td></tr>"
            for g in self.gates
        )
        return (
            f"<table class='wb-table wb-gates'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )

    def _metrics_html(self) -> str:
        headers = ["metric", "test"]
        cv = self.cv if self.cv and not self.cv.error else None
        champion = self.champion if self.champion and self.champion.tag else None
        if cv:
            headers.append(f"CV mean ± sd ({cv.folds} folds)")
        if self.baseline:
            headers.append(f"baseline ({self.baseline.estimator})")
        if champion:
            headers += [f"champion {champion.tag} (same test)", "champion (as packaged)"]
        rows_html = ""
        for metric, value in self.metrics.items():
            cells = [html.escape(metric), _fmt(value)]
            if cv:
                mean, std = cv.mean.get(metric), cv.std.get(metric)
                cells.append("—" if mean is None else f"{mean:.4f} ± {std or 0.0:.4f}")
            if self.baseline:
                cells.append(_fmt(self.baseline.metrics.get(metric)))
            if champion:
                cells += [
                    _fmt(champion.metrics.get(metric)),
                    _fmt(champion.stored_metrics.get(metric)),
                ]
            css = " class='wb-primary'" if metric == self.primary_metric else ""
            rows_html += f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        return (
            f"<table class='wb-table wb-metrics'><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows_html}</tbody></table>"
        )

    def _notes(self) -> list[str]:
        notes = [f"{m}: not available ({why})" for m, why in self.unavailable.items()]
        if self.cv:
            cv = self.cv
            sample = (
                f"a seeded sample of {cv.rows} training rows"
                if cv.sampled
                else (f"{cv.rows} training rows")
            )
            notes.append(
                f"cross-validation: {cv.splitter}, {cv.folds} folds, seed {cv.seed}, on {sample}"
                + (f"; FAILED: {cv.error}" if cv.error else f" ({cv.seconds:.1f} s)")
            )
            notes += [f"cross-validation warning: {w}" for w in cv.warnings]
        if self.champion:
            c = self.champion
            text = f"champion {c.tag}" if c.tag else "champion: none"
            notes.append(
                text + (f": {c.note}" if c.note else "") + (f"; {c.error}" if c.error else "")
            )
        if self.importance and self.importance.error:
            notes.append(f"permutation importance failed: {self.importance.error}")
        return notes

    def _checks_html(self) -> str:
        rows = []
        if self.roundtrip:
            r = self.roundtrip
            detail = (
                r.error
                or f"{r.rows} rows predicted again after joblib save/load ({r.bytes:,} bytes): "
                f"{r.mismatches} differ"
                + (
                    f", max probability difference {r.max_proba_diff:.2g}"
                    if r.max_proba_diff is not None
                    else ""
                )
            )
            rows.append(["save / reload", verdict_html(r.passed), html.escape(detail)])
        if self.latency:
            lat = self.latency
            rows.append(
                [
                    "latency, 1 row",
                    f"{lat.single_row_p50_ms:.2f} ms",
                    f"median of {lat.single_row_calls} calls; p95 {lat.single_row_p95_ms:.2f} ms",
                ]
            )
            rows.append(
                [
                    f"latency, {lat.batch_rows:,} rows",
                    f"{lat.batch_ms:.1f} ms",
                    f"{lat.batch_rows / max(lat.batch_ms, 1e-9) * 1000:,.0f} rows/s in process",
                ]
            )
        return table_html(["check", "result", "detail"], rows) if rows else ""

    def _schema_html(self) -> str:
        rows = []
        for col in self.input_schema.columns:
            if col.categories is not None:
                seen = ", ".join(col.categories[:8]) + (" …" if len(col.categories) > 8 else "")
                facts = f"{len(col.categories)} categories: {seen}"
            elif col.min is not None:
                facts = f"{col.min:g} … {col.max:g}"
            else:
                facts = ""
            missing = ""
            if self.profile:
                try:
                    missing = f"{self.profile.column(col.name).missing:.1%}"
                except KeyError:
                    missing = ""
            rows.append(
                [
                    html.escape(col.name),
                    col.kind,
                    html.escape(col.dtype),
                    "yes" if col.nullable else "no",
                    html.escape(facts),
                    missing,
                ]
            )
        table = table_html(["column", "kind", "dtype", "nullable", "seen", "missing"], rows)
        return (
            f"<details><summary>input schema: {len(rows)} columns, in the order the model "
            f"expects them</summary>{table}</details>"
        )

    def _repr_html_(self) -> str:
        verdict = verdict_html(self.passed, "all gates pass" if self.passed else "gates failed")
        primary = f", primary metric {self.primary_metric}" if self.primary_metric else ""
        head = (
            f"{_STYLE}{_VALIDATION_STYLE}"
            f"<h4>Validation of <code>{html.escape(self.name)}</code> ({self.task}{primary}): "
            f"{verdict}</h4>"
            f"<p>{self.rows.get('train', 0)} training rows, {self.rows.get('test', 0)} test rows, "
            f"{len(self.input_schema.columns)} input columns, {self.seconds:.2f} s</p>"
        )
        figures = self.figures()
        plots = (
            "<div class='wb-plots'>"
            + "".join(_img(png, name) for name, png in figures.items())
            + "</div>"
            if figures
            else ""
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self._notes())
        return (
            head
            + self._gates_html()
            + self._metrics_html()
            + plots
            + self._checks_html()
            + (f"<ul class='wb-notes'>{notes}</ul>" if notes else "")
            + self._schema_html()
        )


class PackageResult(_Result):
    """What the package stage saved and built."""

    name: str
    model_tag: str
    bento_tag: str
    bento_path: str
    model_path: str
    service_dir: str
    archive: str
    """The exported Bento (``bentoml import <archive>`` on another machine)."""
    size_bytes: int
    contents: list[str]
    unseen_categories: str
    """``accept``: the model handles unseen categories; ``replace``: the service substitutes
    the most frequent training value and says so in the row's warnings."""
    created: bool
    """False when a Bento with the same content-derived tag already existed."""
    bentoml_home: str
    seconds: float

    @property
    def serve_command(self) -> str:
        return f"bentoml serve {self.bento_tag}"

    @property
    def commands(self) -> dict[str, str]:
        """Copy-ready commands: serve, move to another machine, build an image, deploy."""
        return {
            "serve": self.serve_command,
            "import elsewhere": f"bentoml import {self.archive}",
            "container image": f"bentoml containerize {self.bento_tag}",
            "kubernetes": f"kubectl apply -f {self.bento_path}/src/deploy/kubernetes.yaml",
        }

    def _repr_html_(self) -> str:
        status = "built" if self.created else "already in the store (same content, same tag)"
        rows = [
            [
                "Bento",
                f"<span class='wb-code wb-bento-tag'>{html.escape(self.bento_tag)}</span>"
                f" ({status})",
            ],
            ["model", f"<span class='wb-code'>{html.escape(self.model_tag)}</span>"],
            ["size", f"{self.size_bytes / 1024:.0f} KiB in {len(self.contents)} files"],
            ["archive", html.escape(self.archive)],
            ["unseen categories", html.escape(self.unseen_categories)],
            ["service source", html.escape(self.service_dir)],
            ["store", html.escape(self.bentoml_home)],
        ]
        commands = [
            [html.escape(name), f"<span class='wb-code'>{html.escape(cmd)}</span>"]
            for name, cmd in self.commands.items()
        ]
        return (
            f"{_STYLE}<h4>Package {verdict_html(True, 'ready')}</h4>"
            + table_html(["", ""], rows)
            + table_html(["to", "run"], commands)
        )


class ProbeResult(_Result):
    """A bounded load probe: throughput, latency percentiles, errors and every latency."""

    url: str
    requests: int
    concurrency: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    error_kinds: list[str]
    latencies_ms: list[float]

    def histogram_png(self) -> bytes:
        """A latency histogram (PNG) with the percentiles marked."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 2.6), dpi=100)
        axes = figure.subplots()
        axes.hist(self.latencies_ms or [0.0], bins=40, color="#0969da")
        for value, name in ((self.p50_ms, "p50"), (self.p95_ms, "p95"), (self.p99_ms, "p99")):
            axes.axvline(value, color="#cf222e", linestyle="--", linewidth=1)
            axes.annotate(name, (value, axes.get_ylim()[1] * 0.9), fontsize=8)
        axes.set_xlabel("latency (ms)")
        axes.set_ylabel("requests")
        axes.set_title(f"{self.requests} requests at concurrency {self.concurrency}", fontsize=10)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def _repr_html_(self) -> str:
        rows = [
            [
                str(self.requests),
                str(self.concurrency),
                f"{self.requests_per_s:.1f}",
                f"{self.p50_ms:.1f}",
                f"{self.p95_ms:.1f}",
                f"{self.p99_ms:.1f}",
                verdict_html(self.errors == 0, str(self.errors)),
            ]
        ]
        image = base64.b64encode(self.histogram_png()).decode()
        return (
            f"{_STYLE}<h4>Load probe</h4>"
            + table_html(
                ["requests", "concurrency", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows
            )
            + f"<img alt='latency histogram' src='data:image/png;base64,{image}'/>"
        )


class CheckResult(_Result):
    """One check against the live server."""

    name: str
    passed: bool
    detail: str = ""


class LaunchResult(_Result):
    """What the launch stage checked against the served Bento."""

    bento_tag: str
    url: str
    checks: list[CheckResult]
    parity_rows: int
    mismatches: list[dict[str, Any]]
    probe: ProbeResult | None = None
    snippets: dict[str, str] = {}
    passed: bool
    seconds: float

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def raise_for_checks(self) -> None:
        """Raise :class:`ServingError` naming every failed check (stops a headless run)."""
        if self.failed:
            raise ServingError(
                f"{self.bento_tag}: checks failed against the served Bento: "
                + "; ".join(f"{c.name}: {c.detail}" for c in self.failed)
            )

    def _repr_html_(self) -> str:
        rows = [
            [html.escape(c.name), verdict_html(c.passed), html.escape(c.detail)]
            for c in self.checks
        ]
        head = (
            f"{_STYLE}<h4>Launch of <code>{html.escape(self.bento_tag)}</code> at "
            f"{html.escape(self.url)}: {verdict_html(self.passed)}</h4>"
        )
        probe = self.probe._repr_html_() if self.probe else ""
        snippets = "".join(
            f"<p>{html.escape(name)}:</p>"
            f"<pre class='wb-snippet' style='line-height:1.35'>{html.escape(code)}</pre>"
            for name, code in self.snippets.items()
        )
        return head + table_html(["check", "verdict", "detail"], rows) + probe + snippets
