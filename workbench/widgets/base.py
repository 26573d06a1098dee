"""What every stage panel shares: a title, a status line, a results area and error display."""

from __future__ import annotations

import html
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as w

from workbench.errors import WorkbenchError

logger = logging.getLogger(__name__)


class Panel(w.VBox):
    """A stage panel: subclasses add controls above ``self.status`` and ``self.results``.

    Every button handler goes through :meth:`guarded`: the panel's buttons are disabled while it
    runs and re-enabled after (also when it fails), and any error becomes one line in the status
    (details, such as a server log, folded beneath it), never a traceback.
    """

    title = ""

    def __init__(
        self, controls: list[w.Widget], *, footer: list[w.Widget] | None = None, **kwargs: Any
    ) -> None:
        self.status = w.HTML(value="", layout=w.Layout(min_height="1.5em"))
        self.status.add_class("wb-status")
        self.results = w.HTML(value="")
        self.results.add_class("wb-results")
        self.busy = False
        self.last_traceback = ""
        """The traceback of the last unexpected error (a bug), kept out of the panel."""
        header = w.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.title)}</h3>")
        super().__init__([header, *controls, self.status, self.results, *(footer or [])], **kwargs)
        self.add_class("wb-panel")
        self.buttons = list(_buttons(self))

    def say(self, text: str, *, kind: str = "info") -> None:
        colour = {"info": "#57606a", "ok": "#1a7f37", "error": "#cf222e"}[kind]
        first, _, rest = text.strip().partition("\n")
        details = (
            f"<details><summary>details</summary><pre class='wb-details'>"
            f"{html.escape(rest.strip())}</pre></details>"
            if rest.strip()
            else ""
        )
        self.status.value = (
            f"<span class='wb-{kind}' style='color:{colour}'>{html.escape(first)}</span>{details}"
        )

    def refresh_controls(self) -> None:
        """Enable or disable controls for the panel's state (after every handler)."""

    def guarded(self, action: Callable[[], None]) -> Callable[[Any], None]:
        """Wrap a button handler: buttons off while it runs, any error one line in the panel."""

        def handler(_button: Any) -> None:
            if self.busy:  # a click queued while the same panel was working
                return
            self.busy = True
            enabled = [(b, b.disabled) for b in self.buttons]
            for btn in self.buttons:
                btn.disabled = True
            try:
                action()
            except WorkbenchError as exc:
                self.say(str(exc), kind="error")
            except Exception as exc:
                # A bug, not a user error: one line here; the traceback is kept for a report.
                self.last_traceback = traceback.format_exc()
                logger.debug("panel handler failed", exc_info=True)
                self.say(
                    f"unexpected error: {type(exc).__name__}: {exc} (a bug in workbench; the "
                    "traceback is in panel.last_traceback)",
                    kind="error",
                )
            finally:
                for btn, disabled in enabled:
                    btn.disabled = disabled
                self.busy = False
                self.refresh_controls()

        return handler


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
        # flex 0 0 auto: in a row beside a long status line the label stays whole, not "St…"
        layout=w.Layout(width="auto", flex="0 0 auto"),
    )
    btn.add_class(f"wb-{description.lower().replace(' ', '-')}")
    return btn
