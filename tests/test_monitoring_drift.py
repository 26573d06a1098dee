"""Offline drift: `workbench drift <bento> <file>` and `workbench.monitoring.drift_report`.

Real files (CSV and Parquet), the real statistics of :mod:`workbench.runtime.drift`, and Bento
folders laid out as the package stage lays them out (``bento.yaml``, ``src/model_card.json``,
``src/drift_reference.json`` built by :func:`workbench.validation.reference.build_reference`);
the last tests use the example project really validated and packaged into the test store, whose
Bento ships the reference.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from workbench.artifacts import sha256_file
from workbench.cli import main
from workbench.errors import ConfigError, DataError
from workbench.monitoring import drift_report
from workbench.reports import to_html
from workbench.results import DriftResult
from workbench.runtime.drift import DriftOptions
from workbench.schema import infer_schema
from workbench.validation.reference import build_reference

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

COLUMNS = ["amount", "age", "colour", "member"]
LARGE, SMALL = 4000, 800
"""Training rows: above 1,000 the tests are distances (Wasserstein, Jensen-Shannon), at most
1,000 they are p-value tests (KS, chi-square, Z)."""


def inputs(
    rows: int, seed: int, *, shift_sd: float = 0.0, colours: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    """Four input columns, one of each kind; ``amount`` ~ N(100 + 15 * shift_sd, 15)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(100.0 + 15.0 * shift_sd, 15.0, rows),
            "age": rng.integers(18, 90, rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=list(colours)),
            "member": rng.random(rows) < 0.3,
        }
    )


def live_file(path: Path, frame: pd.DataFrame) -> Path:
    """``frame`` plus an id and a target column (not model inputs), as CSV or Parquet."""
    frame = frame.assign(id=np.arange(len(frame)), target=np.arange(len(frame)) % 2)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def make_bento(root: Path, train: pd.DataFrame, *, reference: bool = True) -> Path:
    """A Bento folder as packaging writes it: bento.yaml and src/ with the card and reference."""
    schema = infer_schema(train)
    src = root / "src"
    src.mkdir(parents=True)
    (root / "bento.yaml").write_text("name: shop\nversion: v1abc\n")
    (src / "service.py").write_text("# the generated service\n")
    card = {
        "name": "shop",
        "model_tag": "shop:m1abc",
        "input_schema": schema.model_dump(mode="json"),
    }
    (src / "model_card.json").write_text(json.dumps(card))
    if reference:
        kinds = {c.name: c.kind for c in schema.columns}
        (src / "drift_reference.json").write_text(json.dumps(build_reference(train, kinds)))
    return root


@pytest.fixture(scope="module", params=[LARGE, SMALL], ids=["distances", "p-values"])
def bento(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows: int = request.param
    return make_bento(tmp_path_factory.mktemp(f"bento{rows}"), inputs(rows, seed=1))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["drift", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_result(out: Path) -> DriftResult:
    return DriftResult.model_validate_json((out / "drift.json").read_text())


def by_column(result: DriftResult) -> dict[str, bool | None]:
    return {c.column: c.drifted for c in result.columns}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


# --- verdicts and exit codes -----------------------------------------------------------------


def test_a_same_distribution_file_has_no_drift_exits_0_and_writes_json_and_html(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """Fresh rows from the training distribution: no column drifts, exit 0, both files written;
    the id and target columns are ignored and said so."""
    file = live_file(tmp_path / "live.csv", inputs(2000, seed=2))
    code, out, err = run(capsys, str(bento), str(file), "--out", str(tmp_path / "report"))
    assert code == 0, out + err
    result = read_result(tmp_path / "report")
    assert result.verdict == "no drift" and result.drifted is False
    assert by_column(result) == dict.fromkeys(COLUMNS, False)
    assert result.ignored_columns == ["id", "target"]
    assert result.rows == 2000 and result.bento_tag == "shop:v1abc"
    assert result.model_tag == "shop:m1abc"
    assert result.file_sha256 == sha256_file(file)
    assert (tmp_path / "report" / "drift.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["drift.html", "drift.json"]
    assert "no drift: 0 of 4 tested columns drifted" in out
    assert "ignored (not model inputs): id, target" in out
    assert err == ""


def test_the_bento_may_be_given_as_its_src_folder_and_the_report_goes_to_a_dated_folder(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
):
    """``<bento>/src`` works as well as the Bento folder; without --out the report is written to
    ``./drift-<UTC time>/``."""
    file = live_file(tmp_path / "live.csv", inputs(1000, seed=3))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, str(bento / "src"), str(file))
    assert code == 0, out + err
    [folder] = tmp_path.glob("drift-*")
    assert re.fullmatch(r"drift-\d{8}T\d{6}Z", folder.name)
    assert read_result(folder).bento_tag == "shop:v1abc"


def test_a_shifted_column_and_a_changed_category_mix_drift_and_half_drifted_exits_1(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """``amount`` moved by 2 sd and ``colour``'s mix reversed: exactly those two drift; 2 of 4
    is the default share of 0.5, so the dataset drifts and the exit status is 1 (Parquet)."""
    shifted = inputs(2000, seed=4, shift_sd=2.0, colours=(0.2, 0.3, 0.5))
    file = live_file(tmp_path / "live.parquet", shifted)
    code, out, err = run(capsys, str(bento), str(file), "--out", str(tmp_path / "report"))
    assert code == 1, out + err
    result = read_result(tmp_path / "report")
    assert result.verdict == "drift" and result.drifted_share == 0.5
    assert by_column(result) == {"amount": True, "age": False, "colour": True, "member": False}
    assert result.drifted_column_names == ["amount", "colour"]
    assert "drifted columns: amount, colour" in out
    assert re.search(r"^amount .* DRIFT", out, re.MULTILINE), out
    page = (tmp_path / "report" / "drift.html").read_text()
    assert page.count("class='wb-row-drift'") == 2 and page.count("class='wb-row-ok'") == 2


def test_below_the_threshold_share_the_columns_still_drift_but_the_dataset_does_not(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """With --threshold-share 0.75, two drifted columns of four are not enough: the two columns
    are still reported as drifted and the threshold is recorded. ``amount`` moved by 2 sd puts
    values beyond training's maximum, so the range check fails the file (exit 1) unless
    --no-fail-on-quality (exit 0, the failure kept as a note)."""
    shifted = inputs(2000, seed=4, shift_sd=2.0, colours=(0.2, 0.3, 0.5))
    file = live_file(tmp_path / "live.csv", shifted)
    out_dir = tmp_path / "report"
    share = ["--threshold-share", "0.75"]
    code, out, err = run(capsys, str(bento), str(file), "--out", str(out_dir), *share)
    assert code == 1, out + err
    result = read_result(out_dir)
    assert result.verdict == "no drift" and result.threshold == 0.75
    assert result.options["drift_share"] == 0.75
    assert result.drifted_column_names == ["amount", "colour"]
    assert result.status == "FAIL" and result.quality is not None
    failed = [(c.check, c.column) for c in result.quality.checks if c.status == "FAIL"]
    assert failed == [("range", "amount")]
    assert "FAIL: data quality, +-inf or beyond training's minimum/maximum: amount" in out
    code, out, err = run(
        capsys, str(bento), str(file), "--out", str(out_dir), *share, "--no-fail-on-quality"
    )
    assert code == 0, out + err
    assert read_result(out_dir).status == "PASS" and "fail_on_quality is off" in out


def test_too_few_rows_is_inconclusive_exit_3_never_a_pass(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """100 rows is under min_window_rows (500): no column is tested, and the report says
    INCONCLUSIVE with the values still needed; the exit status is 3 (not a pass, not a retraining
    trigger), 0 with --no-fail-on-inconclusive; --min-rows 50 tests them."""
    file = live_file(tmp_path / "small.csv", inputs(100, seed=5))
    code, out, err = run(capsys, str(bento), str(file), "--out", str(tmp_path / "a"))
    assert code == 3, out + err
    assert "INCONCLUSIVE: drift: not enough data (no column could be tested" in out
    assert "400 more non-missing values needed" in out
    result = read_result(tmp_path / "a")
    assert result.verdict == "not enough data" and result.status == "INCONCLUSIVE"
    assert result.values_needed == 400 and not result.failures
    assert {c.status for c in result.columns} == {"INCONCLUSIVE"}
    code, out, err = run(
        capsys, str(bento), str(file), "--out", str(tmp_path / "a"), "--no-fail-on-inconclusive"
    )
    assert code == 0 and read_result(tmp_path / "a").status == "INCONCLUSIVE"
    code, out, err = run(
        capsys, str(bento), str(file), "--out", str(tmp_path / "b"), "--min-rows", "50"
    )
    assert code in (0, 1), out + err
    assert read_result(tmp_path / "b").tested_columns == 4


# --- bad input: exit 2, one line, nothing written --------------------------------------------


def test_input_columns_missing_from_the_file_fail_the_absent_check_and_exit_1(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A file without two input columns is judged on the others; those two fail the ``absent``
    check (exit 1, named); a file with none of the inputs is refused (exit 2, nothing written)."""
    file = live_file(tmp_path / "live.csv", inputs(1000, seed=6).drop(columns=["age", "colour"]))
    code, out, err = run(capsys, str(bento), str(file), "--out", str(tmp_path / "report"))
    assert code == 1, out + err
    said = "FAIL: data quality, column missing from the file: age not in the file, colour not in"
    assert said in out
    result = read_result(tmp_path / "report")
    assert result.quality is not None
    absent = [c.column for c in result.quality.checks if c.check == "absent"]
    assert absent == ["age", "colour"] and result.status == "FAIL"
    assert {c.column: c.reason for c in result.columns}["age"] == "the column is not in the window"
    other = tmp_path / "other.csv"
    pd.DataFrame({"x": [1, 2]}).to_csv(other, index=False)
    code, out, err = run(capsys, str(bento), str(other), "--out", str(tmp_path / "none"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "has none of the model's 4 input columns" in err
    assert not (tmp_path / "none").exists()


def test_an_unknown_bento_tag_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    file = live_file(tmp_path / "live.csv", inputs(600, seed=7))
    code, out, err = run(capsys, "nosuchbento:0123abcd", str(file), "--out", str(tmp_path / "r"))
    assert code == 2 and out == ""
    assert err.startswith("error: Bento 'nosuchbento:0123abcd' is not in the BentoML store")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_a_bento_without_a_reference_exits_2_and_says_to_package_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    old = make_bento(tmp_path / "old", inputs(600, seed=1), reference=False)
    file = live_file(tmp_path / "live.csv", inputs(600, seed=8))
    code, out, err = run(capsys, str(old), str(file), "--out", str(tmp_path / "r"))
    assert code == 2 and out == ""
    assert "packaged before drift references existed" in err and "package the model again" in err
    assert err.count("\n") == 1


def test_an_absent_or_unreadable_file_exits_2(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    garbage = tmp_path / "live.parquet"
    garbage.write_text("this is not parquet\n")
    for file, says in ((tmp_path / "nope.csv", "not found"), (garbage, "could not be read")):
        code, out, err = run(capsys, str(bento), str(file), "--out", str(tmp_path / "r"))
        assert code == 2 and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_a_path_that_is_no_bento_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    file = live_file(tmp_path / "live.csv", inputs(600, seed=9))
    code, _, err = run(capsys, str(tmp_path), str(file))
    assert code == 2 and "is not a workbench Bento folder" in err


def test_a_threshold_share_outside_0_1_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as exit_:
        main(["drift", str(tmp_path), str(tmp_path / "x.csv"), "--threshold-share", "1.5"])
    assert exit_.value.code == 2
    assert "give a share in (0, 1]" in capsys.readouterr().err


# --- the report -------------------------------------------------------------------------------


def test_the_html_report_is_self_contained_and_names_no_cdn(
    bento: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """No script, stylesheet, image or frame comes from the network (nor from anywhere: all is
    inline); every column is a row coloured by its verdict."""
    file = live_file(tmp_path / "live.csv", inputs(2000, seed=4, shift_sd=2.0))
    run(capsys, str(bento), str(file), "--out", str(tmp_path / "report"))
    page = (tmp_path / "report" / "drift.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    links = [
        (tag, attrs.get("src") or attrs.get("href") or "")
        for tag, attrs in parser.tags
        if "src" in attrs or "href" in attrs
    ]
    assert not [link for link in links if re.match(r"(https?:)?//", link[1])], links
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)
    assert not [tag for tag, _ in parser.tags if tag in ("script", "link", "iframe")]
    assert "<meta charset='utf-8'>" in page and "<title>drift: shop:v1abc: FAIL" in page
    assert "wb-quality" in page  # the data-quality table (amount's values beyond training's)
    assert page.count("class='wb-row-drift'") == 1  # amount; 1 of 4 is under the share of 0.5
    for column in COLUMNS:
        assert f"<td>{column}</td>" in page


def test_the_result_round_trips_through_json_and_renders_as_a_notebook_fragment(
    bento: Path, tmp_path: Path
):
    """The API returns the typed result; options are keyword-only; to_html knows DriftResult."""
    file = live_file(tmp_path / "live.csv", inputs(700, seed=10))
    result = drift_report(bento, file, options=DriftOptions(min_window_rows=600))
    assert DriftResult.model_validate_json(result.to_json()) == result
    assert result.options["min_window_rows"] == 600 and result.seconds > 0
    html = to_html(result)
    assert "wb-drift" in html and "<html" not in html
    with pytest.raises(TypeError):
        drift_report(bento, file, DriftOptions())  # type: ignore[misc]


def test_the_api_raises_the_workbench_errors_the_cli_prints(bento: Path, tmp_path: Path):
    file = live_file(tmp_path / "live.csv", inputs(600, seed=11)[[]])
    with pytest.raises(DataError, match="none of the model's 4 input columns"):
        drift_report(bento, file)
    with pytest.raises(ConfigError, match="not in the BentoML store"):
        drift_report("nosuchbento", file)


# --- a Bento really packaged by the package stage --------------------------------------------


def _packaged_bento(packaged: Path) -> tuple[str, Path]:
    record: dict[str, Any] = json.loads((packaged / ".workbench" / "package.json").read_text())
    return record["bento_tag"], Path(record["bento_path"]) / "src"


def _bootstrap(packaged: Path, rows: int) -> pd.DataFrame:
    train = pd.read_csv(packaged / "data" / "train.csv")
    return train.sample(rows, replace=True, random_state=0)


def test_a_packaged_bento_found_by_tag_reports_no_drift_on_its_own_training_rows(
    packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """The example's Bento, by its tag in the store, ships its reference: 600 rows resampled
    from its training set do not drift on any of the 30 inputs (the target is ignored)."""
    tag, src = _packaged_bento(packaged)
    assert (src / "drift_reference.json").is_file()
    file = tmp_path / "live.csv"
    _bootstrap(packaged, 600).to_csv(file, index=False)
    code, out, err = run(capsys, tag, str(file), "--out", str(tmp_path / "report"))
    assert code == 0, out + err
    result = read_result(tmp_path / "report")
    assert result.bento_tag == tag and result.ignored_columns == ["target"]
    assert result.tested_columns == 30 and result.drifted_columns == 0


def test_a_real_bento_folder_from_before_drift_references_exits_2_saying_package_again(
    packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A copy of the packaged Bento without src/drift_reference.json (as every Bento built
    before references shipped) is refused by its tag from bento.yaml, with what to do."""
    tag, src = _packaged_bento(packaged)
    old = tmp_path / "old-bento"
    shutil.copytree(src.parent, old)
    (old / "src" / "drift_reference.json").unlink()
    file = tmp_path / "live.csv"
    _bootstrap(packaged, 600).to_csv(file, index=False)
    code, out, err = run(capsys, str(old), str(file), "--out", str(tmp_path / "report"))
    assert code == 2 and out == ""
    assert err == (
        f"error: Bento {tag} has no drift_reference.json: it was packaged before drift "
        "references existed; package the model again (`workbench run --stages "
        "validate,package`) and check the new Bento\n"
    )
