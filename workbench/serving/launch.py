"""The launch stage: serve the packaged Bento, check it against the in-memory model, stop it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import bentoml

from workbench.artifacts import load_model, read_record, records_dir, write_record
from workbench.config import Config
from workbench.data import load_frame, split_features
from workbench.errors import ServingError, StageOrderError
from workbench.integrity import load_stored_model, verify_bento
from workbench.promotions import history_path, promoted_tag
from workbench.results import CheckResult, LaunchResult, PackageResult, ValidationResult
from workbench.schema import InputSchema
from workbench.serving.checks import (
    auth_headers,
    bad_requests,
    check_parity,
    representative_rows,
    run_check,
    smoke_test,
    snippets,
)
from workbench.serving.probe import probe
from workbench.serving.server import Server


def launch_records(
    config: Config, *, run_dir: str | Path | None = None
) -> tuple[PackageResult, ValidationResult]:
    """The package and validation records launch acts on, refused as packaging refuses its own:
    a model, training or test file changed since validation (named, with both sha256), or a
    package made from another validation than the last one."""
    folder = records_dir(config.root, run_dir)
    packaged = PackageResult.model_validate(read_record(folder, "package", needed_by="launch"))
    validation = ValidationResult.model_validate(
        read_record(folder, "validation", needed_by="launch")
    )
    validation.raise_for_inputs(
        config, needed_by="launch", redo="run the validate and package stages again, then launch"
    )
    other = packaged.inputs and packaged.inputs != validation.inputs
    if packaged.name != validation.name or other:
        changed = sorted(k for k, v in validation.inputs.items() if packaged.inputs.get(k) != v)
        raise StageOrderError(
            f"launch refused: the Bento {packaged.bento_tag} in package.json was built from "
            f"another validation than the last one ({', '.join(changed) or 'name'} differ); "
            "run the package stage again, then launch"
        )
    return packaged, validation


def served_tag(config: Config, *, run_dir: str | Path | None = None) -> str:
    """The Bento the launch stage serves: the one packaged last, or the promoted version
    (``launch.version: promoted``)."""
    if config.launch.version == "promoted":
        tag = promoted_tag(config.root, config.name)
        if tag is None:
            raise ServingError(
                f"launch.version is `promoted`, but {history_path(config.root, config.name)} "
                f"promotes no version of {config.name!r} yet; run `workbench promote "
                f"{config.name}:VERSION --reason ...` or set launch.version to `packaged`"
            )
        return tag
    packaged, _ = launch_records(config, run_dir=run_dir)
    return packaged.bento_tag


def serve(
    config: Config,
    *,
    run_dir: str | Path | None = None,
    port: int | None = None,
    bento_tag: str | None = None,
) -> Server:
    """Start the Bento the launch stage serves (:func:`served_tag`) or ``bento_tag``, once its
    files and model are the ones the project recorded (:func:`~workbench.integrity.verify_bento`);
    the caller stops it (or uses ``with``)."""
    folder = records_dir(config.root, run_dir)
    tag = bento_tag or served_tag(config, run_dir=run_dir)
    verify_bento(config.root, tag)
    return Server.start(tag, port=port, timeout=config.launch.ready_timeout, log_dir=folder)


def _stored_bento(root: Path, tag: str) -> tuple[Any, InputSchema, str, str]:
    """(model, input schema, model tag, task) of a Bento in the store, from its model card; the
    Bento and its model as the project at ``root`` recorded them."""
    verify_bento(root, tag)
    card = json.loads((Path(str(bentoml.bentos.get(tag).path)) / "src/model_card.json").read_text())
    model = load_stored_model(root, card["model_tag"])
    return model, InputSchema.model_validate(card["input_schema"]), card["model_tag"], card["task"]


def check(server: Server, config: Config, *, run_dir: str | Path | None = None) -> LaunchResult:
    """Smoke and parity checks against a running server; writes ``launch.json``."""
    started = time.perf_counter()
    folder = records_dir(config.root, run_dir)
    record = folder / "package.json"
    packaged = PackageResult.model_validate_json(record.read_text()) if record.is_file() else None
    if packaged is None and config.launch.version == "packaged":
        read_record(folder, "package", needed_by="launch")  # says which stage to run first
    if packaged is not None and server.bento_tag == packaged.bento_tag:
        packaged, validation = launch_records(config, run_dir=run_dir)
        model, schema = load_model(config.model_path), validation.input_schema
        model_tag, task = packaged.model_tag, validation.task
    else:  # another version (the promoted one): checked against its own stored model
        model, schema, model_tag, task = _stored_bento(config.root, server.bento_tag)
    X, y = split_features(
        load_frame(config.test_path, what="test data"), config.data.target, what="test data"
    )
    X = X[schema.names]
    sample = schema.to_records(representative_rows(X, y, task))
    key = server.api_key
    checks = smoke_test(server.url, sample, model_tag=model_tag, key=key)
    checks.append(
        run_check("bad requests", lambda: bad_requests(server.url, sample[0], schema, key))
    )
    mismatches: list[dict[str, Any]] = []
    parity = run_check(
        "parity", lambda: mismatches.extend(check_parity(server.url, model, X, schema, key))
    )
    if parity.passed:
        parity = CheckResult(
            name="parity",
            passed=not mismatches,
            detail=f"{len(X)} rows, {len(mismatches)} mismatches"
            + (f": {mismatches[:5]}" if mismatches else ""),
        )
    checks.append(parity)
    load = None
    if config.launch.probe_requests and parity.passed:
        load = probe(
            server.url,
            sample,
            requests=config.launch.probe_requests,
            concurrency=config.launch.probe_concurrency,
            time_limit=config.launch.probe_seconds,
            headers=auth_headers(key),
        )
        checks.append(
            CheckResult(
                name="load probe",
                passed=load.errors == 0,
                detail=f"{load.requests} requests, {load.requests_per_s:.0f} req/s, "
                f"p99 {load.p99_ms:.1f} ms, {load.errors} errors",
            )
        )
    result = LaunchResult(
        bento_tag=server.bento_tag,
        url=server.url,
        checks=checks,
        parity_rows=len(X),
        mismatches=mismatches[:100],
        probe=load,
        snippets=snippets(server.url, sample[0], auth=config.service.auth == "api_key"),
        passed=all(c.passed for c in checks),
        seconds=round(time.perf_counter() - started, 3),
    )
    write_record(folder, "launch", result.to_json())
    return result


def launch(
    config: Config, *, run_dir: str | Path | None = None, port: int | None = None
) -> LaunchResult:
    """Headless launch: start the packaged Bento, smoke-test it, check parity, stop it."""
    with serve(config, run_dir=run_dir, port=port) as server:
        return check(server, config, run_dir=run_dir)
