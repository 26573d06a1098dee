"""Plain-text renderings for terminals and logs."""

from __future__ import annotations

from workbench.results import GateVerdict


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
