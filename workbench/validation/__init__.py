"""The validate stage: may this model ship? See :func:`validate`."""

from workbench.validation.stage import Progress, validate

__all__ = ["Progress", "validate"]
