"""The challenger: the promoted model's clone, or what the project's training script returns,
fitted on the training rows.

A clone (``sklearn.base.clone``) keeps every hyper-parameter of the promoted model; a
``random_state`` it leaves unset gets the retrain's seed, so the same inputs fit the same model
(the record names each such parameter). A training script (``retrain.script``) is a module of the
project defining ``train(X, y)`` that returns a fitted estimator; it is given ``seed=`` when it
takes a ``seed`` parameter. Its classes pickle under its module name, which imports wherever the
project's code does (the Bento carries it). Whatever fails while fitting is one error at the
command line; its traceback goes to the run's log.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pandas as pd
from joblib.numpy_pickle import NumpyPickler
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from workbench.artifacts import sha256_file, write_atomic
from workbench.config import Config
from workbench.errors import ConfigError, ModelError, VersionError
from workbench.integrity import verify_bento
from workbench.project_code import module_name
from workbench.promotions import history_path, promoted_tag
from workbench.versions.catalog import StoredVersion, resolve_version
from workbench.versions.scoring import load_version_model

Log = Callable[[str], None]


@dataclass(frozen=True)
class Champion:
    """The promoted version a retrain challenges, and the model it serves."""

    version: StoredVersion
    model: Any

    @property
    def classes(self) -> list[object] | None:
        found = getattr(self.model, "classes_", None)
        return None if found is None else list(found)


def load_champion(config: Config) -> Champion:
    """The promoted version of ``config.name`` and its stored model (the only place a retrain
    loads a stored model), once the project's records vouch for its Bento and its model's bytes
    (:func:`~workbench.integrity.verify_bento`, then the checked unpickling of
    :func:`~workbench.versions.scoring.load_version_model`): an altered or unknown promoted version
    is refused before anything of it is loaded."""
    tag = promoted_tag(config.root, config.name)
    if tag is None:
        raise VersionError(
            f"nothing of {config.name!r} is promoted ({history_path(config.root, config.name)}): "
            "a retrain challenges the version that serves; promote it first (`workbench promote "
            f"{config.name}:VERSION --reason ...`)"
        )
    version = resolve_version(tag, name=config.name)
    verify_bento(config.root, version.tag)
    return Champion(version, load_version_model(version, config.root))


@dataclass(frozen=True)
class Fitted:
    """The fitted challenger and how it was made."""

    model: Any
    how: Literal["clone", "script"]
    source: str
    script_sha256: str | None
    seeded: list[str]


def fit_challenger(  # noqa: PLR0913 - keyword-only: the seed and where failures are written
    config: Config,
    champion: Champion,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    seed: int,
    log: Log,
    log_file: Path,
) -> Fitted:
    """The challenger fitted on ``X``, ``y``: by the training script when the config names one,
    else a clone of the champion's model."""
    script = config.retrain.script
    if script is not None:
        path = script_path(config)
        model = _run_script(path, X, y, seed=seed, log=log, log_file=log_file)
        return Fitted(model, "script", str(path), sha256_file(path), [])
    fresh, seeded = seeded_clone(champion.model, seed, tag=champion.version.card.model_tag)
    what = f"a clone of {champion.version.card.model_tag} ({type(fresh).__name__})"
    try:
        fresh.fit(X, y)
    except Exception as exc:
        raise _failure(f"fitting {what}", exc, log=log, log_file=log_file) from exc
    return Fitted(fresh, "clone", what, None, seeded)


def seeded_clone(model: Any, seed: int, *, tag: str) -> tuple[Any, list[str]]:
    """An unfitted clone of ``model`` with the same hyper-parameters, its unset
    ``random_state`` parameters set to ``seed``; and their names."""
    try:
        fresh = clone(model)
    except Exception as exc:
        raise ModelError(
            f"the promoted model {tag} ({type(model).__name__}) cannot be cloned "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}); name a training "
            "script under `retrain.script` in workbench.yaml (a train(X, y) that returns the "
            "fitted model)"
        ) from exc
    params = fresh.get_params(deep=True) if hasattr(fresh, "get_params") else {}
    unset = sorted(
        name
        for name, value in params.items()
        if value is None and (name == "random_state" or name.endswith("__random_state"))
    )
    if unset:
        fresh.set_params(**dict.fromkeys(unset, seed))
    return fresh, unset


def script_path(config: Config) -> Path:
    """The training script ``retrain.script`` names, checked: a ``.py`` file in a folder the
    project's code imports from (its classes must unpickle wherever the model loads)."""
    value = str(config.retrain.script)
    path = config.path(value)
    problem = None
    if not path.is_file() or path.suffix != ".py":
        problem = f"{path} is not a Python file (.py)"
    elif path.parent not in config.import_roots:
        problem = (
            f"its folder {path.parent} is not one the project's code imports from: put it beside "
            "workbench.yaml or name its folder's module under `code:`"
        )
    elif not module_name(path).isidentifier():
        problem = f"{path.name!r} cannot be imported under that name (not a Python identifier)"
    if problem:
        raise ConfigError(f"`retrain.script` {value!r}: {problem}")
    return path


def _import_script(path: Path) -> ModuleType:
    """The script as the module its file name makes (imported afresh: an edited script counts)."""
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"`retrain.script` {path}: Python cannot import it")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _run_script(
    path: Path, X: pd.DataFrame, y: pd.Series, *, seed: int, log: Log, log_file: Path
) -> Any:
    """What the script's ``train`` returns, checked to be a fitted estimator."""
    try:
        module = _import_script(path)
    except ConfigError:
        raise
    except Exception as exc:
        raise _failure(
            f"importing the training script {path.name}", exc, log=log, log_file=log_file
        ) from exc
    train = getattr(module, "train", None)
    if not callable(train):
        raise ConfigError(
            f"`retrain.script` {path.name} defines no function train(X, y); define one that "
            "fits a model on the DataFrame X and the Series y and returns it"
        )
    takes_seed = "seed" in inspect.signature(train).parameters
    try:
        model = train(X, y, seed=seed) if takes_seed else train(X, y)
    except Exception as exc:
        raise _failure(f"the training script {path.name}", exc, log=log, log_file=log_file) from exc
    if not (isinstance(model, BaseEstimator) and hasattr(model, "predict")):
        raise ModelError(
            f"train() in {path.name} returned a {type(model).__name__}, not a scikit-learn "
            "estimator with predict(); return the fitted estimator or Pipeline"
        )
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise ModelError(
            f"train() in {path.name} returned an unfitted {type(model).__name__}; call fit() "
            "before returning it"
        ) from exc
    return model


def _failure(what: str, exc: BaseException, *, log: Log, log_file: Path) -> ModelError:
    """One line for the command line; the traceback into the run's log."""
    log(f"{what} failed:\n{''.join(traceback.format_exception(exc)).rstrip()}")
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return ModelError(
        f"{what} failed ({type(exc).__name__}: {first}); the traceback is in {log_file}"
    )


class _ContentPickler(NumpyPickler):  # type: ignore[misc] # joblib ships no type information
    """joblib's pickler (its file format, what ``joblib.load`` and BentoML read) that writes each
    distinct string once and refers back to it after.

    The standard pickler shares what is the *same object* in memory, and whether two equal
    strings are one object (``"C"`` the attribute name and ``"C"`` the array order) depends on
    the process's history (string interning): the same fitted model then pickles to different
    bytes in a notebook session and in a fresh process. Sharing equal strings always makes the
    bytes a function of the model's content.
    """

    dispatch = NumpyPickler.dispatch.copy()

    def __init__(self, fp: Any) -> None:
        super().__init__(fp)
        self.strings: dict[str, str] = {}

    def save_str(self, obj: str) -> None:
        first = self.strings.setdefault(obj, obj)
        if first is obj:
            NumpyPickler.dispatch[str](self, obj)
        else:
            self.save(first)  # memoized when it was written: a reference to it

    dispatch[str] = save_str


def dump_model(model: Any, path: Path) -> None:
    """Write ``model`` as a joblib file whose bytes depend only on its content (the same fit
    gives the same file, so the same model version and Bento version), atomically."""
    buffer = io.BytesIO()
    _ContentPickler(buffer).dump(model)
    write_atomic(path, buffer.getvalue())
