"""What a model needs, found from the model itself: its pickle read without running it, the
project's modules followed through their imports, distributions pinned, refusals by name; the
project importable where it loads; LightGBM and XGBoost compiled through their converters."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import joblib
import pytest
import yaml
from model_projects import boosted_pipeline, frame, write_config, write_data

from workbench import ConfigError, ModelError, PackagingError, load_config
from workbench.artifacts import load_model
from workbench.compilation import compile_model
from workbench.packaging.code import ProjectModules, ship_code
from workbench.packaging.requirements import find_needs, pickle_globals
from workbench.packaging.stage import RUNTIME_PACKAGES


@pytest.fixture(scope="module")
def lightgbm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = frame()
    model = boosted_pipeline("lightgbm").fit(data.drop(columns="label"), data["label"])
    path = tmp_path_factory.mktemp("lgb") / "model.joblib"
    joblib.dump(model, path)
    return path


def needs_of(path: Path, root: Path, *entries: Path):  # noqa: ANN201 - a ModelNeeds
    return find_needs(path, ProjectModules(root.resolve(), entries), base=RUNTIME_PACKAGES)


STEP = """
from sklearn.base import BaseEstimator, TransformerMixin


class Same(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X
"""


def fitted_with_step(module: str, folder: Path, model_file: Path) -> None:
    """A Pipeline whose first step is ``<module>.Same``, the module written into ``folder``
    (which goes on sys.path for as long as the test runs)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import make_pipeline

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(STEP)
    sys.path.insert(0, str(folder))
    step = __import__(module).Same
    model_file.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(make_pipeline(step(), DummyClassifier()).fit([[0], [1]], [0, 1]), model_file)


def test_the_scan_lists_a_joblib_files_modules_without_importing_them(
    lightgbm_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Plain, compressed and pickle.dump files give the same names; a module that no longer
    exists anywhere is still listed (the scan never imports what the pickle names)."""
    model = joblib.load(lightgbm_file)
    joblib.dump(model, tmp_path / "model.joblib.xz", compress=("xz", 3))
    with open(tmp_path / "model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    for path in (lightgbm_file, tmp_path / "model.joblib.xz", tmp_path / "model.pkl"):
        names = {m for m, _ in pickle_globals(path)}
        assert {"lightgbm.sklearn", "lightgbm.basic", "sklearn.pipeline"} <= names, path
    monkeypatch.setattr(sys, "path", list(sys.path))
    fitted_with_step("vanishing_steps", tmp_path / "steps", tmp_path / "vanishing.joblib")
    (tmp_path / "steps" / "vanishing_steps.py").unlink()
    monkeypatch.delitem(sys.modules, "vanishing_steps")
    assert ("vanishing_steps", "Same") in pickle_globals(tmp_path / "vanishing.joblib")


def test_a_lightgbm_pipeline_needs_lightgbm_pinned_and_nothing_it_only_tries(lightgbm_file: Path):
    """lightgbm at the installed version, from the names in the pickle; not numpy/scipy (the base
    brings them), not dask (LightGBM only tries to import it)."""
    needs = needs_of(lightgbm_file, lightgbm_file.parent)
    from importlib.metadata import version

    assert needs.pins() == [f"lightgbm=={version('lightgbm')}"]
    assert needs.packages[0].why == (
        "lightgbm.basic.Booster in the model",
        "lightgbm.sklearn.LGBMClassifier in the model",
    )
    assert needs.code == {}


def test_an_xgboost_model_pins_the_distribution_that_installs_the_module(tmp_path: Path):
    """The `xgboost` module comes from the xgboost-cpu distribution here: that is what the Bento
    must install."""
    data = frame()
    data["label"] = (data["label"] == "yes").astype(int)
    model = boosted_pipeline("xgboost").fit(data.drop(columns="label"), data["label"])
    joblib.dump(model, tmp_path / "model.joblib")
    from importlib.metadata import version

    needs = needs_of(tmp_path / "model.joblib", tmp_path)
    assert needs.pins() == [f"xgboost-cpu=={version('xgboost-cpu')}"]


def test_a_scikit_learn_model_needs_nothing_more(example_files: Path):
    """The bundled example's model adds no package and no code: its Bento's list stays as is."""
    needs = needs_of(example_files / "models" / "model.joblib", example_files)
    assert needs.pins() == [] and needs.code == {}


def test_project_modules_ship_with_what_they_import_and_nothing_else(tmp_path: Path):
    """A module beside the config, a package named by `code:` (its __init__, the module the
    model uses, the sibling it imports relatively), never an unimported sibling; third-party
    imports are reported by top-level name."""
    (tmp_path / "features.py").write_text("import numpy as np\nfrom helpers import twice\n")
    (tmp_path / "helpers.py").write_text("def twice(x):\n    return 2 * x\n")
    (tmp_path / "notes.py").write_text("import nothing_at_all\n")
    package = tmp_path / "src" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "transformers.py").write_text("from .scaling import clip\nimport pandas\n")
    (package / "scaling.py").write_text("from sklearn.base import BaseEstimator\n")
    (package / "unused.py").write_text("")
    project = ProjectModules(tmp_path.resolve(), (package.resolve(),))
    shipped = ship_code(["features", "shop.transformers"], project)
    assert sorted(shipped.files) == [
        "features.py",
        "helpers.py",
        "shop/__init__.py",
        "shop/scaling.py",
        "shop/transformers.py",
    ]
    assert set(shipped.imports) == {"numpy", "pandas", "sklearn"}


def test_a_project_module_named_like_the_bentos_own_files_is_refused(tmp_path: Path):
    (tmp_path / "service.py").write_text("")
    with pytest.raises(PackagingError, match="'service'.*rename it"):
        ship_code(["service"], ProjectModules(tmp_path.resolve()))


def test_a_module_importable_only_from_outside_the_project_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A transformer imported through a hand-set PYTHONPATH loads here, but the Bento would not
    have it: one message naming the module, where it imports from and the fix."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    outside = tmp_path / "elsewhere"
    fitted_with_step("far_away_steps", outside, tmp_path / "project" / "model.joblib")
    with pytest.raises(PackagingError) as caught:
        needs_of(tmp_path / "project" / "model.joblib", tmp_path / "project")
    message = str(caught.value)
    assert "the model needs the module 'far_away_steps'" in message
    assert "far_away_steps.Same in the model" in message
    assert str(outside) in message and "`code:`" in message


def test_a_model_whose_module_is_missing_names_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The load error names the missing module and says how to make it importable."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    fitted_with_step("gone_steps", tmp_path / "steps", tmp_path / "model.joblib")
    (tmp_path / "steps" / "gone_steps.py").unlink()
    monkeypatch.delitem(sys.modules, "gone_steps")
    with pytest.raises(ModelError) as caught:
        load_model(tmp_path / "model.joblib")
    message = str(caught.value)
    assert "it needs the module 'gone_steps'" in message
    assert "put gone_steps.py" in message and "`code:`" in message


def test_a_class_pickled_from_main_gets_its_own_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A class defined in the notebook that saved the model (``__main__``) exists nowhere else."""
    from sklearn.dummy import DummyClassifier

    class Local(DummyClassifier):
        pass

    Local.__module__, Local.__qualname__ = "__main__", "Local"
    with monkeypatch.context() as patch:
        patch.setattr(sys.modules["__main__"], "Local", Local, raising=False)
        joblib.dump(Local().fit([[0], [1]], [0, 1]), tmp_path / "model.joblib")
    with pytest.raises(ModelError, match="defined in the notebook or script"):
        load_model(tmp_path / "model.joblib")
    with pytest.raises(PackagingError, match=r"__main__\.Local.*move it into a module"):
        needs_of(tmp_path / "model.joblib", tmp_path)


def test_loading_a_project_makes_its_code_importable(tmp_path: Path):
    """load_config puts the project folder and the folder of each `code:` entry first on
    sys.path (once each)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers_for_path.py").write_text("")
    path = write_config(tmp_path, "paths", code=["lib/helpers_for_path.py"])
    before = list(sys.path)
    try:
        config = load_config(path)
        load_config(path)
        assert sys.path[:2] == [str(tmp_path.resolve()), str((tmp_path / "lib").resolve())]
        assert sys.path.count(str(tmp_path.resolve())) == 1
        assert config.import_roots == [tmp_path.resolve(), (tmp_path / "lib").resolve()]
    finally:
        sys.path[:] = before


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (["missing.py"], "`code` entry 'missing.py': .* does not exist"),
        (["data/train.csv"], "is not a Python module"),
        (["a/dup.py", "b/dup.py"], "imports as 'dup', as 'a/dup.py' does"),
    ],
)
def test_a_bad_code_entry_is_one_message_naming_it(tmp_path: Path, code, message):
    write_data(tmp_path)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dup.py").write_text("")
    path = write_config(tmp_path, "bad")
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "code": code}))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_lightgbm_and_xgboost_pipelines_compile_to_onnx_under_the_parity_rules(kind: str):
    """Through onnxmltools' converters registered with skl2onnx: every test row's label equal,
    probabilities within 1e-6."""
    data = frame(seed=1)
    if kind == "xgboost":
        data["label"] = (data["label"] == "yes").astype(int)
    X, y = data.drop(columns="label"), data["label"]
    model = boosted_pipeline(kind).fit(X.iloc[:600], y.iloc[:600])
    compiled = compile_model(model, X.iloc[600:], task="classification", mode="auto")
    assert compiled.runtime == "onnx", compiled.reason
    assert compiled.label_mismatches == 0 and compiled.rows_checked == 200
    assert compiled.max_difference is not None and compiled.max_difference <= 1e-6
