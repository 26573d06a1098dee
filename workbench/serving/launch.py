"""The launch stage: serve the packaged Bento, check it against the in-memory model, stop it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from workbench.artifacts import load_model, read_record, records_dir, write_record
from workbench.config import Config
from workbench.data import load_frame, split_features
from workbench.results import CheckResult, LaunchResult, PackageResult, ValidationResult
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


def serve(config: Config, *, run_dir: str | Path | None = None, port: int | None = None) -> Server:
    """Start the Bento recorded by the package stage; the caller stops it (or uses ``with``)."""
    folder = records_dir(config.root, run_dir)
    packaged = PackageResult.model_validate(read_record(folder, "package", needed_by="launch"))
    return Server.start(
        packaged.bento_tag, port=port, timeout=config.launch.ready_timeout, log_dir=folder
    )


def check(server: Server, config: Config, *, run_dir: str | Path | None = None) -> LaunchResult:
    """Smoke and parity checks against a running server; writes ``launch.json``."""
    started = time.perf_counter()
    folder = records_dir(config.root, run_dir)
    packaged = PackageResult.model_validate(read_record(folder, "package", needed_by="launch"))
    validation = ValidationResult.model_validate(
        read_record(folder, "validation", needed_by="launch")
    )
    model = load_model(config.model_path)
    X, y = split_features(
        load_frame(config.test_path, what="test data"), config.data.target, what="test data"
    )
    schema = validation.input_schema
    X = X[schema.names]
    sample = schema.to_records(representative_rows(X, y, validation.task))
    key = server.api_key
    checks = smoke_test(server.url, sample, model_tag=packaged.model_tag, key=key)
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
        bento_tag=packaged.bento_tag,
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
