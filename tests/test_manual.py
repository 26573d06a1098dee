"""Every Bento carries the Bento guide as its README, its `/` page and its OpenAPI
description, under a header naming its model."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from workbench import load_config, package
from workbench.packaging.guide import bento_guide, render_readme
from workbench.serving import Server


def test_the_readme_header_says_how_this_bento_serves(project: Path):
    config = load_config(project / "workbench.yaml")
    closed = render_readme(config, model_tag="bc:1", task="classification", runtime="onnx")
    assert closed.startswith(f"# {config.name}\n\nA classification model packaged by workbench")
    assert "onnxruntime" in closed and "WORKBENCH_API_KEY" in closed
    assert closed == render_readme(config, model_tag="bc:1", task="classification", runtime="onnx")
    quiet = config.model_copy(
        update={
            "service": config.service.model_copy(update={"auth": "none"}),
            "monitor": config.monitor.model_copy(update={"window_rows": 0}),
        }
    )
    header = render_readme(quiet, model_tag="bc:1", task="regression", runtime="sklearn")
    header = header.removesuffix(bento_guide())
    assert "the API is open" in header and "monitoring is off" in header
    assert "scikit-learn answers" in header and "WORKBENCH_API_KEY" not in header


@pytest.mark.serve
def test_every_bento_carries_the_guide_as_its_readme_and_api_description(packaged, tmp_path):
    """Packaging again gives the same Bento (the README is hashed into its version); the Bento's
    README.md is the guide under its model's header, and the served OpenAPI says the same."""
    result = package(load_config(packaged / "workbench.yaml"))
    assert not result.created
    service_dir, bento = Path(result.service_dir), Path(result.bento_path)
    readme = (bento / "README.md").read_text()
    assert readme == (service_dir / "README.md").read_text()
    assert readme.startswith(f"# {result.name}\n\n") and readme.endswith(bento_guide())
    bentofile = yaml.safe_load((service_dir / "bentofile.yaml").read_text())
    assert bentofile["description"] == "file:./README.md"
    with Server.start(result.bento_tag, log_dir=tmp_path) as server:
        spec = httpx.get(f"{server.url}/docs.json", timeout=10).json()
    assert spec["info"]["description"] == readme
