"""Versions of a model: list, compare, promote and roll back, and shadow a challenger.

The promoted pointer and its history live in ``bentos/<name>/release/promotions.yaml``
(:mod:`workbench.promotions`), reviewed in git; the versions themselves are the Bentos in the
BentoML store, never modified here.
"""

from workbench.versions.catalog import list_versions, resolve_version, stored_versions
from workbench.versions.compare import compare_versions
from workbench.versions.promotion import promote, rollback
from workbench.versions.shadow import shadow

__all__ = [
    "compare_versions",
    "list_versions",
    "promote",
    "resolve_version",
    "rollback",
    "shadow",
    "stored_versions",
]
