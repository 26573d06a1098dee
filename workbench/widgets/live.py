"""The monitor panel's live view: a bounded refresh in the background, and the lines that say
what it did (when it last refreshed, the verdict, the traffic; when and why it stopped)."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable

from workbench.monitoring.traffic import Traffic
from workbench.reports.html import verdict_word
from workbench.widgets.base import COLOURS, verdict_kind


def clock() -> str:
    return time.strftime("%H:%M:%S")


def traffic_html(t: Traffic | None, *, live: bool) -> str:
    """The traffic line: empty unless there is traffic to show, or live is waiting for it."""
    if t is None:
        waiting = "<b>traffic</b>: measured from the second refresh on" if live else ""
        return f"<p class='wb-traffic'>{waiting}</p>"

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} ms"

    errors = "—" if t.error_rate is None else f"{t.error_rate:.1%}"
    return (
        "<p class='wb-traffic'><b>traffic</b> (last "
        f"{t.seconds:.0f} s): {t.requests_per_s:.1f} req/s · p50 {ms(t.p50_ms)} · p95 "
        f"{ms(t.p95_ms)} · p99 {ms(t.p99_ms)} · errors {errors}</p>"
    )


def live_html(text: str, verdict: str) -> str:
    """The live line: ``text``, then the verdict the core gave: its first word, coloured (PASS
    green, FAIL red, anything else amber), the whole line as the core wrote it as its tooltip
    (and in the report below)."""
    kind = verdict_kind(verdict)
    badge = (
        f" · <span class='wb-verdict wb-verdict-{kind}' title='{html.escape(verdict)}' "
        f"style='color:{COLOURS[kind]};font-weight:600'>{html.escape(verdict_word(verdict))}"
        "</span>"
        if verdict
        else ""
    )
    return f"<span class='wb-live-text'>{html.escape(text)}</span>{badge}"


class LiveLoop:
    """Calls ``refresh`` every ``interval`` seconds in a daemon thread, at most
    ``max_refreshes`` times, until :meth:`stop`: the kernel stays free. ``on_refresh(n)`` follows
    each refresh; ``on_end(n, why, error)`` is called once, from the thread, when the loop ends
    (``why``: Stop live, the bound, or the refresh that failed, ``error``)."""

    def __init__(
        self,
        refresh: Callable[[], object],
        *,
        interval: float,
        max_refreshes: int,
        on_refresh: Callable[[int], None],
        on_end: Callable[[int, str, Exception | None], None],
    ) -> None:
        self.refresh = refresh
        self.interval = interval
        self.max_refreshes = max_refreshes
        self.on_refresh = on_refresh
        self.on_end = on_end
        self.refreshes = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="workbench-monitor-live", daemon=True)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> LiveLoop:
        self.thread.start()
        return self

    def _run(self) -> None:
        why = f"the bound of {self.max_refreshes:,} refreshes; press Start live to go on"
        error: Exception | None = None
        for _ in range(self.max_refreshes):
            try:
                self.refresh()
            except Exception as exc:  # a WorkbenchError, or a bug: either ends live, said
                why, error = f"the refresh failed: {exc}", exc
                break
            self.refreshes += 1
            self.on_refresh(self.refreshes)
            if self.stopping.wait(self.interval):
                why = "Stop live"
                break
        self.on_end(self.refreshes, why, error)

    def stop(self, *, timeout: float = 40.0) -> None:
        """End the loop and wait for it (no refresh follows once this returns)."""
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)
