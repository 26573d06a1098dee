"""The package stage: save the validated model to the BentoML store and build its Bento.

Versions are derived from content, not time: the model version hashes the model bytes and the
metadata stored with it, the Bento version hashes the generated service, bentofile, model card and
pinned packages. Packaging the same inputs twice yields the same tags and adds nothing to the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import bentoml
import yaml

from workbench.artifacts import (
    load_model,
    read_record,
    records_dir,
    sha256_file,
    sha256_text,
    write_record,
)
from workbench.config import Config
from workbench.errors import PackagingError, StageOrderError
from workbench.reports import PackageResult, ValidationResult
from workbench.schema import Column, InputSchema

#: What the Bento installs, pinned to the versions the model was validated with.
RUNTIME_PACKAGES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "threadpoolctl",
    "pydantic",
)
BUILD_TIMEOUT_S = 600
_PY_TYPES = {"number": "float", "integer": "int", "boolean": "bool", "category": "str"}


def bentoml_home() -> Path:
    """The BentoML store in use (``$BENTOML_HOME``, else ``~/bentoml``)."""
    return Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")).expanduser()


def pinned_packages() -> list[str]:
    """``name==version`` for each runtime package, read from this environment."""
    return [f"{name}=={importlib_metadata.version(name)}" for name in RUNTIME_PACKAGES]


def class_name(name: str) -> str:
    """``breast_cancer`` -> ``BreastCancer`` (the service class)."""
    parts = [p for p in name.replace("-", "_").replace(".", "_").split("_") if p]
    ident = "".join(p[:1].upper() + p[1:] for p in parts) or "Service"
    return ident if ident[0].isalpha() else f"Service{ident}"


def _field_line(column: Column, ident: str) -> str:
    py = _PY_TYPES[column.kind]
    annotation = f"Optional[{py}]" if column.nullable else py
    default = "None, " if column.nullable else ""
    return f"    {ident}: {annotation} = Field({default}alias={column.name!r})"


def _dtypes(schema: InputSchema) -> dict[str, str]:
    """Training dtypes to restore on the request frame (only where a null cannot occur)."""
    out = {}
    for col in schema.columns:
        if col.kind == "category":
            out[col.name] = "object"
        elif not col.nullable:
            out[col.name] = col.dtype
        else:
            out[col.name] = "float64" if col.kind != "boolean" else "object"
    return out


def render_service(
    validation: ValidationResult, *, model_tag: str, workers: int, timeout: int
) -> str:
    """The generated ``service.py`` source for a validated model."""
    schema = validation.input_schema
    fields = schema.fields()
    template = Template(
        resources.files("workbench").joinpath("templates/service.py.tmpl").read_text()
    )
    return template.substitute(
        name=validation.name,
        class_name=class_name(validation.name),
        model_tag=model_tag,
        task=validation.task,
        columns=repr(schema.names),
        dtypes=repr(_dtypes(schema)),
        fields="\n".join(_field_line(c, fields[c.name]) for c in schema.columns),
        workers=workers,
        timeout=timeout,
    )


def render_bentofile(name: str, packages: list[str]) -> str:
    """The ``bentofile.yaml`` of the Bento: pinned packages, no lock against the live index."""
    return yaml.safe_dump(
        {
            "service": f"service:{class_name(name)}",
            "name": name,
            "include": ["service.py", "model_card.json"],
            "labels": {"generated-by": "workbench"},
            "python": {"packages": packages, "lock_packages": False},
            "docker": {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}"},
        },
        sort_keys=False,
    )


def model_card(validation: ValidationResult, model_tag: str, packages: list[str]) -> dict[str, Any]:
    """What the Bento says about itself (served at ``/metadata``); deterministic for its inputs."""
    return {
        "name": validation.name,
        "model_tag": model_tag,
        "task": validation.task,
        "target": validation.target,
        "classes": validation.classes,
        "input_schema": validation.input_schema.model_dump(mode="json"),
        "metrics": validation.metrics,
        "gates": [g.model_dump(mode="json") for g in validation.gates],
        "passed": validation.passed,
        "inputs_sha256": validation.inputs,
        "packages": packages,
    }


def _store_has(kind: str, tag: str) -> bool:
    getter = bentoml.models.get if kind == "model" else bentoml.bentos.get
    try:
        getter(tag)
    except bentoml.exceptions.NotFound:
        return False
    return True


def _load_passed_validation(config: Config, folder: Path) -> ValidationResult:
    validation = ValidationResult.model_validate(
        read_record(folder, "validation", needed_by="package")
    )
    validation.raise_for_gates()
    current = {
        "model": sha256_file(config.model_path),
        "train": sha256_file(config.train_path),
        "test": sha256_file(config.test_path),
    }
    changed = [k for k, v in current.items() if validation.inputs.get(k) != v]
    if changed or validation.name != config.name:
        raise StageOrderError(
            f"the {', '.join(changed) or 'name'} changed since the last validation; "
            "run the validate stage again before packaging"
        )
    return validation


def save_model(config: Config, validation: ValidationResult) -> tuple[str, bool]:
    """Save the model under a content-derived version; returns (tag, newly saved)."""
    model = load_model(config.model_path)
    # BentoML metadata takes only basic, non-null values: nested documents go in as JSON text.
    meta = {
        "task": validation.task,
        "metrics": {k: v for k, v in validation.metrics.items() if v is not None},
        "input_schema": validation.input_schema.model_dump_json(),
        "classes": json.dumps(validation.classes),
        "inputs_sha256": validation.inputs,
    }
    version = sha256_text(validation.inputs["model"], json.dumps(meta, sort_keys=True))[:16]
    tag = f"{config.name}:{version}"
    if _store_has("model", tag):
        return tag, False
    try:
        bentoml.sklearn.save_model(
            tag,
            model,
            labels={"generated-by": "workbench", "task": validation.task},
            metadata=meta,
        )
    except Exception as exc:
        raise PackagingError(
            f"saving model {tag} to the BentoML store failed ({type(exc).__name__}: {exc})"
        ) from exc
    return tag, True


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


def package(config: Config, *, run_dir: str | Path | None = None) -> PackageResult:
    """Save the validated model and build its Bento; writes ``package.json``.

    Refuses (:class:`~workbench.errors.GateFailure`) when validation did not pass. On any failure
    the model saved by this call is removed again, so nothing half-made stays in the store.
    """
    started = time.perf_counter()
    folder = records_dir(config.root, run_dir)
    validation = _load_passed_validation(config, folder)
    model_tag, saved = save_model(config, validation)
    try:
        packages = pinned_packages()
        service_dir = config.root / "bentos" / config.name
        service_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "service.py": render_service(
                validation,
                model_tag=model_tag,
                workers=config.service.workers,
                timeout=config.service.timeout,
            ),
            "bentofile.yaml": render_bentofile(config.name, packages),
            "model_card.json": json.dumps(model_card(validation, model_tag, packages), indent=2)
            + "\n",
        }
        for filename, text in files.items():
            (service_dir / filename).write_text(text)
        version = sha256_text(*(f"{k}\n{v}" for k, v in sorted(files.items())))[:16]
        bento_tag = f"{config.name}:{version}"
        created = not _store_has("bento", bento_tag)
        if created:
            build_bento(service_dir, version)
    except BaseException:
        if saved:
            bentoml.models.delete(model_tag)
        raise
    result = PackageResult(
        name=config.name,
        model_tag=model_tag,
        bento_tag=bento_tag,
        bento_path=str(bentoml.bentos.get(bento_tag).path),
        model_path=str(bentoml.models.get(model_tag).path),
        service_dir=str(service_dir),
        created=created,
        bentoml_home=str(bentoml_home()),
        seconds=round(time.perf_counter() - started, 3),
    )
    write_record(folder, "package", result.to_json())
    return result
