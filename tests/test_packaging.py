"""The package stage against a real BentoML store: generated service, content tags, refusals."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import bentoml
import pytest
import yaml
from conftest import edit_config

import workbench.packaging.stage as packaging
import workbench.runtime
from workbench.config import load_config
from workbench.errors import GateFailure, PackagingError, StageOrderError
from workbench.packaging import package
from workbench.validation import validate

THIRD_PARTY_ALLOWED = {
    "bentoml",
    "numpy",
    "pandas",
    "pydantic",
    "pydantic_core",
    "scipy",
    "onnxruntime",
    # what bentoml installs and runs the Bento with: its metrics client, its HTTP server (the
    # guarded protocol, runtime/http/connections.py) and its tracing (runtime/http/edge.py)
    "prometheus_client",
    "uvicorn",
    "opentelemetry",
    # PyYAML, bentoml's own: it writes the Bento's apis/openapi.yaml with the representer of the
    # runtime's OpenAPI document (runtime/http/edge.py)
    "yaml",
    # the live metrics of GET /monitor (runtime/live_metrics.py): the validate stage's definitions;
    # every Bento pins scikit-learn (its model is stored as a BentoML scikit-learn model)
    "sklearn",
    # POST /explain of a scikit-learn tree ensemble (runtime/explainer.py, TreeSHAP): imported
    # only there, and only such a Bento pins shap
    "shap",
}


def models_named(name: str) -> list[str]:
    return [str(m.tag) for m in bentoml.models.list() if m.tag.name == name]


def bentos_named(name: str) -> list[str]:
    return [str(b.tag) for b in bentoml.bentos.list() if b.tag.name == name]


@pytest.fixture
def validated(project: Path):
    config = load_config(project / "workbench.yaml")
    validate(config)
    return config


def imports_of(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source`` (relative imports stay inside)."""
    return {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Import) or (isinstance(n, ast.ImportFrom) and not n.level)
        for a in n.names
    }


def test_package_builds_a_bento_with_a_typed_self_contained_service(validated):
    """The Bento's Python (service.py and the runtime copied beside it) imports only the standard
    library, bentoml, numpy, pandas, pydantic and the runtime itself: never workbench."""
    result = package(validated)
    assert result.created
    assert bentos_named(validated.name) == [result.bento_tag]
    assert models_named(validated.name) == [result.model_tag]
    source = (Path(result.service_dir) / "service.py").read_text()
    bento_dir = Path(result.bento_path)
    assert (bento_dir / "src" / "service.py").read_text() == source
    shipped = sorted((bento_dir / "src").rglob("*.py"))
    assert {p.relative_to(bento_dir / "src").as_posix() for p in shipped} >= {
        "service.py",
        "workbench_runtime/__init__.py",
        "workbench_runtime/batching.py",
    }
    for path in shipped:
        third_party = imports_of(path.read_text()) - set(sys.stdlib_module_names)
        allowed = THIRD_PARTY_ALLOWED | {"workbench_runtime"}
        assert third_party <= allowed, (path.name, third_party - allowed)
    runtime = Path(workbench.runtime.__file__).parent
    for module in runtime.rglob("*.py"):
        copied = bento_dir / "src" / "workbench_runtime" / module.relative_to(runtime)
        assert copied.read_text() == module.read_text(), module.name
    # the training values reach 28.1: the next power of ten, 1e2, times a million (number_bound)
    assert "mean_radius: Number = Field(alias='mean radius', ge=-1e+08, le=1e+08)" in source
    columns = len(
        json.loads((bento_dir / "src" / "model_card.json").read_text())["input_schema"]["columns"]
    )
    assert len(source.splitlines()) - columns < 100, "beyond a line per column, one screen"
    drift_reference = (bento_dir / "src" / "drift_reference.json").read_text()
    assert drift_reference == (validated.root / ".workbench" / "drift_reference.json").read_text()
    assert list(json.loads(drift_reference)["columns"])[:1] == ["mean radius"]
    profile = json.loads((bento_dir / "src" / "reference_profile.json").read_text())
    assert [c["name"] for c in profile["columns"]][:1] == ["mean radius"]
    dockerfile = (bento_dir / "env" / "docker" / "Dockerfile").read_text()
    assert dockerfile
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    assert packaging.pinned_packages()[0] in requirements  # scikit-learn==<validated version>


def test_packaging_twice_gives_the_same_tags_and_adds_nothing(validated):
    first = package(validated)
    second = package(validated)
    assert (second.model_tag, second.bento_tag) == (first.model_tag, first.bento_tag)
    assert not second.created
    assert len(bentos_named(validated.name)) == 1 and len(models_named(validated.name)) == 1


def test_a_changed_gate_gives_a_new_bento_version(project: Path, validated):
    first = package(validated)
    edit_config(project, gates={"roc_auc": {"min": 0.96}})
    config = load_config(project / "workbench.yaml")
    validate(config)
    second = package(config)
    assert second.bento_tag != first.bento_tag
    assert second.bento_tag.split(":")[0] == first.bento_tag.split(":")[0]


def test_packaging_refuses_when_a_gate_failed_and_the_store_is_unchanged(project: Path):
    edit_config(project, gates={"roc_auc": {"min": 0.9999}})
    config = load_config(project / "workbench.yaml")
    validate(config)
    with pytest.raises(GateFailure, match=r"roc_auc .*nothing was packaged"):
        package(config)
    assert models_named(config.name) == [] and bentos_named(config.name) == []


def test_packaging_before_validation_says_to_validate_first(project: Path):
    with pytest.raises(StageOrderError, match="run the validation stage first|run the validate"):
        package(load_config(project / "workbench.yaml"))


def test_a_model_changed_after_validation_is_not_packaged(project: Path, validated):
    (project / "models" / "model.joblib").write_bytes(
        (project / "models" / "model.joblib").read_bytes() + b"\0"
    )
    with pytest.raises(StageOrderError, match="model file .* changed since the last validation"):
        package(validated)


def test_a_failed_build_leaves_no_model_behind(validated, monkeypatch):
    def broken_build(service_dir: Path, version: str) -> None:
        raise PackagingError("bentoml build failed: injected")

    monkeypatch.setattr(packaging, "build_bento", broken_build)
    with pytest.raises(PackagingError, match="injected"):
        package(validated)
    assert models_named(validated.name) == [] and bentos_named(validated.name) == []


def test_bentofile_pins_the_validated_environment_without_locking(validated):
    result = package(validated)
    bentofile = yaml.safe_load((Path(result.service_dir) / "bentofile.yaml").read_text())
    assert bentofile["python"]["lock_packages"] is False
    assert bentofile["python"]["packages"] == packaging.pinned_packages(
        onnx=result.runtime == "onnx"
    )


def test_packaging_ships_the_graph_validation_kept_and_compiles_nothing_again(
    validated, monkeypatch
):
    """Validation keeps the ONNX graph it checked beside its record (sha256 in validation.json);
    packaging ships those very bytes, with the validation's parity evidence, and never calls the
    compiler (a compile at packaging fails this test)."""
    import hashlib

    import workbench.packaging.validated as reuse

    graph = (validated.root / ".workbench" / "model.onnx").read_bytes()
    record = json.loads((validated.root / ".workbench" / "validation.json").read_text())
    assert record["compiled"]["onnx_sha256"] == hashlib.sha256(graph).hexdigest()
    assert record["compiled"]["mode"] == "auto" and record["compiled"]["runtime"] == "onnx"

    def no_compile(*args: object, **kwargs: object) -> None:
        raise AssertionError("packaging compiled the model again")

    monkeypatch.setattr(reuse, "compile_model", no_compile)
    result = package(validated)
    assert result.runtime == "onnx" and result.runtime_reason == record["compiled"]["reason"]
    assert result.compiled_at.startswith("validation: its graph (sha256 ")
    assert (Path(result.bento_path) / "src" / "model.onnx").read_bytes() == graph


def test_a_graph_changed_after_validation_is_refused_and_the_store_is_unchanged(validated):
    """A model.onnx beside the record that is not the graph validation kept (edited, or another
    run's) stops packaging with one message naming the file and the next step."""
    path = validated.root / ".workbench" / "model.onnx"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(StageOrderError, match=r"model\.onnx is missing or is not the graph the "
                       r"last validation kept .*run the validate stage again"):  # fmt: skip
        package(validated)
    path.unlink()
    with pytest.raises(StageOrderError, match=r"model\.onnx is missing"):
        package(validated)
    assert models_named(validated.name) == [] and bentos_named(validated.name) == []


def test_a_validation_that_converted_nothing_is_compiled_at_packaging_to_the_same_bento(
    project: Path,
):
    """Validated under `service.runtime: sklearn` (nothing converted, no graph kept), then
    packaged under `auto`: packaging compiles and says why; the Bento is the one a validation
    under `auto` gives (the graph and its evidence are the same wherever they were made)."""
    edit_config(project, service={"workers": 1, "runtime": "sklearn"})
    validate(load_config(project / "workbench.yaml"))
    assert not (project / ".workbench" / "model.onnx").exists()
    edit_config(project, service={"workers": 1, "runtime": "auto"})
    config = load_config(project / "workbench.yaml")
    compiled_here = package(config)
    assert compiled_here.runtime == "onnx"
    assert compiled_here.compiled_at == (
        "packaging: the last validation ran under service.runtime: sklearn and converted nothing"
    )
    validate(config)
    reused = package(config)
    assert reused.compiled_at.startswith("validation: ")
    assert reused.bento_tag == compiled_here.bento_tag and not reused.created
