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
from workbench.schema import InputSchema

PASS, FAIL = "#1a7f37", "#cf222e"
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
    return (
        f"{_STYLE}<table class='wb-table'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def verdict_html(passed: bool, text: str | None = None) -> str:
    label = text or ("PASS" if passed else "FAIL")
    return f"<span class='{'wb-pass' if passed else 'wb-fail'}'>{html.escape(label)}</span>"


class GateVerdict(_Result):
    """One gate checked against one metric value."""

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


class ValidationResult(_Result):
    """What the validate stage measured and decided."""

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

    @property
    def failed(self) -> list[GateVerdict]:
        return [g for g in self.gates if not g.passed]

    def gate_table(self) -> str:
        """Plain-text gate table (for the CLI)."""
        lines = [f"{'gate':<16}{'value':>10}  {'threshold':<20}verdict"]
        for g in self.gates:
            value = "n/a" if g.value is None else f"{g.value:.4f}"
            verdict = "pass" if g.passed else f"FAIL {g.reason}".rstrip()
            lines.append(f"{g.metric:<16}{value:>10}  {g.threshold:<20}{verdict}")
        return "\n".join(lines)

    def raise_for_gates(self) -> None:
        """Raise :class:`GateFailure` naming every failed gate (stops a headless run)."""
        if self.failed:
            names = [g.metric for g in self.failed]
            raise GateFailure(
                names,
                f"{self.name}: {len(names)} gate(s) failed: "
                + "; ".join(
                    f"{g.metric} = {_fmt(g.value)} (needs {g.threshold})" for g in self.failed
                )
                + ". Improve the model or change the gates in workbench.yaml; "
                "nothing was packaged.",
            )

    def _repr_html_(self) -> str:
        gates = [
            [
                html.escape(g.metric),
                _fmt(g.value),
                html.escape(g.threshold),
                verdict_html(g.passed, None if g.passed else f"FAIL {g.reason}".strip()),
            ]
            for g in self.gates
        ]
        metrics = [[html.escape(k), _fmt(v)] for k, v in self.metrics.items()]
        head = (
            f"<h4>Validation of <code>{html.escape(self.name)}</code> ({self.task}): "
            f"{verdict_html(self.passed, 'all gates pass' if self.passed else 'gates failed')}</h4>"
            f"<p>{self.rows.get('train', 0)} training rows, {self.rows.get('test', 0)} test rows, "
            f"{len(self.input_schema.columns)} input columns, {self.seconds:.2f} s</p>"
        )
        gate_html = (
            table_html(["gate", "value", "threshold", "verdict"], gates)
            if gates
            else ("<p>No gates configured.</p>")
        )
        return head + gate_html + table_html(["metric", "value"], metrics)


class PackageResult(_Result):
    """What the package stage saved and built."""

    name: str
    model_tag: str
    bento_tag: str
    bento_path: str
    service_dir: str
    created: bool
    """False when a Bento with the same content-derived tag already existed."""
    bentoml_home: str
    seconds: float

    @property
    def serve_command(self) -> str:
        return f"bentoml serve {self.bento_tag}"

    def _repr_html_(self) -> str:
        status = "built" if self.created else "already in the store (same content, same tag)"
        rows = [
            ["Bento", f"<span class='wb-code'>{html.escape(self.bento_tag)}</span> ({status})"],
            ["model", f"<span class='wb-code'>{html.escape(self.model_tag)}</span>"],
            ["service source", html.escape(self.service_dir)],
            ["store", html.escape(self.bentoml_home)],
            ["serve it", f"<span class='wb-code'>{html.escape(self.serve_command)}</span>"],
        ]
        return f"<h4>Package {verdict_html(True, 'ready')}</h4>" + table_html(["", ""], rows)


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
            "<h4>Load probe</h4>"
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
            f"<h4>Launch of <code>{html.escape(self.bento_tag)}</code> at "
            f"{html.escape(self.url)}: {verdict_html(self.passed)}</h4>"
        )
        probe = self.probe._repr_html_() if self.probe else ""
        snippets = "".join(
            f"<p>{html.escape(name)}:</p><pre class='wb-snippet'>{html.escape(code)}</pre>"
            for name, code in self.snippets.items()
        )
        return head + table_html(["check", "verdict", "detail"], rows) + probe + snippets
