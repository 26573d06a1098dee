"""Sections of ``workbench.yaml`` defined beside :mod:`workbench.config` (which holds the rest).

``retrain:`` is how ``workbench retrain`` makes and checks a challenger from new labelled rows
(docs/retraining.md). Paths resolve against the config's folder, as every path of the file does.
"""

from __future__ import annotations

from pydantic import Field

from workbench.runtime.settings import Strict


class RetrainOptions(Strict):
    """``workbench retrain`` (``retrain:``): how the challenger is fitted and how the new rows
    are split."""

    script: str | None = Field(
        default=None,
        description="a Python file beside workbench.yaml (or in a `code:` folder) defining "
        "`train(X, y)` that returns a fitted estimator (given `seed=` when it takes a `seed` "
        "parameter); none: a clone of the promoted model (sklearn.base.clone, same "
        "hyper-parameters) is fitted",
    )
    test_share: float = Field(
        default=0.3,
        ge=0.1,
        le=0.5,
        description="the share of the new rows held out (by the seed, identical rows together, "
        "each class apart) and added to the test data; the rest is added to the training data",
    )
    min_rows: int = Field(
        default=50,
        ge=10,
        le=1_000_000,
        description="distinct labelled new rows a retrain needs at least: below this the "
        "held-out part is too small for its metrics to tell a better model from a worse one",
    )
    seed: int = Field(
        default=0,
        ge=0,
        description="the seed of the split and of an unset `random_state` of the clone "
        "(`workbench retrain --seed` overrides it)",
    )
