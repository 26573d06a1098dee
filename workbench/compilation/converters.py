"""Converters beyond scikit-learn: LightGBM and XGBoost estimators (alone or inside a Pipeline)
convert through onnxmltools' converters, registered with skl2onnx as its documentation shows
("Convert a pipeline with a LightGBM / XGBoost model"). The graph is then held to the same parity
rules as any other (:mod:`.parity`): kept only when it answers every test row as the model does.

Registered only for the libraries already imported: a model that holds one of their estimators
imported its library when it was loaded, and a scikit-learn model imports neither.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_REGISTERED: set[str] = set()
#: Classifier options skl2onnx passes through (``zipmap: False`` gives a probability tensor).
_CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


def _register(estimators: dict[str, Any], alias: str, converter: Callable[..., Any]) -> None:
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    for name, estimator in estimators.items():
        classifier = name.endswith("Classifier")
        update_registered_converter(
            estimator,
            f"{alias}{name}",
            calculate_linear_classifier_output_shapes
            if classifier
            else calculate_linear_regressor_output_shapes,
            converter,
            options=_CLASSIFIER_OPTIONS if classifier else None,
        )


def register_converters() -> None:
    """Register the LightGBM and XGBoost converters with skl2onnx, for the libraries this process
    has imported (once each)."""
    if "lightgbm" in sys.modules and "lightgbm" not in _REGISTERED:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        estimators = {"LGBMClassifier": LGBMClassifier, "LGBMRegressor": LGBMRegressor}
        _register(estimators, "LightGbm", convert_lightgbm)
        _REGISTERED.add("lightgbm")
    if "xgboost" in sys.modules and "xgboost" not in _REGISTERED:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        estimators = {"XGBClassifier": XGBClassifier, "XGBRegressor": XGBRegressor}
        _register(estimators, "XGBoost", convert_xgboost)
        _REGISTERED.add("xgboost")
