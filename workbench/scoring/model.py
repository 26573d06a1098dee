"""The Bento's model and row rules, loaded the way its service loads them, once per process.

:func:`load_bento_model` imports the Bento's own ``service.py`` (under a private module name, with
the ``workbench_runtime`` it ships) for its ``SETTINGS``, its ``Row`` model and its ``SERVING``,
and asks ``SERVING.load`` for what answers requests: the ONNX graph beside ``service.py`` when the
Bento serves with onnxruntime, else the scikit-learn model from the BentoML store. Before the
import, the Bento's files are hashed, and the model's pickle as it is unpickled, against the hashes
the job verified with the project's records (:class:`~workbench.integrity.VouchedBento`): every
process checks the copy of the store it reads. No bytecode is written into the Bento. The result is
cached per process and keyed by the Bento's ``src`` path, so a Dask worker loads the model once
and every task it runs reuses it; tasks carry only the path and the hashes, never the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from workbench.errors import IntegrityError, ModelError
from workbench.integrity import (
    VouchedBento,
    check_bento_files,
    stored_model_path,
    unpickle_verified,
)
from workbench.runtime.predictor import Predictor

_LOCK = threading.Lock()
_LOADED: dict[str, BentoModel] = {}
_LOADS = [0]


@dataclass(frozen=True)
class BentoModel:
    """What scores rows: the row model, the settings and a predictor over the served model."""

    src: str
    row_model: type[BaseModel]
    settings: Any
    """The Bento's ``SETTINGS`` (its runtime's :class:`~workbench.runtime.settings.Settings`)."""
    predictor: Predictor


def load_bento_model(src: str | Path, vouched: VouchedBento) -> BentoModel:
    """The model of the Bento whose ``src`` folder is ``src``, loaded once per process, if its
    files and model are the ones ``vouched`` for."""
    key = str(Path(src).resolve())
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load(Path(key), vouched)
            _LOADS[0] += 1
        return _LOADED[key]


def load_count() -> int:
    """How many times this process has loaded a Bento's model (once per Bento)."""
    return _LOADS[0]


def _load(src: Path, vouched: VouchedBento) -> BentoModel:
    service_file = src / "service.py"
    if not service_file.is_file():
        raise ModelError(f"{str(src)!r} has no service.py; give a Bento built by workbench")
    check_bento_files(src.parent, vouched.bento_sha256, tag=vouched.tag, source="the job")

    def sklearn_model() -> Any:
        path = stored_model_path(vouched.model_tag)
        try:
            return unpickle_verified(
                path, {vouched.model_sha256}, what=f"model {vouched.model_tag}"
            )
        except IntegrityError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is the same advice
            raise ModelError(
                f"model {settings.model_tag} of the Bento in {str(src)!r} could not be loaded "
                f"from the BentoML store ({type(exc).__name__}: {exc}); run where BENTOML_HOME "
                "is the store that holds the Bento (on a cluster: on every worker)"
            ) from exc

    with _bento_modules(src):  # its runtime imports lazily (onnxruntime): load in context too
        module = _import_service(src, service_file)
        settings, row_model, serving = module.SETTINGS, module.Row, module.SERVING
        model = serving.load(sklearn_model)
    return BentoModel(str(src), row_model, settings, Predictor(model, row_model, settings))


@contextlib.contextmanager
def _bento_modules(src: Path) -> Iterator[None]:
    """Imports inside see the Bento's ``src`` first, with its own ``workbench_runtime``; after,
    both names are as before, so another Bento loaded in this process gets its own copies."""
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "workbench_runtime"}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(src))
    # The Bento stays as verified: no bytecode written into it, none read from it (a prefix of
    # its own, empty, instead of the __pycache__ folders beside its sources).
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    prefix = sys.pycache_prefix
    with tempfile.TemporaryDirectory(prefix="workbench-pycache-") as empty:
        sys.pycache_prefix = empty
        try:
            yield
        finally:
            sys.pycache_prefix = prefix
            sys.dont_write_bytecode = bytecode
            sys.path.remove(str(src))
        for k in [k for k in sys.modules if k.split(".")[0] == "workbench_runtime"]:
            del sys.modules[k]
        sys.modules.update(saved)


def _import_service(src: Path, service_file: Path) -> Any:
    """The Bento's ``service.py`` as a private module (inside :func:`_bento_modules`)."""
    name = f"workbench_bento_service_{hashlib.sha256(str(src).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(name, service_file)
    if spec is None or spec.loader is None:
        raise ModelError(f"{str(service_file)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelError(
            f"the Bento's {str(service_file)!r} failed to import ({type(exc).__name__}: "
            f"{exc}); run where BENTOML_HOME is the store that holds the Bento and its model"
        ) from exc
    return module
