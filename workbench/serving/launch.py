"""The launch stage: serve the packaged Bento, check it against the in-memory model, stop it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import bentoml
import pandas as pd

from workbench.artifacts import load_model, read_record, records_dir, write_record
from workbench.config import Config
from workbench.data import load_frame, split_features
from workbench.errors import ServingError, StageOrderError
from workbench.integrity import load_stored_model, verify_bento
from workbench.promotions import history_path, promoted_tag
from workbench.results import (
    CheckResult,
    LaunchResult,
    PackageResult,
    ProbeResult,
    ValidationResult,
)
from workbench.runtime.card import ModelCard
from workbench.runtime.settings import CARD_FILE
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
from workbench.serving.portable import CleanEnvironment, prepare_environment
from workbench.serving.probe import probe
from workbench.serving.server import Server, state_dir


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


def clean_environment(bento_tag: str) -> CleanEnvironment:
    """The clean environment holding only the Bento's requirements (built once per set of
    requirements, under the state folder's ``envs/``)."""
    bento = Path(str(bentoml.bentos.get(bento_tag).path))
    return prepare_environment(bento, folder=state_dir().parent / "envs")


def serve(
    config: Config,
    *,
    run_dir: str | Path | None = None,
    port: int | None = None,
    bento_tag: str | None = None,
    portable: bool | None = None,
    api_key: str | None = None,
) -> Server:
    """Start the Bento the launch stage serves (:func:`served_tag`) or ``bento_tag``, once its
    files and model are the ones the project recorded (:func:`~workbench.integrity.verify_bento`,
    before its requirements are read); the caller stops it (or uses ``with``). ``portable``
    (default ``launch.portable``): serve it from a clean environment built from its own
    requirements, the proof that they suffice. ``api_key``: the key it requires (default
    ``$WORKBENCH_API_KEY``, else one made for it)."""
    folder = records_dir(config.root, run_dir)
    tag = bento_tag or served_tag(config, run_dir=run_dir)
    verify_bento(config.root, tag)
    clean = config.launch.portable if portable is None else portable
    environment = clean_environment(tag) if clean else None
    try:
        return Server.start(
            tag,
            port=port,
            timeout=config.launch.ready_timeout,
            log_dir=folder,
            environment=environment,
            api_key=api_key,
        )
    except ServingError as exc:
        if environment is None:
            raise
        raise ServingError(
            f"{exc}\nIt was served from {environment.describe()}: where the Bento ships it "
            "would fail the same way. Package it again (workbench finds what the model needs "
            "from the model), or add what is missing to the project's `code:` or environment"
        ) from exc


def portability(server: Server, checks: list[CheckResult]) -> tuple[bool, str]:
    """(proven, why): the Bento is proven portable when it served from a clean environment of
    its own requirements and every check passed there."""
    if server.environment is None:
        return False, (
            "served from this environment (launch.portable is false, or the launch panel's "
            "clean-environment box was off): the Bento's own requirements were not tried"
        )
    failed = [c.name for c in checks if not c.passed]
    if failed:
        return False, f"{', '.join(failed)} failed in {server.environment.describe()}"
    return True, f"every check passed serving from {server.environment.describe()}"


def _stored_bento(root: Path, tag: str) -> tuple[Any, InputSchema, str, str]:
    """(model, input schema, model tag, task) of a Bento in the store, from its model card; the
    Bento and its model as the project at ``root`` recorded them."""
    verify_bento(root, tag)
    card = ModelCard.read(Path(str(bentoml.bentos.get(tag).path)) / "src" / CARD_FILE)
    model = load_stored_model(root, card.model_tag)
    return model, card.input_schema, card.model_tag, card.task


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
    parity, mismatches = _parity_check(server, model, X, schema)
    checks.append(parity)
    load = None
    if config.launch.probe_requests and parity.passed:
        load = _load_probe(server, sample, config)
        checks.append(
            CheckResult(
                name="load probe",
                passed=load.errors == 0,
                detail=f"{load.requests} requests, {load.requests_per_s:.0f} req/s, "
                f"p99 {load.p99_ms:.1f} ms, {load.errors} errors",
            )
        )
    proven, why = portability(server, checks)
    result = LaunchResult(
        bento_tag=server.bento_tag,
        portable="proven" if proven else "not proven",
        portable_reason=why,
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


def _parity_check(
    server: Server, model: Any, X: pd.DataFrame, schema: InputSchema
) -> tuple[CheckResult, list[dict[str, Any]]]:
    """The service's answers on every test row against the model's, and the rows that differ."""
    mismatches: list[dict[str, Any]] = []
    parity = run_check(
        "parity",
        lambda: mismatches.extend(check_parity(server.url, model, X, schema, server.api_key)),
    )
    if parity.passed:
        parity = CheckResult(
            name="parity",
            passed=not mismatches,
            detail=f"{len(X)} rows, {len(mismatches)} mismatches"
            + (f": {mismatches[:5]}" if mismatches else ""),
        )
    return parity, mismatches


def _load_probe(server: Server, sample: list[dict[str, Any]], config: Config) -> ProbeResult:
    return probe(
        server.url,
        sample,
        requests=config.launch.probe_requests,
        concurrency=config.launch.probe_concurrency,
        time_limit=config.launch.probe_seconds,
        headers=auth_headers(server.api_key),
    )


def launch(
    config: Config, *, run_dir: str | Path | None = None, port: int | None = None
) -> LaunchResult:
    """Headless launch: start the packaged Bento, smoke-test it, check parity, stop it."""
    with serve(config, run_dir=run_dir, port=port) as server:
        return check(server, config, run_dir=run_dir)
