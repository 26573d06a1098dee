"""Model bytes verified before every unpickle (issue 29, item 7), against records outside the store.

A stored model's pickle replaced by one that writes a marker file when it is unpickled: no command
that loads a stored model (compare, promote, shadow, score, serve and launch, validate's champion)
writes the marker; each refuses with one message, exit 2 at the CLI. A version no record of the
project vouches for is refused with how to vouch for it, and packaging it again does.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import bentoml
import joblib
import pandas as pd
import pytest
from conftest import copy_project, edit_config
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workbench import load_config, package, validate
from workbench.cli import main
from workbench.errors import IntegrityError
from workbench.integrity import ledger_path, load_stored_model, verify_bento
from workbench.promotions import read_history
from workbench.runtime import MODEL_FILE
from workbench.serving import serve
from workbench.versions import promote

FAST = {"cv_folds": 0, "importance_top": 0}


class WritesMarker:
    """Unpickling this creates the file ``path`` (what an attacker's code would do)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory, example_files: Path) -> dict[str, str]:
    """A project of its own with two packaged versions, v1 promoted (this module alters the
    store, so it shares no version with other tests): its folder and the tags."""
    folder = copy_project(example_files, tmp_path_factory.mktemp("integrity"))
    edit_config(folder, validation=FAST)
    config = load_config(folder / "workbench.yaml")
    validate(config)
    first = package(config)
    shutil.copy(folder / "models" / "model.joblib", folder / "models" / "v1.joblib")
    train = pd.read_csv(folder / "data" / "train.csv")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
    model.fit(train.drop(columns="target"), train["target"])
    joblib.dump(model, folder / "models" / "model.joblib")
    validate(config)
    second = package(config)
    promote(config, first.bento_tag, reason="first release")
    return {
        "folder": str(folder),
        "v1": first.bento_tag,
        "v2": second.bento_tag,
        "model1": first.model_tag,
    }


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_the_stored_model_is_the_model_file_byte_for_byte(versions):
    """The store's pickle is the validated model file itself, not the model pickled again (a
    fresh pickle's bytes depend on the process: the same model packaged in another kernel would
    look altered and get another version)."""
    folder = Path(versions["folder"])
    stored = bentoml.models.get(versions["model1"]).path_of(MODEL_FILE)
    original = (folder / "models" / "v1.joblib").read_bytes()
    assert Path(stored).read_bytes() == original


def test_the_promotion_records_the_hashes_a_fresh_clone_vouches_with(versions, tmp_path: Path):
    """The history entry of a promotion names the model and the sha256 of its pickle and of the
    Bento's files; a clone of the project with only that file (no ledger, no runs) vouches for
    the promoted version and for nothing else."""
    folder = Path(versions["folder"])
    name = versions["v1"].split(":")[0]
    entry = read_history(folder, name).history[-1]
    stored = Path(str(bentoml.models.get(versions["model1"]).path)) / MODEL_FILE
    assert entry.model_tag == versions["model1"]
    assert entry.model_sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    clone = tmp_path / "clone"
    shutil.copytree(folder / "bentos" / name / "release", clone / "bentos" / name / "release")
    assert verify_bento(clone, versions["v1"]).model_tag == versions["model1"]
    with pytest.raises(IntegrityError, match="no record of the project .* vouches"):
        verify_bento(clone, versions["v2"])


def test_an_unvouched_version_is_refused_until_packaged_again(versions, tmp_path: Path, capsys):
    """A project with the same model and data but none of the records (another folder sharing
    the store) is refused at once, with the way to vouch for it; packaging it there again
    records its hashes and the same command then works."""
    folder = Path(versions["folder"])
    other = tmp_path / "other"
    for sub in ("models", "data"):
        shutil.copytree(folder / sub, other / sub)
    shutil.copy(folder / "workbench.yaml", other / "workbench.yaml")
    config_path = str(other / "workbench.yaml")
    code, err = _cli(capsys, "serve", versions["v2"], "--config", config_path)
    assert code == 2 and err.count("\n") == 1
    assert f"Bento {versions['v2']}: no record of the project {other}" in err
    assert "Package it again from this project" in err
    config = load_config(other / "workbench.yaml")
    validate(config)
    assert package(config).bento_tag == versions["v2"]  # same content, same tag
    assert ledger_path(other).is_file()
    assert verify_bento(other, versions["v2"]).tag == versions["v2"]


def test_no_command_unpickles_an_altered_model(versions, tmp_path: Path, capsys):
    """v1's pickle in the store replaced by one that writes a marker when unpickled: compare,
    promote (v1 is the champion), shadow, score and serve refuse at the CLI with exit 2 and one
    message naming the model; launch (serve) and validate's champion refuse in the core;
    packaging the same model again refuses to vouch for the altered copy. The marker is never
    written."""
    folder = Path(versions["folder"])
    config_path = str(folder / "workbench.yaml")
    v1, v2, model1 = versions["v1"], versions["v2"], versions["model1"]
    marker = tmp_path / "marker"
    stored = Path(str(bentoml.models.get(model1).path)) / MODEL_FILE
    original = stored.read_bytes()
    stored.write_bytes(pickle.dumps(WritesMarker(marker)))
    try:
        pickle.loads(stored.read_bytes())  # the fake is real: unpickling it writes the marker
        assert marker.exists()
        marker.unlink()
        test_csv = str(folder / "data" / "test.csv")
        commands = {
            "compare": ["compare", v1, v2, "--out", str(tmp_path / "c")],
            "promote": ["promote", v2, "--reason", "x"],  # v1, promoted, is the champion
            "shadow": ["shadow", v1, v2, "--replay", test_csv, "--out", str(tmp_path / "s")],
            "score": ["score", v1, test_csv, "--out", str(tmp_path / "o.parquet")],
            "serve": ["serve", v1.split(":")[0]],  # the promoted version
        }
        for what, args in commands.items():
            code, err = _cli(capsys, *args, "--config", config_path)
            assert code == 2, (what, err)
            assert err.startswith("error: ") and err.count("\n") == 1, (what, err)
            assert f"model {model1}" in err and "altered in the BentoML store" in err, (what, err)
            assert not marker.exists(), what
        config = load_config(config_path)
        with pytest.raises(IntegrityError, match="altered"):
            serve(config, bento_tag=v1)
        with pytest.raises(IntegrityError, match="altered"):
            load_stored_model(folder, model1)
        candidate = tmp_path / "candidate"  # a new model of the project: v1 is its champion
        shutil.copytree(folder, candidate)
        train = pd.read_csv(candidate / "data" / "train.csv")
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
        model.fit(train.drop(columns="target"), train["target"])
        joblib.dump(model, candidate / "models" / "model.joblib")
        edit_config(candidate, gates={"champion": {"min": -1.0}})
        with pytest.raises(IntegrityError, match=f"model {model1}: .* altered"):
            validate(load_config(candidate / "workbench.yaml"))
        again = tmp_path / "again"  # v1's model file packaged again: the store copy is refused
        shutil.copytree(folder, again)
        shutil.copy(again / "models" / "v1.joblib", again / "models" / "model.joblib")
        edit_config(again, validation={**FAST, "champion": False})
        config = load_config(again / "workbench.yaml")
        validate(config)
        with pytest.raises(IntegrityError, match=f"model {model1}: .* the stored copy was altered"):
            package(config)
        assert not marker.exists()
    finally:
        stored.write_bytes(original)
    assert not marker.exists()
