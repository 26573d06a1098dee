"""Stage results shown as HTML wherever IPython displays them (``display(result)``, a bare
``result`` at the end of a cell), registered with IPython's own formatter for third-party types."""

from __future__ import annotations

from IPython import get_ipython

from workbench.reports import to_html
from workbench.results import Result


def register_html() -> bool:
    """Render every :class:`~workbench.results.Result` with :func:`workbench.reports.to_html` in
    the running IPython (no-op outside one). Returns whether a formatter was registered."""
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["text/html"].for_type(Result, to_html)
    return True
