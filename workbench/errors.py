"""The error tree. Every error a user can cause says what was wrong and what to do next.

The CLI prints ``str(error)`` for any :class:`WorkbenchError` and exits 2 (1 for
:class:`GateFailure`); nothing else is expected to reach the user as a traceback.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: a problem the user can fix, described in one message."""

    exit_code = 2


class ConfigError(WorkbenchError):
    """``workbench.yaml`` is missing, malformed or names something that does not exist."""


class DataError(WorkbenchError):
    """A data file is missing, unreadable or does not fit the model or the config."""


class ModelError(WorkbenchError):
    """The model artifact is missing, not a fitted scikit-learn estimator, or unusable."""


class GateFailure(WorkbenchError):
    """Validation ran, but one or more quality gates failed: nothing may be packaged."""

    exit_code = 1

    def __init__(self, failed: list[str], message: str) -> None:
        super().__init__(message)
        self.failed = failed


class StageOrderError(WorkbenchError):
    """A stage was asked to run before the stage it depends on produced its record."""


class PackagingError(WorkbenchError):
    """Saving the model or building the Bento failed; nothing was left in the store."""


class CompilationError(PackagingError):
    """``service.runtime: onnx`` was asked for, but no ONNX graph is the same model."""


class ServingError(WorkbenchError):
    """The server could not start, did not become ready, or answered wrongly."""


class VersionError(WorkbenchError):
    """An unknown version, versions of different models, or a history that cannot change."""


class IntegrityError(WorkbenchError):
    """A stored model or Bento that no record of the project vouches for, or whose bytes differ
    from what the project recorded when it packaged it: nothing of it is loaded."""


def error_type(name: str) -> type[WorkbenchError] | None:
    """The workbench error class called ``name`` (as a kernel reports it), or ``None``.

    A notebook's exception reaches ``workbench run`` as its class name only; its exit code then
    comes from the class (and so from the classes it derives from), whatever it is called.
    """
    pending: list[type[WorkbenchError]] = [WorkbenchError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return None
