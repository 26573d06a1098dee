"""A scikit-learn model compiled to ONNX, run by onnxruntime behind scikit-learn's interface.

A Bento that serves with ``runtime: onnx`` ships ``model.onnx`` and loads it with
:class:`OnnxModel` in place of the scikit-learn model: the runtime calls ``predict``,
``predict_proba`` and ``classes_`` as it would on the estimator. This module imports nothing from
workbench and nothing relatively (only the standard library, numpy, pandas and onnxruntime), so it
runs wherever those are installed.

Packaging (``workbench.compilation``) keeps a graph only when this class, fed the test rows,
gives scikit-learn's labels and its probabilities (or regression values) within 1e-6. The feeding
rules below are therefore part of that check, and the served Bento uses the same code:

* Columns: the graph's metadata entry :data:`COLUMNS_KEY` lists the training columns in input
  order (skl2onnx renames inputs, ``size cm`` becomes ``size_cm``). A DataFrame is read by those
  names; a 2-D array by position.
* A graph has either one ``[rows, columns]`` input (models that take the whole table) or one
  ``[rows, 1]`` input per column (models with a ColumnTransformer, which selects by name). Each
  input gets the element type the graph declares: float64 or float32 for numbers, int64 for
  integers and booleans (0/1), text for categories.
* Text: every value goes through ``str``, which is how skl2onnx wrote the categories it learned.
  So a missing ``None`` is fed as ``"None"`` and a missing NaN as ``"nan"``: scikit-learn's
  OneHotEncoder keeps those two apart as well (either a category seen in training or unknown), so
  the graph answers as scikit-learn does. (A real category spelled ``"None"`` or ``"nan"`` would
  collide with the missing value.)
* Labels: the graph's label output mapped back to ``classes_`` (the scikit-learn model's values and
  dtype, string or integer); probabilities as float64 in ``classes_`` order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import onnxruntime as ort
import pandas as pd
from numpy.typing import NDArray

COLUMNS_KEY = "workbench.columns"
"""ONNX metadata entry: a JSON list of the training columns, in the order of the graph's inputs."""
TEXT = "tensor(string)"
#: What each numeric graph input is fed as.
NUMERIC_INPUTS: dict[str, type[np.generic]] = {
    "tensor(double)": np.float64,
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

Features: TypeAlias = pd.DataFrame | NDArray[Any]


def session_options() -> Any:
    """Options for a low single-row latency on a small, shared machine.

    * ``intra_op_num_threads = 1``: a request batch is at most a few thousand rows, where splitting
      one operator across threads costs more in hand-offs than it saves, and BentoML scales with
      worker processes; each worker keeps to one core instead of fighting the others for two.
      (With more than one thread onnxruntime also spins idle threads, which burns shared CPU.)
    * ``inter_op_num_threads = 1`` and ``ORT_SEQUENTIAL``: skl2onnx graphs are short chains
      (impute, scale, encode, concat, predict) with nothing worth running in parallel.
    * ``ORT_ENABLE_ALL``: constant folding and node fusions, done once when the session is built.
    * ``log_severity_level = 3``: errors only; onnxruntime's load-time warnings about unused
      initializers are noise in the service log.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _tensor(
    values: pd.DataFrame | pd.Series | NDArray[Any], kind: str, column: str
) -> NDArray[Any]:
    """``values`` as the element type ``kind`` of the graph input fed from ``column``."""
    dtype = object if kind == TEXT else NUMERIC_INPUTS[kind]
    try:
        if isinstance(values, pd.DataFrame | pd.Series):
            array = values.to_numpy(dtype=dtype)
        else:
            array = np.asarray(values, dtype=dtype)
        return array.astype(str) if kind == TEXT else array
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"column {column!r} cannot be fed to the ONNX graph as {kind} ({exc}); send the "
            "dtype the model was trained on"
        ) from exc


class OnnxModel:
    """An ONNX graph in an onnxruntime session, answering like the scikit-learn model it came from.

    ``classes`` are the scikit-learn model's ``classes_`` (classifiers only: a regressor has no
    ``classes_`` attribute, as in scikit-learn). ``probabilities`` says whether the scikit-learn
    model has ``predict_proba``: without it the graph's second output is decision scores, and
    ``predict_proba`` is absent here too (``hasattr`` is False).

    Each call runs the session once. :meth:`predict_both` gives labels and probabilities from one
    run; and ``predict(X)`` right after ``predict_proba(X)`` on the same object ``X`` returns the
    labels of that run instead of running again (the runtime asks for both, in that order). The
    cache holds that one ``X`` and is consumed by the ``predict``; do not change ``X`` in place
    between the two calls.
    """

    classes_: NDArray[Any]

    def __init__(
        self,
        model_bytes: bytes,
        *,
        classes: NDArray[Any] | None = None,
        probabilities: bool = True,
    ) -> None:
        self.session = ort.InferenceSession(
            model_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        self.inputs: list[tuple[str, str]] = [(str(i.name), str(i.type)) for i in inputs]
        for name, kind in self.inputs:
            if kind != TEXT and kind not in NUMERIC_INPUTS:
                raise ValueError(
                    f"ONNX graph input {name!r} is {kind}, which OnnxModel cannot feed: only "
                    f"{', '.join([*NUMERIC_INPUTS, TEXT])}; serve this model with scikit-learn"
                )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.columns: list[str] | None = (
            [str(c) for c in json.loads(meta[COLUMNS_KEY])] if COLUMNS_KEY in meta else None
        )
        self.whole_table = len(self.inputs) == 1
        """One ``[rows, columns]`` input, rather than one input per column."""
        if not self.whole_table and self.columns is not None and len(self.columns) != len(inputs):
            raise ValueError(
                f"ONNX metadata {COLUMNS_KEY} names {len(self.columns)} columns but the graph has "
                f"{len(inputs)} inputs; compile the model again"
            )
        outputs = self.session.get_outputs()
        self.classifier = classes is not None
        self.probabilities = self.classifier and probabilities
        if self.probabilities and len(outputs) < 2:
            raise ValueError(
                f"the ONNX graph has one output ({outputs[0].name!r}), no class probabilities; "
                "compile the model again as a classifier"
            )
        self._first = [str(o.name) for o in outputs[:1]]
        """Labels or regression values."""
        self._both = [str(o.name) for o in outputs[:2]]
        """Labels and probabilities."""
        self._last: tuple[Features, NDArray[Any]] | None = None
        if classes is not None:
            self.classes_ = np.asarray(classes)
            self._sorted_keys, self._key_order = self._label_keys(str(outputs[0].type))

    def __repr__(self) -> str:
        what = f"classifier of {len(self.classes_)} classes" if self.classifier else "regressor"
        feeds = ", ".join(f"{name}: {kind}" for name, kind in self.inputs)
        return f"OnnxModel({what}; inputs {feeds})"

    def _label_keys(self, label_type: str) -> tuple[NDArray[Any], NDArray[np.intp]]:
        """``classes_`` as the graph's label output spells them (text or int64), sorted, and the
        position in ``classes_`` of each sorted key."""
        values = self.classes_.tolist()
        try:
            if label_type == TEXT:
                keys = np.array([str(c) for c in values], dtype=object)
            else:
                keys = np.array([int(c) for c in values], dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"classes_ {values!r} have no {label_type} form for the ONNX graph's labels "
                f"({exc}); serve this model with scikit-learn"
            ) from exc
        if len(set(keys.tolist())) != len(keys):
            raise ValueError(
                f"classes_ {values!r} are not distinct as the ONNX graph's {label_type} labels; "
                "serve this model with scikit-learn"
            )
        order = np.argsort(keys, kind="stable")
        return keys[order], order

    def _feeds(self, X: Features) -> dict[str, NDArray[Any]]:
        if isinstance(X, pd.DataFrame):
            if self.whole_table:
                name, kind = self.inputs[0]
                table = X
                if self.columns is not None and list(X.columns) != self.columns:
                    table = X[self.columns]
                return {name: _tensor(table, kind, "X")}
            columns = self.columns or [name for name, _ in self.inputs]
            return {
                name: _tensor(X[column], kind, column).reshape(-1, 1)
                for (name, kind), column in zip(self.inputs, columns, strict=True)
            }
        array = np.asarray(X)
        if array.ndim != 2:
            raise ValueError(f"X has shape {array.shape}; pass a DataFrame or a 2-D array")
        if self.whole_table:
            name, kind = self.inputs[0]
            return {name: _tensor(array, kind, "X")}
        return {
            name: _tensor(array[:, j : j + 1], kind, f"X[:, {j}]")
            for j, (name, kind) in enumerate(self.inputs)
        }

    def _run(self, X: Features, outputs: list[str]) -> list[NDArray[Any]]:
        return list(self.session.run(outputs, self._feeds(X)))

    def _labels(self, output: NDArray[Any]) -> NDArray[Any]:
        """The graph's labels as the matching values of ``classes_``."""
        labels = np.asarray(output).ravel()
        keys = self._sorted_keys
        positions = np.minimum(np.searchsorted(keys, labels), len(keys) - 1)
        found = np.asarray(keys[positions] == labels, dtype=bool)
        if not found.all():
            raise ValueError(
                f"the ONNX graph answered label {labels[~found][0]!r}, which is not among "
                f"classes_ {self.classes_.tolist()!r}; compile the model again"
            )
        return self.classes_.take(self._key_order[positions])

    def _need_probabilities(self, method: str) -> None:
        if not self.probabilities:
            what = "a regressor" if not self.classifier else "its scikit-learn model had none"
            raise AttributeError(f"{self!r} has no {method}: {what}")

    def predict(self, X: Features) -> NDArray[Any]:
        """Labels (values of ``classes_``) or regression values (float64), one per row."""
        last, self._last = self._last, None
        if last is not None and last[0] is X:
            return last[1]
        (output,) = self._run(X, self._first)
        if self.classifier:
            return self._labels(output)
        values = np.asarray(output, dtype=np.float64)
        return values.ravel() if values.ndim == 2 and values.shape[1] == 1 else values

    def predict_both(self, X: Features) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Labels and class probabilities (float64, ``classes_`` order) from one run."""
        self._need_probabilities("predict_both")
        label_output, probabilities = self._run(X, self._both)
        return self._labels(label_output), np.asarray(probabilities, dtype=np.float64)

    @property
    def predict_proba(self) -> Callable[[Features], NDArray[np.float64]]:
        """Class probabilities (float64, ``classes_`` order), one run; keeps its labels for the
        next ``predict`` of the same ``X``. Present only when the scikit-learn model had it."""
        self._need_probabilities("predict_proba")
        return self._predict_proba

    def _predict_proba(self, X: Features) -> NDArray[np.float64]:
        labels, probabilities = self.predict_both(X)
        self._last = (X, labels)
        return probabilities
