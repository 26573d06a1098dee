"""Versions of a model: list, compare, promote and roll back, shadow a challenger and roll it out
to a share of live traffic.

The promoted pointer and its history live in ``bentos/<name>/release/promotions.yaml``
(:mod:`workbench.promotions`), reviewed in git; the versions themselves are the Bentos in the
BentoML store, never modified here.
"""

from workbench.versions.catalog import list_versions, resolve_version, stored_versions
from workbench.versions.compare import compare_versions
from workbench.versions.promotion import promote, rollback
from workbench.versions.rollout import (
    abort_rollout,
    advance_rollout,
    live_states,
    serve_rollout,
    start_rollout,
)
from workbench.versions.shadow import shadow

__all__ = [
    "abort_rollout",
    "advance_rollout",
    "compare_versions",
    "list_versions",
    "live_states",
    "promote",
    "resolve_version",
    "rollback",
    "serve_rollout",
    "shadow",
    "start_rollout",
    "stored_versions",
]
