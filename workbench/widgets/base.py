"""What every stage panel shares: a title, a status line, a results area and error display."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from workbench.errors import WorkbenchError


class Panel(w.VBox):
    """A stage panel: subclasses add controls above ``self.status`` and ``self.results``."""

    title = ""

    def __init__(
        self, controls: list[w.Widget], *, footer: list[w.Widget] | None = None, **kwargs: Any
    ) -> None:
        self.status = w.HTML(value="", layout=w.Layout(min_height="1.5em"))
        self.status.add_class("wb-status")
        self.results = w.HTML(value="")
        self.results.add_class("wb-results")
        header = w.HTML(f"<h3 style='margin:4px 0'>{html.escape(self.title)}</h3>")
        super().__init__([header, *controls, self.status, self.results, *(footer or [])], **kwargs)
        self.add_class("wb-panel")

    def say(self, text: str, *, kind: str = "info") -> None:
        colour = {"info": "#57606a", "ok": "#1a7f37", "error": "#cf222e"}[kind]
        self.status.value = (
            f"<span class='wb-{kind}' style='color:{colour}'>{html.escape(text)}</span>"
        )

    def guarded(self, action: Callable[[], None]) -> Callable[[Any], None]:
        """Wrap a button handler: a :class:`WorkbenchError` becomes the status line, not a trace."""

        def handler(_button: Any) -> None:
            try:
                action()
            except WorkbenchError as exc:
                self.say(str(exc), kind="error")
            except Exception as exc:
                # A bug, not a user error: say so in the panel (JupyterLab shows a handler's
                # traceback only in its log console) and re-raise for the traceback.
                self.say(f"unexpected error: {type(exc).__name__}: {exc}", kind="error")
                raise

        return handler


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
