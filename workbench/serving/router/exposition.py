"""``/metrics`` of the router: its own ``workbench_rollout_*`` series, and the arms' series
with ``arm`` and ``version`` labels under one HELP and TYPE per family."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from .arms import BUCKETS, Arm


def _label_text(labels: dict[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{escape(str(v))}"' for k, v in labels.items())


def _number(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


ARM_FAMILIES = "workbench_"
"""The arms' families the router passes on: the runtime's own, computed in each server's
processes. BentoML's (``bentoml_*``) are left out: two ``bentoml serve`` under one BentoML home
share its ``prometheus_multiproc_dir`` (the second start even empties it), so each arm's BentoML
counters count both arms; the router's ``workbench_rollout_*`` series measure each arm instead."""


def relabel(
    text: str, extra: dict[str, str], families: dict[str, tuple[list[str], list[str]]]
) -> None:
    """Add ``extra`` labels to every sample of an arm's families (:data:`ARM_FAMILIES`) in a
    Prometheus text exposition, gathering samples of one family from several sources under a
    single HELP and TYPE (into ``families``)."""
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(ARM_FAMILIES):
            continue
        kind = family.type if family.type in ("counter", "gauge", "histogram", "summary") else None
        samples = family.samples
        name = family.name
        if kind == "counter" and samples and all(s.name.endswith("_total") for s in samples):
            name += "_total"
        help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        head = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind or 'untyped'}"]
        _, lines = families.setdefault(name, (head, []))
        for sample in samples:
            labels = _label_text({**sample.labels, **extra})
            lines.append(f"{sample.name}{{{labels}}} {_number(sample.value)}")


def own_metrics(arms: dict[str, Arm], share: float) -> list[str]:
    """The router's series: the share, requests by arm, path and status, and latency."""
    lines = [
        "# HELP workbench_rollout_challenger_ratio The challenger's share (the rollout file).",
        "# TYPE workbench_rollout_challenger_ratio gauge",
        f"workbench_rollout_challenger_ratio {_number(share)}",
        "# HELP workbench_rollout_requests_total Requests forwarded, by arm, path and status.",
        "# TYPE workbench_rollout_requests_total counter",
    ]
    for arm in arms.values():
        for (path, status), count in sorted(arm.counts.items()):
            labels = _label_text(
                {"arm": arm.name, "version": arm.tag, "path": path, "status": str(status)}
            )
            lines.append(f"workbench_rollout_requests_total{{{labels}}} {count}")
    name = "workbench_rollout_request_duration_seconds"
    lines += [
        f"# HELP {name} Seconds from a request to its arm's last byte, by arm.",
        f"# TYPE {name} histogram",
    ]
    for arm in arms.values():
        base = {"arm": arm.name, "version": arm.tag}
        running = 0
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], arm.buckets, strict=True):
            running += count
            lines.append(f"{name}_bucket{{{_label_text({**base, 'le': bound})}}} {running}")
        lines.append(f"{name}_sum{{{_label_text(base)}}} {_number(arm.seconds)}")
        lines.append(f"{name}_count{{{_label_text(base)}}} {running}")
    return lines
