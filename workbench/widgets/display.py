"""How stage results and panels are displayed: results as HTML wherever IPython shows them, and
each panel with a static copy beneath it for viewers without a widget manager.

A notebook saved with widgets keeps what a panel shows only in its widget state, which a viewer
renders only with the widget manager (JupyterLab, or a page that loads it): plain `jupyter
nbconvert --to html` offline, a code host's notebook preview and most editors show nothing. So a
displayed panel also leaves a second output, an HTML copy of what it shows (status, gate table,
metrics, plots as inline PNG: the HTML the reports render), replaced after every action through
its display id: in the saved notebook whether the action ran headless (papermill) or on a click.
Where the panel itself renders, a style rule hides the copy.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
from IPython import get_ipython
from IPython.display import HTML, DisplayHandle, display

from workbench.reports import to_html
from workbench.results import Result

#: Hides the copy in an output area after one where the panel rendered (JupyterLab, classic
#: notebook, the offline reports with their inlined widget manager); nothing hides it elsewhere.
HIDE_WHERE_RENDERED = (
    "<style>.jp-OutputArea-child:has(.wb-panel)~.jp-OutputArea-child .wb-static,"
    ".output_area:has(.wb-panel)~.output_area .wb-static{display:none}</style>"
)


def register_html() -> bool:
    """Render every :class:`~workbench.results.Result` with :func:`workbench.reports.to_html` in
    the running IPython (no-op outside one). Returns whether a formatter was registered."""
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["text/html"].for_type(Result, to_html)
    return True


def shown_html(widget: Any) -> list[str]:
    """The HTML a widget and its children show, in order: each HTML widget's value (the gate
    table, metrics and plots are the reports' HTML), hidden widgets left out."""
    if widget.layout.display == "none":
        return []
    own = [widget.value] if isinstance(widget, w.HTML) and widget.value else []
    return own + [part for child in getattr(widget, "children", ()) for part in shown_html(child)]


def static_copy(widget: Any) -> HTML:
    """The static HTML copy of what ``widget`` shows (class ``wb-static``)."""
    body = "".join(f"<div>{part}</div>" for part in shown_html(widget))
    return HTML(f"{HIDE_WHERE_RENDERED}<div class='wb-static'>{body}</div>")


def display_with_copy(widget: Any) -> DisplayHandle | None:
    """Display ``widget``, then its static copy as an output of its own; returns the copy's
    handle (update it with :func:`update_copy`)."""
    display(widget._repr_mimebundle_(), raw=True)
    handle: DisplayHandle | None = display(static_copy(widget), display_id=True)
    return handle


def update_copy(handle: DisplayHandle | None, widget: Any) -> None:
    """Replace the static copy with what ``widget`` shows now (no-op when never displayed)."""
    if handle is not None:
        handle.update(static_copy(widget))
