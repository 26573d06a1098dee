"""Batch scoring (`workbench score`) for real: the Bento's own row rules and model against a
running `bentoml serve`, refused rows, wrong files, atomic output under a killed process, memory
bounded by the chunk, and a real `dask scheduler` with two `dask worker` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import static_copy
from test_service import mixed_frame, mixed_project

from workbench import load_config, package, validate
from workbench.errors import DataError
from workbench.monitoring import drift_report
from workbench.runtime.columns import MAX_CATEGORY_CHARS, Number, number_bound
from workbench.runtime.sketch import ColumnWindow
from workbench.scoring import score
from workbench.scoring.model import load_count
from workbench.scoring.rows import check_rows
from workbench.scoring.sample import DriftSample
from workbench.serving import Server
from workbench.serving.checks import auth_headers
from workbench.serving.processes import terminate_tree

WORKBENCH = str(Path(sys.executable).with_name("workbench"))
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A packaged Bento over float (NaN), int, bool and category (None) columns, and a folder."""
    folder = mixed_project(
        tmp_path_factory.mktemp("scoring"), handle_unknown="ignore", name="scoring_mixed"
    )
    config = load_config(folder / "workbench.yaml")
    validate(config).raise_for_gates()
    return package(config).bento_tag, folder


def bad_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with rows the service refuses at positions 3 (text count), 7 (fraction count)
    and 11 (missing flag), as a CSV carries them."""
    bad = frame.astype({"count": object, "flag": object})
    bad.loc[3, "count"] = "two"
    bad.loc[7, "count"] = 2.5
    bad.loc[11, "flag"] = None
    return bad


def test_predictions_and_refusals_equal_the_running_services(mixed, tmp_path: Path):
    """The same rows scored from a CSV and sent to `bentoml serve` of the same Bento get the same
    labels and warnings, and probabilities within 1e-9 (the service's batches of rows are not
    the job's chunks, and a matrix product sums in an order that depends on the batch); rows
    the service answers 400 are refused with its messages."""
    tag, folder = mixed
    frame = mixed_frame(300, 7).drop(columns=["label"])
    frame.loc[5, "colour"] = "plaid"  # unseen: scored, with the service's warning
    bad_rows(frame).to_csv(tmp_path / "rows.csv", index=False)
    result = score(
        tag, tmp_path / "rows.csv", out=tmp_path / "out.parquet", on_error="skip", project=folder
    )
    assert (result.rows_read, result.rows_scored, result.rows_rejected) == (300, 297, 3)
    scored = pd.read_parquet(tmp_path / "out.parquet")
    errors = pd.read_csv(tmp_path / "out.parquet.errors.csv")
    assert sorted(set(errors["row"])) == [3, 7, 11]
    assert list(scored["row"]) == [i for i in range(300) if i not in (3, 7, 11)]

    rows = [{**r} for r in json.loads(frame.to_json(orient="records"))]
    with Server.start(tag) as server:
        key = auth_headers(server.api_key)
        good = [rows[i] for i in scored["row"]]
        answers = httpx.post(
            f"{server.url}/predict", json={"rows": good}, headers=key, timeout=60
        ).json()
        refusals = {}
        for i in (3, 7, 11):
            row = {**rows[i], "count": {3: "two", 7: 2.5}.get(i, rows[i]["count"])}
            if i == 11:
                row["flag"] = None
            answer = httpx.post(
                f"{server.url}/predict", json={"rows": [row]}, headers=key, timeout=60
            )
            assert answer.status_code == 400
            refusals[i] = [(d["loc"][2], d["msg"]) for d in answer.json()["detail"]]
    assert list(scored["prediction"]) == [a["prediction"] for a in answers]
    for label in ("no", "yes"):
        np.testing.assert_allclose(
            scored[f"probability_{label}"], [a["probabilities"][label] for a in answers], rtol=1e-9
        )
    assert list(scored["warnings"].map(list)) == [a["warnings"] for a in answers]
    assert "colour: unseen category 'plaid'" in scored.loc[scored["row"] == 5, "warnings"].iat[0]
    for i, expected in refusals.items():
        mine = errors[errors["row"] == i]
        assert list(zip(mine["field"], mine["message"], strict=True)) == expected


def test_on_error_fail_writes_nothing_but_the_error_file(mixed, tmp_path: Path):
    """Under --on-error fail (the default) a refused row fails the job with one message naming
    it; no output and no record exist, only the error file."""
    tag, folder = mixed
    bad_rows(mixed_frame(40, 3)).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"row 3, count: Input should be a valid integer"):
        score(tag, tmp_path / "rows.csv", out=out, project=folder)
    assert not out.exists() and not (tmp_path / "out.parquet.score.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet.errors.csv", "rows.csv"]


def test_a_wrong_input_is_one_message_before_any_work(mixed, tmp_path: Path):
    """Missing columns, a Parquet column of a type the service would refuse in every row, an
    unknown format, a broken Parquet file, a glob matching a CSV and a file output for a
    partitioned input are each refused up front, naming what to fix."""
    tag, folder = mixed
    frame = mixed_frame(20, 1)
    frame.drop(columns=["colour"]).to_parquet(tmp_path / "lacks.parquet")
    # Typed columns the service would refuse in every row: "3" for an integer, 1 for a
    # category, true for a number.
    frame.assign(count=frame["count"].astype(str)).to_parquet(tmp_path / "count_text.parquet")
    frame.assign(colour=1).to_parquet(tmp_path / "colour_number.parquet")
    frame.assign(**{"size cm": True}).to_parquet(tmp_path / "size_bool.parquet")
    (tmp_path / "rows.json").write_text("{}")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "parts").mkdir()
    frame.to_parquet(tmp_path / "parts" / "a.parquet")
    frame.to_csv(tmp_path / "parts" / "b.csv")
    out = tmp_path / "out.parquet"
    cases = {
        "lacks.parquet": r"lacks 1 of the model's 4 input columns: 'colour'",
        "count_text.parquet": r"column 'count' holds (large_)?string values, but Bento .* takes "
        r"integers for it .*convert the column",
        "colour_number.parquet": r"column 'colour' holds int64 values, .* takes text",
        "size_bool.parquet": r"column 'size cm' holds bool values, .* takes numbers",
        "rows.json": r"unsupported format '\.json'; give a \.csv or \.parquet file",
        "broken.parquet": r"is not a readable Parquet file",
        "parts/*": r"which is not a \.parquet file",
        "parts": r"is partitioned, so the output is a folder of parts",
        "nothing.csv": r"input '.*nothing.csv' not found",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message):
            score(tag, str(tmp_path / name), out=out, project=folder)
    assert not out.exists()
    answer = subprocess.run(
        [WORKBENCH, "score", tag, str(tmp_path / "lacks.parquet"), "--out", str(out)]
        + ["--config", str(folder / "workbench.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 2
    assert answer.stderr.startswith("error: ") and len(answer.stderr.strip().splitlines()) == 1


def test_parts_keep_their_names_ids_and_the_drift_equals_the_files(mixed, tmp_path: Path):
    """A folder of parts gives a folder of parts of the same names with the kept id column;
    the record holds the input hashes, and its drift report equals `workbench drift` of the same
    rows when the sample holds them all."""
    tag, folder = mixed
    (tmp_path / "in").mkdir()
    whole = mixed_frame(900, 5).drop(columns=["label"])
    whole.insert(0, "id", [f"id-{i}" for i in range(len(whole))])
    for i in range(3):
        whole.iloc[i * 300 : (i + 1) * 300].to_parquet(tmp_path / "in" / f"p{i}.parquet")
    whole.to_parquet(tmp_path / "whole.parquet")
    result = score(
        tag, tmp_path / "in", out=tmp_path / "out", keep="id", chunk_rows=128, project=folder
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "p0.parquet",
        "p1.parquet",
        "p2.parquet",
    ]
    scored = pd.read_parquet(tmp_path / "out")
    assert list(scored.columns[:2]) == ["row", "id"]
    assert list(scored.sort_values("row")["id"]) == list(whole["id"])
    record = json.loads((tmp_path / "out.score.json").read_text())
    assert [Path(f["path"]).name for f in record["inputs"]] == [
        "p0.parquet",
        "p1.parquet",
        "p2.parquet",
    ]
    assert record["rows_scored"] == 900 and record["bento_tag"] == tag
    assert all(len(f["sha256"]) == 64 for f in record["inputs"])
    direct = drift_report(tag, tmp_path / "whole.parquet")
    assert result.drift is not None
    for mine, theirs in zip(result.drift.columns, direct.columns, strict=True):
        assert (mine.column, mine.statistic, mine.p_value, mine.drifted) == (
            theirs.column,
            theirs.statistic,
            theirs.p_value,
            theirs.drifted,
        )


def test_kept_columns_of_a_csv_are_typed_as_the_model_read_them(mixed, tmp_path: Path):
    """From a CSV, a kept model input is written as the number, integer, boolean or category
    the model read (the same types as from the Parquet copy of the rows), in every chunk alike
    (one chunk's categories all empty included); a column that is not an input stays the
    file's text, leading zeros and all."""
    tag, folder = mixed
    frame = mixed_frame(300, 9).drop(columns=["label"])
    frame.loc[:99, "colour"] = None  # the whole first chunk
    frame.insert(0, "id", [f"{i:04d}" for i in range(len(frame))])
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet")
    score(
        tag,
        tmp_path / "in.csv",
        out=tmp_path / "csv.parquet",
        keep="all",
        chunk_rows=100,
        project=folder,
    )
    score(
        tag,
        tmp_path / "in.parquet",
        out=tmp_path / "pq.parquet",
        keep="all",
        chunk_rows=100,
        project=folder,
    )
    from_csv = pq.read_table(tmp_path / "csv.parquet")
    from_parquet = pq.read_table(tmp_path / "pq.parquet")

    def logical(table: pa.Table, name: str) -> pa.DataType:  # pandas 3 writes large_string
        kind = table.schema.field(name).type
        return pa.string() if kind == pa.large_string() else kind

    for name in ("size cm", "count", "flag", "colour"):
        assert logical(from_csv, name) == logical(from_parquet, name), name
        assert from_csv.column(name).to_pylist() == from_parquet.column(name).to_pylist(), name
    assert from_csv.schema.field("id").type == pa.string()
    assert from_csv.column("id").to_pylist()[:3] == ["0000", "0001", "0002"]


def test_a_category_value_over_the_cap_is_refused_as_the_service_refuses_it(mixed, tmp_path: Path):
    """A category value longer than the service takes (MAX_CATEGORY_CHARS) is not waved through by
    the column check: its row is refused with the row model's message, the others scored."""
    tag, folder = mixed
    frame = mixed_frame(20, 3).drop(columns=["label"])
    frame["colour"] = frame["colour"].astype(object)
    frame.loc[4, "colour"] = "x" * (MAX_CATEGORY_CHARS + 1)
    frame.to_parquet(tmp_path / "long.parquet")
    out = tmp_path / "out.parquet"
    score(tag, tmp_path / "long.parquet", out=out, on_error="skip", project=folder)
    errors = pd.read_csv(tmp_path / "out.parquet.errors.csv")
    assert errors["row"].tolist() == [4] and errors["field"].tolist() == ["colour"]
    assert f"at most {MAX_CATEGORY_CHARS} characters" in errors["message"][0]
    assert len(pd.read_parquet(out)) == 19


def test_score_is_a_stage_of_the_public_api_like_validate_and_package():
    """`workbench.score` (and its result type) sit beside validate, package and launch."""
    import workbench
    import workbench.scoring

    assert workbench.score is workbench.scoring.score
    assert {"score", "ScoreResult", "validate", "package", "launch"} <= set(workbench.__all__)


def test_the_drift_sample_is_bounded_and_merges_in_any_order():
    """Chunks merged in any order give the same bounded sample, with exact row and missing
    counts and exact category counts."""
    kinds = {"x": "number", "c": "category"}
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=10_000), "c": rng.choice(["a", "b"], 10_000)})
    frame.loc[::10, "x"] = np.nan
    chunks = [(frame.iloc[i : i + 1000], np.arange(i, i + 1000)) for i in range(0, 10_000, 1000)]
    samples = []
    for order in (chunks, chunks[::-1]):
        sample = DriftSample(kinds, size=500)
        for part, rows in order:
            sample.add(part.reset_index(drop=True), rows)
        samples.append(sample.windows())
    first, second = samples
    assert isinstance(first["x"], ColumnWindow)
    assert (first["x"].rows, first["x"].missing) == (10_000, 1000)
    assert len(first["x"].values) <= 500
    np.testing.assert_array_equal(first["x"].values, second["x"].values)
    assert dict(first["c"].counts) == frame["c"].value_counts().to_dict()


def _big_parquet(path: Path, rows: int) -> int:
    """The breast-cancer-like file of ``rows`` rows written in row groups; its decoded bytes."""
    from conftest import REPO

    base = pd.read_csv(REPO / "data" / "test.csv").drop(columns=["target"])
    writer = None
    for start in range(0, rows, 100_000):
        part = base.sample(min(100_000, rows - start), replace=True, random_state=start)
        table = __import__("pyarrow").Table.from_pandas(part, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return rows * base.shape[1] * 8


def _peak_rss_mb(command: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return usage.ru_maxrss / 1024


def test_memory_follows_the_chunk_not_the_file(packaged: Path, tmp_path: Path):
    """Scoring 1,000,000 rows (229 MiB of floats decoded) peaks within 120 MiB of scoring 20,000
    rows in a separate process: about half the file's size, so the file is never held whole
    (the 120 MiB allow for the drift sample, the Parquet writer's buffers and allocator
    slack)."""
    from workbench.monitoring import find_bento

    tag = find_bento(load_config(packaged / "workbench.yaml").name).tag
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    _big_parquet(small, 20_000)
    decoded = _big_parquet(large, 1_000_000)
    env = {**os.environ, "CI": "true"}
    command = [WORKBENCH, "score", tag, "--chunk-rows", "16384"]
    command += ["--config", str(packaged / "workbench.yaml"), "--out"]
    base = _peak_rss_mb([*command, str(tmp_path / "s.parquet"), str(small)], env)
    peak = _peak_rss_mb([*command, str(tmp_path / "l.parquet"), str(large)], env)
    print(f"peak RSS: {base:.0f} MiB for 20,000 rows, {peak:.0f} MiB for 1,000,000 rows")
    assert decoded / 2**20 > 1.8 * 120
    assert peak - base < 120, (base, peak)
    assert pq.ParquetFile(tmp_path / "l.parquet").metadata.num_rows == 1_000_000


def test_a_killed_job_leaves_nothing_under_the_final_name(packaged: Path, tmp_path: Path):
    """SIGKILL in the middle of a job leaves no output and no record under the final names
    (only a hidden temporary); Ctrl-C (SIGINT) removes the temporary too and exits 130."""
    from workbench.monitoring import find_bento

    tag = find_bento(load_config(packaged / "workbench.yaml").name).tag
    _big_parquet(tmp_path / "in.parquet", 300_000)
    for sig in (signal.SIGKILL, signal.SIGINT):
        out = tmp_path / f"out-{sig.name}.parquet"
        proc = subprocess.Popen(
            [
                WORKBENCH,
                "score",
                tag,
                str(tmp_path / "in.parquet"),
                "--out",
                str(out),
                "--chunk-rows",
                "4096",
                "--config",
                str(packaged / "workbench.yaml"),
            ],
            env={**os.environ, "CI": "true"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first chunk is scored: the part is half-written
        assert first.startswith("scored "), first
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert not out.exists() and not out.with_name(out.name + ".score.json").exists()
        left = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.tmp-")]
        if sig == signal.SIGKILL:
            assert len(left) == 1
        else:
            assert proc.returncode == 130 and left == []


def _dask(command: str, *args: str) -> subprocess.Popen[bytes]:
    """``dask scheduler`` or ``dask worker`` on 127.0.0.1, in its own session (stopped by tree)."""
    return subprocess.Popen(
        [DASK, command, *args, "--host", "127.0.0.1"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _scheduler_address(file: Path, scheduler: subprocess.Popen[bytes]) -> str:
    """The address the scheduler wrote to its file (waits up to 60 s for a complete file)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and scheduler.poll() is None:
        try:
            return str(json.loads(file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    raise AssertionError(f"dask scheduler wrote no address to {file} (exit {scheduler.poll()})")


def test_a_real_scheduler_and_two_workers_score_and_load_the_model_once_each(mixed, tmp_path: Path):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1: eight parts are scored by
    both workers, each loading the model once; the output equals the in-process one."""
    tag, folder = mixed
    (tmp_path / "in").mkdir()
    for i in range(8):
        mixed_frame(200, 20 + i).drop(columns=["label"]).to_parquet(
            tmp_path / "in" / f"part-{i}.parquet"
        )
    score(tag, tmp_path / "in", out=tmp_path / "local", project=folder)
    # Port 0 and a scheduler file: the scheduler binds its own port (no race for a free one).
    file = tmp_path / "scheduler.json"
    procs = [_dask("scheduler", "--port", "0", "--dashboard-address", ":0", "--no-show",
                   "--scheduler-file", str(file))]  # fmt: skip
    try:
        address = _scheduler_address(file, procs[0])
        procs += [_dask("worker", address, "--nthreads", "1", "--no-dashboard") for _ in range(2)]
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        result = score(
            tag, tmp_path / "in", out=tmp_path / "dask", scheduler=address, project=folder
        )
        with Client(address, timeout=30) as client:
            loads = client.run(load_count)
    finally:
        for proc in procs:
            terminate_tree(proc.pid, grace=10)
    assert result.engine == f"dask scheduler {address}" and result.tasks == 8
    assert result.worker_processes == 2
    assert sorted(loads.values()) == [1, 1]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "dask").sort_values("row", ignore_index=True),
        pd.read_parquet(tmp_path / "local").sort_values("row", ignore_index=True),
    )
    assert not any(
        psutil.pid_exists(p.pid) and psutil.Process(p.pid).status() != "zombie" for p in procs
    )


def test_score_uses_row_numbers_of_the_whole_input(mixed, tmp_path: Path):
    """Row numbers in the output and the error file count from 0 across chunks."""
    tag, folder = mixed
    frame = bad_rows(mixed_frame(50, 2))
    frame.to_csv(tmp_path / "rows.csv", index=False)
    score(
        tag,
        tmp_path / "rows.csv",
        out=tmp_path / "o.parquet",
        on_error="skip",
        chunk_rows=4,
        project=folder,
    )
    errors = pd.read_csv(tmp_path / "o.parquet.errors.csv")
    assert list(errors["row"]) == [3, 7, 11]


def test_the_score_notebook_runs_headless_on_the_bundled_example(packaged: Path, tmp_path: Path):
    """06_score.ipynb under papermill (interactive=False) scores the example's test file with
    its packaged Bento and shows the summary and the drift table in the executed notebook."""
    import papermill

    from workbench.pipeline.run import own_kernel

    out = tmp_path / "test.parquet"
    with own_kernel() as kernel:
        papermill.execute_notebook(
            str(packaged / "notebooks" / "06_score.ipynb"),
            str(tmp_path / "06_score.ipynb"),
            parameters={"interactive": False, "out": str(out)},
            cwd=str(packaged / "notebooks"),
            kernel_name=kernel,
            progress_bar=False,
        )
    assert pq.ParquetFile(out).metadata.num_rows == len(pd.read_csv(packaged / "data" / "test.csv"))
    shown = static_copy(tmp_path / "06_score.ipynb")  # in any viewer, not only the widget's
    assert "rows scored" in shown and "drift" in shown


def test_a_number_beyond_the_columns_bound_is_refused_in_a_file_as_in_a_request():
    """A number column takes a million times its training values' order of magnitude
    (``number_bound``: trained on 20-200, ±1e9; the generated ``Row`` states it as ``ge``/``le``
    and the OpenAPI as minimum/maximum). A file's value beyond it is in doubt, so its row goes
    through the row model and is refused with the service's message, as a request row is."""
    from pydantic import BaseModel, ConfigDict, Field, create_model

    assert number_bound(20.0, 200.0) == 1e9
    assert number_bound(-0.5, 0.3) == 1e6  # at least 1: values under 1 take ±1e6
    assert number_bound(None, 1.0) is None
    assert number_bound(0.0, 1e299) is None  # past 1e300 a bound means nothing
    bound = number_bound(20.0, 200.0)
    row: type[BaseModel] = create_model(
        "Row",
        __config__=ConfigDict(extra="forbid"),
        area=(Number, Field(alias="area", ge=-bound, le=bound)),
    )
    frame = pd.DataFrame({"area": [50.0, 2e9, -1.7976931348623157e308, 1e9]})
    column = {"name": "area", "kind": "number", "nullable": False, "min": 20.0, "max": 200.0}
    checked = check_rows(frame, [column], row)
    assert checked.accepted.tolist() == [True, False, False, True]
    assert [(r, f) for r, f, _ in checked.refusals] == [(1, "area"), (2, "area")]
    assert "less than or equal to 1000000000" in checked.refusals[0][2]


def test_one_large_row_group_is_split_across_tasks_that_read_every_row_once(tmp_path: Path):
    """A Parquet file written as one row group of 10,000 rows, planned for tasks of 2,500 rows
    (a cluster's workers): four tasks, each a slice of the group numbered from its own first
    row, and read back in task order they give every row once, in order (before, the whole
    group was one task, so one worker scored it all)."""
    from workbench.scoring.inputs import plan_tasks, read_chunks, resolve_input

    frame = pd.DataFrame({"a": np.arange(10_000, dtype=np.float64), "b": np.arange(10_000) % 7})
    path = tmp_path / "one_group.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=10_000)
    source = resolve_input(path, ["a", "b"], bento="test:1")
    assert [p.row_groups for p in source.parts] == [(10_000,)]
    tasks = plan_tasks(source, task_rows=2_500)
    assert [(t.first_row, t.row_groups, t.skip, t.rows) for t in tasks] == [
        (0, (0,), 0, 2_500),
        (2_500, (0,), 2_500, 2_500),
        (5_000, (0,), 5_000, 2_500),
        (7_500, (0,), 7_500, 2_500),
    ]
    read = [
        batch.column("a").to_numpy()
        for task in tasks
        for batch in read_chunks(task, chunk_rows=1_000, columns=["a"])
    ]
    assert np.array_equal(np.concatenate(read), frame["a"].to_numpy())
    # groups under twice the task size stay whole, as before
    assert len(plan_tasks(source, task_rows=6_000)) == 1


def test_a_file_small_for_a_local_cluster_is_cut_so_every_worker_scores_and_rows_come_early(
    tmp_path: Path,
):
    """300,000 rows in one row group on two local workers: five tasks of at most 65,536 rows
    (about four a worker, never below a chunk), so both workers score and the first rows are
    done after 65,536 of them; before, the file was one task, all of it on one worker. In
    process it stays one task, and a remote scheduler (workers unknown) keeps ``task_rows``."""
    from workbench.scoring.engine import DEFAULT_TASK_ROWS, Engine
    from workbench.scoring.inputs import resolve_input

    frame = pd.DataFrame({"a": np.arange(300_000, dtype=np.float64)})
    path = tmp_path / "one_group.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=300_000)
    source = resolve_input(path, ["a"], bento="test:1")
    tasks = Engine(workers=2).plan(source)
    assert [t.rows for t in tasks] == [65_536] * 4 + [300_000 - 4 * 65_536]
    assert len(Engine().plan(source)) == 1
    assert Engine(scheduler="tcp://127.0.0.1:8786").task_rows_for(300_000) == DEFAULT_TASK_ROWS
    assert Engine(workers=2).task_rows_for(50_000_000) == DEFAULT_TASK_ROWS  # large: as before
    assert Engine(workers=2, chunk_rows=1_000).task_rows_for(80_000) == 10_000
