"""Plain-text renderings for terminals and logs."""

from __future__ import annotations

from workbench.reports.monitoring import column_verdict, share
from workbench.results import DriftResult, GateVerdict, MonitorResult


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


def drift_table(result: DriftResult | MonitorResult) -> str:
    """Plain-text drift table: per column the test, statistic, p-value, threshold and verdict."""
    headers = ["column", "kind", "test", "statistic", "p-value", "threshold", "verdict"]
    headers += ["missing ref→live", "unseen"]
    rows = []
    for c in result.columns:
        verdict = column_verdict(c)
        if c.drifted:
            verdict = "DRIFT"
        if c.reason:
            verdict += f": {c.reason}"
        if c.values_needed:
            verdict += f" ({c.values_needed:,} more needed)"
        rows.append(
            [
                c.column,
                c.kind,
                c.test or "-",
                "-" if c.statistic is None else f"{c.statistic:.4f}",
                "-" if c.p_value is None else f"{c.p_value:.3g}",
                "-" if c.threshold is None else f"{c.threshold:g}",
                verdict,
                f"{share(c.missing_share_reference)}→{share(c.missing_share_live)}",
                share(c.unseen_share),
            ]
        )
    # The verdict (with its reason) is the only free-length cell: put it last.
    order = [0, 1, 2, 3, 4, 5, 7, 8, 6]
    widths = [max([len(headers[i]), *(len(r[i]) for r in rows)]) for i in order]
    right = {3, 4, 5, 7, 8}

    def line(cells: list[str]) -> str:
        parts = []
        for width, i in zip(widths, order, strict=True):
            text = cells[i].replace("—", "-")
            parts.append(text.rjust(width) if i in right else text.ljust(width))
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])
