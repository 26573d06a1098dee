"""The package stage: save the validated model and build its Bento. See :func:`package`."""

from workbench.packaging.stage import bentoml_home, package, pinned_packages

__all__ = ["bentoml_home", "package", "pinned_packages"]
