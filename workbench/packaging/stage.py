"""The package stage: save the validated model to the BentoML store and build its Bento.

Versions are derived from content, not time: the model version hashes the model bytes and the
metadata stored with it, the Bento version hashes the generated service, bentofile, model card and
pinned packages. Packaging the same inputs twice yields the same tags and adds nothing to the store.
The model is loaded once; the compiled graph is the one validation checked and kept
(:mod:`workbench.packaging.validated`), not compiled again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd
from bentoml._internal.models.model import ModelSignature  # what bentoml.sklearn passes

from workbench.artifacts import (
    load_model,
    records_dir,
    sha256_file,
    sha256_text,
    write_record,
)
from workbench.compilation import CompiledModel
from workbench.config import Config
from workbench.data import load_frame, split_features
from workbench.errors import PackagingError
from workbench.explanation import Chosen, choose_explanation
from workbench.integrity import check_stored_pickle, is_vouched, vouch_packaged
from workbench.packaging.code import ProjectModules
from workbench.packaging.kubernetes import render_kubernetes
from workbench.packaging.plan import measure_call_cost, plan_serving
from workbench.packaging.requirements import ModelNeeds, find_needs, library_pins
from workbench.packaging.sources import (
    RUNTIME_PACKAGE,
    ServiceSpec,
    check_warm_up,
    example_row,
    fallbacks,
    prediction_reference,
    service_files,
    unseen_policy,
)
from workbench.packaging.validated import drift_reference, passed_validation, served_graph
from workbench.results import PackageResult, ValidationResult
from workbench.runtime import MODEL_FILE
from workbench.runtime.settings import DRIFT_REFERENCE_FILE, ONNX_FILE, PREDICTION_REFERENCE_FILE

#: What the Bento installs, pinned to the versions the model was validated with.
RUNTIME_PACKAGES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "threadpoolctl",
    "pydantic",
    # The fast HTTP stack: BentoML's worker runs uvicorn with loop/http "auto", which takes uvloop
    # and httptools when installed (~3.7x a no-op endpoint's throughput here) and h11 + asyncio
    # otherwise; nothing in the service depends on them.
    "uvloop",
    "httptools",
)
#: What a Bento serving with onnxruntime adds (onnxruntime and what it requires).
ONNX_PACKAGES = ("onnxruntime", "protobuf", "flatbuffers", "packaging")
BUILD_TIMEOUT_S = 600
KUBERNETES_FILE = "deploy/kubernetes.yaml"


def bentoml_home() -> Path:
    """The BentoML store in use (``$BENTOML_HOME``, else ``~/bentoml``)."""
    return Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")).expanduser()


def pinned_packages(*, onnx: bool = False) -> list[str]:
    """``name==version`` for each runtime package, read from this environment."""
    names = (*RUNTIME_PACKAGES, *(ONNX_PACKAGES if onnx else ()))
    return [f"{name}=={importlib_metadata.version(name)}" for name in names]


def model_needs(config: Config) -> ModelNeeds:
    """The distributions beyond :data:`RUNTIME_PACKAGES` and the project modules the model
    needs, found from its pickle (refused, naming the module, when one is nowhere)."""
    project = ProjectModules(config.root.resolve(), tuple(config.code_paths))
    return find_needs(config.model_path, project, base=RUNTIME_PACKAGES)


def _store_has(kind: str, tag: str) -> bool:
    getter = bentoml.models.get if kind == "model" else bentoml.bentos.get
    try:
        getter(tag)
    except bentoml.exceptions.NotFound:
        return False
    return True


def save_model(config: Config, validation: ValidationResult) -> tuple[str, bool]:
    """Save the validated model file under a content-derived version; returns (tag, newly saved)."""
    # BentoML metadata takes only basic, non-null values: nested documents go in as JSON text.
    meta = {
        "task": validation.task,
        "metrics": {k: v for k, v in validation.metrics.items() if v is not None},
        "input_schema": validation.input_schema.model_dump_json(),
        "classes": json.dumps(validation.classes),
        "inputs_sha256": validation.inputs,
        # The profile itself ships in the Bento as reference_profile.json.
        "reference_profile_sha256": sha256_text(
            validation.profile.model_dump_json() if validation.profile else ""
        ),
    }
    version = sha256_text(validation.inputs["model"], json.dumps(meta, sort_keys=True))[:16]
    tag = f"{config.name}:{version}"
    if _store_has("model", tag):
        check_stored_pickle(tag, validation.inputs["model"])
        return tag, False
    try:
        store_model(
            tag,
            config.model_path,
            validation.inputs["model"],
            labels={"generated-by": "workbench", "task": validation.task},
            metadata=meta,
        )
    except Exception as exc:
        raise PackagingError(
            f"saving model {tag} to the BentoML store failed ({type(exc).__name__}: {exc})"
        ) from exc
    return tag, True


def store_model(
    tag: str,
    model_file: Path,
    model_sha256: str,
    *,
    labels: dict[str, str],
    metadata: dict[str, Any],
) -> None:
    """Save a model as ``bentoml.sklearn.save_model`` does (its module, signature and context:
    ``bentoml.sklearn.load_model`` reads it), its ``saved_model.pkl`` the project's model file
    byte for byte (a joblib file, which ``load_model`` read). Pickling the loaded model again
    would give bytes that depend on the process (which equal strings happen to be one object),
    so the same model would get another Bento version in another process."""
    context = bentoml.models.ModelContext(
        framework_name="sklearn",
        framework_versions={"scikit-learn": importlib_metadata.version("scikit-learn")},
    )
    with bentoml.models.create(
        tag,
        module="bentoml.sklearn",
        signatures={"predict": ModelSignature(batchable=False)},
        labels=labels,
        metadata=metadata,
        context=context,
    ) as stored:
        copy = Path(stored.path_of(MODEL_FILE))
        shutil.copyfile(model_file, copy)
        if sha256_file(copy) != model_sha256:  # aborts the save: nothing half-written is kept
            raise PackagingError(
                f"model file {str(model_file)!r} changed after validation; run validate again"
            )


def build_bento(service_dir: Path, version: str) -> None:
    """Build the Bento in a subprocess (a same-process rebuild would reuse a stale module)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", ".", "--version", version, "--output", "tag"],
        cwd=service_dir,  # bentoml refuses a bentofile outside the working directory
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", "NO_COLOR": "1"},
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise PackagingError(f"`bentoml build` in {service_dir} failed:\n{tail}")


def export_bento(tag: str, folder: Path) -> Path:
    """Export the Bento as an archive into ``folder`` (``bentoml import`` takes it anywhere)."""
    target = folder / f"{tag.replace(':', '-')}.bento"
    if not target.is_file():
        partial = folder / f".partial-{target.name}"
        exported = bentoml.bentos.export_bento(tag, str(partial))
        Path(exported).replace(target)
    return target


def _describe_bento(path: Path) -> tuple[int, list[str]]:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return sum(p.stat().st_size for p in files), [p.relative_to(path).as_posix() for p in files]


def package(config: Config, *, run_dir: str | Path | None = None) -> PackageResult:
    """Save the validated model and build its Bento; writes ``package.json``.

    Refuses (:class:`~workbench.errors.GateFailure`) when validation did not pass. On any failure
    the model saved by this call is removed again, so nothing half-made stays in the store.
    """
    started = time.perf_counter()
    folder = records_dir(config.root, run_dir)
    validation = passed_validation(config, folder)
    materials = read_materials(config, folder, validation)
    model_tag, saved = save_model(config, validation)
    try:
        spec = service_spec(config, validation, materials, model_tag)
        built = build_service(config, spec, materials)
        vouch_packaged(
            config.root,
            built.bento_tag,
            model_tag=model_tag,
            model_sha256=spec.model_sha256,
            built=built.created,
            records=os.path.relpath(folder, config.root),
        )
    except BaseException:
        if saved:
            bentoml.models.delete(model_tag)
        raise
    result = package_result(config, spec, materials, built, folder=folder, started=started)
    write_record(folder, "package", result.to_json())
    return result


@dataclass(frozen=True)
class Materials:
    """What a Bento is made of besides its generated sources: the model (loaded once), the
    training rows, what serves it (and where that was decided), the test rows' predictions, the
    drift reference, and what the model's pickle needs (packages, project modules)."""

    needs: ModelNeeds
    model: Any
    train: pd.DataFrame
    compiled: CompiledModel
    compiled_at: str
    predictions: str
    drift_reference: str
    explanation: Chosen | None = None
    """How ``/explain`` explains (``service.explain: true``), chosen on these rows."""


def read_materials(config: Config, folder: Path, validation: ValidationResult) -> Materials:
    reference = drift_reference(folder, validation)
    needs = model_needs(config)  # read from the pickle without running it, before loading it
    model = load_model(config.model_path)
    train = load_frame(config.train_path, what="training data")
    X_test, _ = split_features(
        load_frame(config.test_path, what="test data"), config.data.target, what="test data"
    )
    compiled, compiled_at = served_graph(
        folder, validation, model, X_test, mode=config.service.runtime
    )
    predictions = prediction_reference(model, X_test, validation.task)
    explanation = None
    if config.service.explain:
        explanation = choose_explanation(
            model,
            train,
            X_test,
            validation.input_schema,
            classes=validation.classes,
            seed=config.validation.seed,
        )
    return Materials(
        needs, model, train, compiled, compiled_at, predictions, reference, explanation
    )


def service_spec(
    config: Config, validation: ValidationResult, materials: Materials, model_tag: str
) -> ServiceSpec:
    """The service's inputs: batching measured on what serves, the warm-up row checked."""
    schema, options = validation.input_schema, config.service
    model, train = materials.model, materials.train
    measured = options.max_batch_size is None or options.max_latency_ms is None
    served = materials.compiled.served(model)
    cost = measure_call_cost(served, train[schema.names]) if measured else None
    fallback = fallbacks(train, schema)
    check_warm_up(model, schema, example_row(schema, fallback))
    stored = Path(str(bentoml.models.get(model_tag).path))
    chosen = materials.explanation
    background = None
    if chosen is not None and chosen.background is not None:
        background = json.dumps(schema.to_records(chosen.background)) + "\n"
    return ServiceSpec(
        name=config.name,
        model_tag=model_tag,
        model_sha256=sha256_file(stored / MODEL_FILE),
        compiled=materials.compiled,
        probabilities=hasattr(model, "predict_proba"),
        validation=validation,
        policy=unseen_policy(model, train, schema),
        fallback=fallback,
        plan=plan_serving(model, schema, options, cost, runtime=materials.compiled.runtime),
        needs=materials.needs,
        explanation=None if chosen is None else chosen.spec,
        background=background,
    )


@dataclass(frozen=True)
class Built:
    """The Bento's sources folder, its tag, and whether this call built it (else the store had
    a Bento of the same content)."""

    service_dir: Path
    bento_tag: str
    created: bool


def build_service(config: Config, spec: ServiceSpec, materials: Materials) -> Built:
    """Write the Bento's sources under ``bentos/<name>/`` and build them into the store unless a
    Bento of the same content-derived version is there."""
    onnx = spec.compiled.runtime == "onnx"
    # An ONNX-served Bento that does not explain never unpickles the model: onnxruntime is all
    # it installs. One explaining a scikit-learn tree ensemble installs shap too.
    packages = pinned_packages(onnx=onnx) + (materials.needs.pins() if spec.loads_pickle else [])
    if spec.explanation is not None and spec.explanation.method == "tree_shap":
        base = [*RUNTIME_PACKAGES, *ONNX_PACKAGES, *(p.name for p in materials.needs.packages)]
        packages += library_pins(["shap"], base=base, why="/explain (TreeSHAP)")
    files = service_files(spec, config, packages)
    files[DRIFT_REFERENCE_FILE] = materials.drift_reference
    files[PREDICTION_REFERENCE_FILE] = materials.predictions
    version = sha256_text(*(f"{k}\n{v}" for k, v in sorted(files.items())))[:16]
    files[KUBERNETES_FILE] = render_kubernetes(config.name, version, config)
    service_dir = config.root / "bentos" / config.name
    # Only what is generated now may ship: a module the runtime no longer has must not linger.
    shutil.rmtree(service_dir / RUNTIME_PACKAGE, ignore_errors=True)
    for relative, text in files.items():
        (service_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (service_dir / relative).write_text(text)
    graph = service_dir / ONNX_FILE  # hashed into the model card, so into the version
    if spec.compiled.onnx_bytes is not None:
        graph.write_bytes(spec.compiled.onnx_bytes)
    else:
        graph.unlink(missing_ok=True)
    bento_tag = f"{config.name}:{version}"
    created = not _store_has("bento", bento_tag)
    if not created and not is_vouched(config.root, bento_tag):
        # Of unknown origin (no record of this project names it): built again, so the package
        # ledger vouches for what this call built, never for what it found.
        bentoml.bentos.delete(bento_tag)
        created = True
    if created:
        build_bento(service_dir, version)
    return Built(service_dir, bento_tag, created)


def package_result(
    config: Config,
    spec: ServiceSpec,
    materials: Materials,
    built: Built,
    *,
    folder: Path,
    started: float,
) -> PackageResult:
    """The record of what was saved and built (the Bento exported beside it)."""
    bento_path = Path(str(bentoml.bentos.get(built.bento_tag).path))
    size, contents = _describe_bento(bento_path)
    return PackageResult(
        name=config.name,
        model_tag=spec.model_tag,
        bento_tag=built.bento_tag,
        bento_path=str(bento_path),
        model_path=str(bentoml.models.get(spec.model_tag).path),
        service_dir=str(built.service_dir),
        archive=str(export_bento(built.bento_tag, folder)),
        size_bytes=size,
        contents=contents,
        unseen_categories=spec.policy,
        runtime=materials.compiled.runtime,
        runtime_reason=materials.compiled.reason,
        compiled_at=materials.compiled_at,
        created=built.created,
        bentoml_home=str(bentoml_home()),
        seconds=round(time.perf_counter() - started, 3),
        inputs=spec.validation.inputs,
        code={path: str(source) for path, source in sorted(materials.needs.code.items())},
        model_packages=materials.needs.pins(),
    )
