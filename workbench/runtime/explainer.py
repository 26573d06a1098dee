"""Per-row explanations (``POST /explain``): each input column's contribution to one output of the
model, the contributions adding up to that output minus a base value.

Packaging chooses the method (``workbench/explanation``) and writes it into ``settings.json``
(:class:`ExplanationSpec`); this module only carries it out, with the model's own library:

- ``linear``: a linear last step (logistic regression, ridge, ...): ``coef * (x - mean)`` per
  feature over the mean of the training sample, exact SHAP for a linear model with independent
  features (what ``shap.LinearExplainer`` computes); the output is the decision function
  (log-odds for a logistic regression) or the predicted value.
- ``tree_shap``: a scikit-learn tree ensemble: ``shap.TreeExplainer`` (exact, path-dependent
  TreeSHAP; shap is imported only here, and installed in the Bento only then).
- ``lightgbm`` / ``xgboost``: the booster's own exact TreeSHAP (``pred_contrib=True`` /
  ``pred_contribs=True``) in its raw score.
- ``permutation``: any model, explained as a whole over the input columns: Shapley values
  estimated from :attr:`ExplanationSpec.permutations` permutations of the columns (each one with
  its reverse) against :attr:`ExplanationSpec.background_rows` training rows shipped in the Bento
  (``explain_background.json``). Each permutation's contributions telescope, so they add up
  exactly to the output minus its mean over the background rows.

For a Pipeline explained on its last step, each transformed feature's contribution is added to
the input column it comes from (:attr:`ExplanationSpec.features`), so every answer speaks of the
request's own fields. A classifier's explained output is the predicted class's: its probability
(``probability``), or its log-odds or margin (for a binary margin, the predicted class's side:
the margin of class 0 is minus that of class 1).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Method = Literal["linear", "tree_shap", "lightgbm", "xgboost", "permutation"]
Output = Literal["probability", "log-odds", "margin", "value", "raw score"]

MAX_EXPLAIN_ROWS = 100
"""The most rows one ``POST /explain`` may carry (more: 413)."""
PERMUTATIONS = 8
"""``permutation``: permutations of the columns per explained row (4 and their reverses)."""
BACKGROUND_ROWS = 16
"""``permutation``: training rows the absent columns are drawn from."""
BACKGROUND_FILE = "explain_background.json"
"""The ``permutation`` method's background rows beside ``service.py`` (training rows)."""
TOP = 20
"""Contributions an answer lists by name, largest first; the rest are summed as ``(others)``."""
OTHERS = "(others)"


class ExplainBusy(Exception):
    """Too many ``POST /explain`` requests at once in this worker (429)."""


class ExplainRefused(Exception):
    """The rows could not be explained, though the model explains its warm-up row (400)."""


class ExplanationSpec(BaseModel):
    """How this Bento explains a row, decided and checked at packaging (``settings.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method
    output: Output
    """The units of ``value``, ``base_value`` and the contributions."""
    reason: str
    """Why this method (and, when it is ``permutation``, why not an exact one)."""
    library: str
    """What computes it, with its version (``shap 0.51.0``, ``lightgbm 4.7.0``, ``numpy``)."""
    features: list[int] | None = None
    """A Pipeline explained on its last step: the input column (index) each transformed feature
    comes from, -1 for one constant over the training data; None: the features are the input
    columns themselves (or ``permutation``, which works on them)."""
    means: list[float] | None = None
    """``linear``: each feature's mean over the training sample (the base point)."""
    base_values: list[float] = Field(default_factory=list)
    """The base value of each class (classifiers, in ``classes`` order) or of the prediction."""
    permutations: int = 0
    background_rows: int = 0
    max_rows: int = MAX_EXPLAIN_ROWS
    rows_checked: int = 0
    additivity_error: float = 0.0
    """The largest |output - base value - sum of contributions| on the test rows checked."""

    @property
    def sample_size(self) -> int | None:
        """Model evaluations behind each contribution (``permutation``); None: exact."""
        return self.permutations * self.background_rows if self.method == "permutation" else None

    def card(self) -> dict[str, Any]:
        """What the model card and ``/metadata`` say about it."""
        return {
            "method": self.method,
            "exact": self.method != "permutation",
            "output": self.output,
            "base_values": self.base_values,
            "sample_size": self.sample_size,
            "permutations": self.permutations or None,
            "background_rows": self.background_rows or None,
            "library": self.library,
            "max_rows": self.max_rows,
            "additivity_error": self.additivity_error,
            "rows_checked": self.rows_checked,
            "reason": self.reason,
        }


def is_pipeline(model: Any) -> bool:
    return hasattr(model, "steps") and hasattr(model, "named_steps")


def split_model(model: Any) -> tuple[Any | None, Any]:
    """(the steps before the last, or None, and the last step) of a Pipeline or an estimator."""
    if is_pipeline(model):
        return (model[:-1] if len(model.steps) > 1 else None), model.steps[-1][1]
    return None, model


def dense(values: Any) -> Any:
    """A sparse matrix as a dense float array; anything else as it is."""
    return values.toarray() if hasattr(values, "toarray") else values


def read_background(folder: Path, dtypes: dict[str, str]) -> pd.DataFrame | None:
    """The ``permutation`` method's background rows (None when the Bento has none)."""
    path = folder / BACKGROUND_FILE
    if not path.is_file():
        return None
    records = json.loads(path.read_text())
    return pd.DataFrame.from_records(records, columns=list(dtypes)).astype(dtypes)


class Explainer:
    """Explains model inputs with the method of ``spec`` (see the module docstring).

    ``model`` is the fitted scikit-learn model (the pickle, even when onnxruntime serves the
    predictions), ``columns`` the input columns in the model's order, ``classes`` the
    classifier's classes (None for a regressor) and ``background`` the ``permutation`` method's
    rows in the model's input dtypes.
    """

    def __init__(
        self,
        model: Any,
        spec: ExplanationSpec,
        *,
        columns: Sequence[str],
        classes: Sequence[Any] | None,
        background: pd.DataFrame | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.columns = list(columns)
        self.classes = None if classes is None else list(classes)
        self.pre, self.last = split_model(model)
        self.background = background
        if spec.method == "permutation" and background is None:
            raise ValueError(f"the permutation method needs its rows ({BACKGROUND_FILE})")
        self.tree: Any = None
        if spec.method == "tree_shap":
            import shap  # only a Bento explaining a scikit-learn tree ensemble installs it

            self.tree = shap.TreeExplainer(self.last)
        methods: dict[str, Callable[[Any], tuple[np.ndarray, np.ndarray]]] = {
            "linear": self._linear,
            "tree_shap": self._tree_shap,
            "lightgbm": self._lightgbm,
            "xgboost": self._xgboost,
        }
        self.contributions = methods.get(spec.method, self._whole_model)

    # ------------------------------------------------------------ the whole answer

    def explain(self, X: Any) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:
        """(labels, outputs, base values, contributions per input column) for the model input
        ``X``: the explained output of each row (the predicted class's, for a classifier), in the
        units of :attr:`ExplanationSpec.output`."""
        labels = np.asarray(self.model.predict(X))
        index = self._class_index(labels)
        if self.spec.method == "permutation":
            phi, base, value = self._permutation(X, index)
            return labels.tolist(), value, base, phi
        Xt = X if self.pre is None else dense(self.pre.transform(X))
        per_feature, bases = self.contributions(Xt)  # (rows, features, outputs), (rows, outputs)
        rows = np.arange(len(labels))
        value = self._outputs(X, Xt)[rows, index]
        phi = self._per_column(per_feature[rows, :, index])
        return labels.tolist(), value, bases[rows, index], phi

    def base_values(self, X: Any) -> list[float]:
        """The base value of each output (each class's, or the prediction's), read off the model
        input ``X`` (the same for every row; ``permutation``: the mean over the background)."""
        if self.spec.method == "permutation":
            assert self.background is not None
            bases = self._predicted(self._fed(self.background, X)).mean(axis=0)
        else:
            Xt = X if self.pre is None else dense(self.pre.transform(X))
            bases = self.contributions(Xt)[1][0]
        return [float(v) for v in np.asarray(bases).ravel()]

    def answers(self, X: Any, warnings: list[list[str]] | None = None) -> list[str]:
        """Each row's answer as JSON text: the prediction, what is explained, the value, the base
        value and the contributions, largest first."""
        labels, value, base, phi = self.explain(X)
        answers = []
        for i, label in enumerate(labels):
            order = np.argsort(-np.abs(phi[i]), kind="stable")
            listed = [
                {"column": self.columns[j], "contribution": float(phi[i, j])} for j in order[:TOP]
            ]
            if len(order) > TOP:
                listed.append({"column": OTHERS, "contribution": float(phi[i, order[TOP:]].sum())})
            answers.append(
                json.dumps(
                    {
                        "prediction": label,
                        "output": self.output_name(label),
                        "value": float(value[i]),
                        "base_value": float(base[i]),
                        "contributions": listed,
                        "warnings": [] if warnings is None else warnings[i],
                    }
                )
            )
        return answers

    def output_name(self, label: Any) -> str:
        """What ``value`` is for a row predicted ``label`` (``probability of class 1``)."""
        if self.classes is None:
            return "predicted value" if self.spec.output == "value" else self.spec.output
        return f"{self.spec.output} of class {label}"

    def _class_index(self, labels: np.ndarray) -> np.ndarray:
        if self.classes is None:
            return np.zeros(len(labels), dtype=np.intp)
        where = {str(c): i for i, c in enumerate(self.classes)}
        return np.array([where[str(label)] for label in labels.tolist()], dtype=np.intp)

    def _per_column(self, phi: np.ndarray) -> np.ndarray:
        """Feature contributions added up per input column."""
        features = self.spec.features
        if features is None:
            return phi
        out = np.zeros((phi.shape[0], len(self.columns)))
        for feature, column in enumerate(features):
            if column >= 0:
                out[:, column] += phi[:, feature]
        return out

    def _outputs(self, X: Any, Xt: Any) -> np.ndarray:
        """The explained output of every class, computed by the model itself: (rows, outputs)."""
        last, output = self.last, self.spec.output
        if output == "probability":
            values = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        elif self.spec.method == "lightgbm" and output != "value":
            values = np.asarray(last.predict(Xt, raw_score=True), dtype=np.float64)
        elif self.spec.method == "xgboost" and output != "value":
            values = np.asarray(last.predict(Xt, output_margin=True), dtype=np.float64)
        elif self.classes is not None:
            values = np.asarray(last.decision_function(Xt), dtype=np.float64)
        else:
            values = np.asarray(last.predict(Xt), dtype=np.float64)
        return self._by_class(values.reshape(len(values), -1))

    def _by_class(self, values: np.ndarray) -> np.ndarray:
        """One column per class: a binary classifier's single margin (that of class 1) becomes
        (minus it, it)."""
        if self.classes is not None and len(self.classes) == 2 and values.shape[-1] == 1:
            return np.concatenate([-values, values], axis=-1)
        return values

    # ------------------------------------------------------------ the methods

    def _whole_model(self, Xt: Any) -> tuple[np.ndarray, np.ndarray]:  # noqa: ARG002
        raise AssertionError("permutation explains the whole model")  # pragma: no cover

    def _per_output(self, phi: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions, base values) with one output per class (:meth:`_by_class`): a
        binary margin's class 0 side is minus its class 1 side, the base value's too."""
        if self.classes is not None and len(self.classes) == 2 and phi.shape[-1] == 1:
            return np.concatenate([-phi, phi], axis=-1), np.concatenate([-base, base], axis=-1)
        return phi, base

    def _linear(self, Xt: Any) -> tuple[np.ndarray, np.ndarray]:
        coef = np.atleast_2d(np.asarray(self.last.coef_, dtype=np.float64))  # (outputs, features)
        means = np.asarray(self.spec.means, dtype=np.float64)
        centred = np.asarray(Xt, dtype=np.float64) - means
        base = np.atleast_1d(np.asarray(self.last.intercept_, dtype=np.float64)) + coef @ means
        rows = len(centred)
        return self._per_output(centred[:, :, None] * coef.T[None, :, :], np.tile(base, (rows, 1)))

    def _tree_shap(self, Xt: Any) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(self.tree.shap_values(Xt, check_additivity=False), dtype=np.float64)
        if values.ndim == 2:
            values = values[:, :, None]
        expected = np.atleast_1d(np.asarray(self.tree.expected_value, dtype=np.float64))
        return self._per_output(values, np.tile(expected, (len(values), 1)))

    def _lightgbm(self, Xt: Any) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(dense(self.last.predict(Xt, pred_contrib=True)), dtype=np.float64)
        rows, width = values.shape
        outputs = width // (self._width(Xt) + 1)
        per_output = values.reshape(rows, outputs, -1)  # the last of each output is its bias
        return self._per_output(per_output[:, :, :-1].transpose(0, 2, 1), per_output[:, :, -1])

    def _xgboost(self, Xt: Any) -> tuple[np.ndarray, np.ndarray]:
        booster = self.last.get_booster()
        # The booster's own library (loaded with the model, which its Bento installs) reads it.
        library = importlib.import_module(type(booster).__module__)
        names = booster.feature_names
        matrix = library.DMatrix(Xt if names is None else pd.DataFrame(Xt, columns=names))
        values = np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)
        if values.ndim == 2:
            values = values[:, None, :]
        return self._per_output(values[:, :, :-1].transpose(0, 2, 1), values[:, :, -1])

    @staticmethod
    def _width(Xt: Any) -> int:
        return int(np.shape(Xt)[1])

    @staticmethod
    def _fed(frame: pd.DataFrame, like: Any) -> Any:
        """``frame`` as the model takes its input: a frame, or an array when ``like`` is one."""
        return frame if isinstance(like, pd.DataFrame) else frame.to_numpy()

    def _predicted(self, X: Any) -> np.ndarray:
        """The output the permutation method explains, of every class: (rows, outputs)."""
        if self.classes is not None:
            return np.asarray(self.model.predict_proba(X), dtype=np.float64)
        return np.asarray(self.model.predict(X), dtype=np.float64).reshape(-1, 1)

    def _permutation(self, X: Any, index: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sampled Shapley values over the input columns (see the module docstring): one model
        call per explained row on (columns + 1) x permutations x background rows."""
        background = self.background
        assert background is not None
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=self.columns)
        width, count = len(self.columns), len(background)
        orders = permutation_orders(width, self.spec.permutations)
        # from_x[p, s, j]: after s steps of permutation p, column j is the explained row's.
        steps = np.arange(width + 1)[None, :, None]
        position = np.argsort(orders, axis=1)[:, None, :]
        from_x = (position < steps).reshape(-1, width)  # (permutations * (width + 1), width)
        mask = np.repeat(from_x, count, axis=0)
        tiled = background.iloc[np.tile(np.arange(count), len(from_x))].reset_index(drop=True)
        phi = np.zeros((len(frame), width))
        value, base = np.zeros(len(frame)), np.zeros(len(frame))
        chosen = pd.DataFrame(mask, columns=tiled.columns)
        dtypes = background.dtypes.to_dict()
        for i in range(len(frame)):
            row = frame.iloc[[i] * len(tiled)].reset_index(drop=True)
            batch = tiled.mask(chosen, row).astype(dtypes)
            out = self._predicted(self._fed(batch, X))
            f = out[:, index[i]].reshape(len(orders), width + 1, count).mean(axis=2)
            gains = np.diff(f, axis=1)  # (permutations, width): step s adds column orders[p, s]
            np.add.at(phi[i], orders.ravel(), gains.ravel())
            value[i], base[i] = f[0, -1], f[0, 0]
        return phi / len(orders), base, value


def permutation_orders(width: int, count: int, *, seed: int = 0) -> np.ndarray:
    """``count`` orders of ``width`` columns, seeded: each drawn one followed by its reverse
    (antithetic pairs lower the variance at no cost in additivity)."""
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(max(1, count // 2)):
        order = rng.permutation(width)
        orders += [order, order[::-1]]
    return np.array(orders[: max(count, 1)])


__all__ = [
    "BACKGROUND_FILE",
    "ExplainBusy",
    "ExplainRefused",
    "MAX_EXPLAIN_ROWS",
    "ExplanationSpec",
    "Explainer",
    "permutation_orders",
    "read_background",
    "split_model",
]
