"""Retraining: a challenger fitted on the project's rows and new labelled rows (a file, or what a
served Bento captured), then validated, packaged, shadowed against the promoted version and
promoted only if every gate holds (:func:`retrain`; docs/retraining.md)."""

from workbench.retraining.stage import check_retrain, retrain, retrain_config

__all__ = ["check_retrain", "retrain", "retrain_config"]
