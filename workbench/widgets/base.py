"""What every stage panel shares: a title, a state, a status line, a results area, errors.

A panel is a small state machine. Its ``state`` (idle, connecting, serving, live, stopped, error,
or working and done for the panels that run a job) is drawn as a badge beside the title, and
:meth:`Panel.enabled` names the buttons that act in it: every other button is off. Each click is
one numbered action: its answer replaces the last one in the status line (an error also clears
the results it would otherwise sit above), and the status carries the action's number
(``data-action``), so whoever watches the panel can tell this click's answer from the last one's.
"""

from __future__ import annotations

import html
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as w
from IPython.display import DisplayHandle

from workbench.errors import WorkbenchError
from workbench.widgets.display import display_with_copy, update_copy

logger = logging.getLogger(__name__)

#: Status colours: an action's outcome (info, ok, error) and a verdict (pass, fail, warn).
COLOURS = {
    "info": "#57606a",
    "ok": "#1a7f37",
    "error": "#cf222e",
    "pass": "#1a7f37",
    "fail": "#cf222e",
    "warn": "#9a6700",
}
#: Badge colours by state.
STATE_COLOURS = {
    "idle": "#8c959f",
    "connecting": "#9a6700",
    "working": "#9a6700",
    "serving": "#1a7f37",
    "live": "#1a7f37",
    "done": "#1a7f37",
    "stopped": "#8c959f",
    "error": "#cf222e",
}


def verdict_kind(verdict: str) -> str:
    """How to colour a verdict line from the core, shown as it is: ``pass`` (PASS: green),
    ``fail`` (FAIL: red), ``warn`` for anything else (INCONCLUSIVE, not enough data: amber)."""
    word = verdict.strip().split(":")[0].split(" ")[0].upper()
    return {"PASS": "pass", "FAIL": "fail"}.get(word, "warn")


class Panel(w.VBox):
    """A stage panel: subclasses add controls above ``self.status`` and ``self.results``.

    Every button handler goes through :meth:`guarded`: the panel's buttons are disabled while it
    runs and set by :meth:`enabled` after (also when it fails), and any error becomes one line in
    the status (details, such as a server log, folded beneath it), never a traceback.
    """

    title = ""

    def __init__(
        self, controls: list[w.Widget], *, footer: list[w.Widget] | None = None, **kwargs: Any
    ) -> None:
        self.status = w.HTML(value="", layout=w.Layout(min_height="1.5em"))
        self.status.add_class("wb-status")
        self.results = w.HTML(value="")
        self.results.add_class("wb-results")
        self.badge = w.HTML(value="")
        self.badge.add_class("wb-badge")
        self.busy = False
        self.state = "idle"
        self.action = 0
        """The number of the last action (click); the status line carries it."""
        self.last_traceback = ""
        """The traceback of the last unexpected error (a bug), kept out of the panel."""
        self.copy: DisplayHandle | None = None
        """The static copy displayed beneath the panel (:mod:`workbench.widgets.display`)."""
        header = w.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.title)}</h3>")
        top = w.HBox([header, self.badge], layout=w.Layout(align_items="center", gap="12px"))
        super().__init__([top, *controls, self.status, self.results, *(footer or [])], **kwargs)
        self.add_class("wb-panel")
        self.buttons = list(_buttons(self))
        for shown in (self.status, self.results):  # the copy follows what the panel says
            shown.observe(lambda _change: self.publish(), names="value")
        self.show_state("idle")

    def _ipython_display_(self) -> None:
        """Displayed in a notebook: the panel, and beneath it a static copy of what it shows,
        for viewers without a widget manager (nbconvert, previews), kept current by
        :meth:`publish`."""
        self.copy = display_with_copy(self)

    def publish(self) -> None:
        """Bring the static copy up to date (after an action, a new state, new results)."""
        update_copy(self.copy, self)

    # ------------------------------------------------------------ what the panel shows

    def say(self, text: str, *, kind: str = "info", action: int | None = None) -> None:
        """Replace the status line: the first line of ``text``, the rest folded beneath it.
        ``action``: the click this answers (default: the current one)."""
        first, _, rest = text.strip().partition("\n")
        details = (
            f"<details><summary>details</summary><pre class='wb-details'>"
            f"{html.escape(rest.strip())}</pre></details>"
            if rest.strip()
            else ""
        )
        number = self.action if action is None else action
        self.status.value = (
            f"<span class='wb-{kind}' data-action='{number}' style='color:{COLOURS[kind]}'>"
            f"{html.escape(first)}</span>{details}"
        )

    def show_state(self, state: str, detail: str = "") -> None:
        """Set the panel's state and draw it (with ``detail``, plain text) beside the title."""
        self.state = state
        colour = STATE_COLOURS.get(state, "#57606a")
        extra = f" <span class='wb-state-detail'>{html.escape(detail)}</span>" if detail else ""
        self.badge.value = (
            f"<span class='wb-state-{state}' style='color:{colour}'>●</span> "
            f"<span class='wb-state'>{html.escape(state)}</span>{extra}"
        )
        self.refresh_controls()
        self.publish()

    # ------------------------------------------------------------ buttons

    def enabled(self) -> set[w.Button] | None:
        """The buttons that act in the panel's current state; ``None``: all of them."""
        return None

    def refresh_controls(self) -> None:
        """Enable exactly the buttons :meth:`enabled` names (not while an action runs)."""
        if self.busy:
            return
        on = self.enabled()
        for btn in self.buttons:
            btn.disabled = on is not None and btn not in on

    def failed(self, error: Exception) -> None:
        """After an action failed: the state it leaves the panel in (default: ``error``)."""
        self.show_state("error")

    def guarded(self, action: Callable[[], None]) -> Callable[[Any], None]:
        """Wrap a button handler: buttons off while it runs, any error one line in the panel."""

        def handler(_button: Any) -> None:
            if self.busy:  # a click queued while the same panel was working
                return
            self.busy = True
            self.action += 1
            for btn in self.buttons:
                btn.disabled = True
            try:
                action()
            except WorkbenchError as exc:
                self.results.value = ""  # an old result must not sit under a new error
                self.say(str(exc), kind="error")
                self._failed(exc)
            except Exception as exc:
                # A bug, not a user error: one line here; the traceback is kept for a report.
                self.last_traceback = traceback.format_exc()
                logger.debug("panel handler failed", exc_info=True)
                self.results.value = ""
                self.say(
                    f"unexpected error: {type(exc).__name__}: {exc} (a bug in workbench; the "
                    "traceback is in panel.last_traceback)",
                    kind="error",
                )
                self._failed(exc)
            finally:
                self.busy = False
                self.refresh_controls()
                self.publish()

        return handler

    def _failed(self, error: Exception) -> None:
        self.busy = False  # failed() may redraw the state, which sets the buttons
        try:
            self.failed(error)
        except Exception:  # the state after a failure must not hide the failure itself
            logger.debug("panel state after a failure could not be set", exc_info=True)


def _buttons(widget: w.Widget) -> Iterator[w.Button]:
    if isinstance(widget, w.Button):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from _buttons(child)


def button(description: str, *, style: str = "primary", icon: str = "") -> w.Button:
    btn = w.Button(
        description=description,
        button_style=style,
        icon=icon,
        # flex 0 0 auto: in a row beside a long status line the label stays whole, not "St…";
        # align_self: a button alone in a column keeps its own width instead of the column's
        layout=w.Layout(width="auto", flex="0 0 auto", align_self="flex-start"),
    )
    btn.add_class(f"wb-{description.lower().replace(' ', '-')}")
    return btn


#: A control's ``style`` that shows its whole description ("force (promote although a …" not).
WIDE = {"description_width": "initial"}
