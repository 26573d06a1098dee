"""What the package stage saved and built."""

from __future__ import annotations

import shlex

from workbench.results.base import Result


class PackageResult(Result):
    """What the package stage saved and built."""

    name: str
    model_tag: str
    bento_tag: str
    bento_path: str
    model_path: str
    service_dir: str
    archive: str
    """The exported Bento (``bentoml import <archive>`` on another machine)."""
    size_bytes: int
    contents: list[str]
    unseen_categories: str
    """``accept``: the model handles unseen categories; ``replace``: the service substitutes
    the most frequent training value and says so in the row's warnings."""
    runtime: str = "sklearn"
    """What answers requests: ``onnx`` (the compiled graph in onnxruntime) or ``sklearn``."""
    runtime_reason: str = ""
    """Why: the parity evidence, or why no graph is the same model."""
    compiled_at: str = ""
    """Where that was decided: ``validation: ...`` (its graph, by sha256, and its parity
    evidence, reused) or ``packaging: ...`` and why the validation had none to reuse."""
    created: bool
    """False when a Bento with the same content-derived tag already existed."""
    bentoml_home: str
    seconds: float
    inputs: dict[str, str] = {}
    """sha256 of the model, train and test files of the validation it was packaged from (empty
    in records older than this field)."""
    code: dict[str, str] = {}
    """The project's files the Bento carries (its path -> the source file), which the model's
    pickle references or those import."""
    model_packages: list[str] = []
    """Distributions the model needs beyond scikit-learn, pinned (installed in the Bento unless
    it serves with onnxruntime)."""

    @property
    def serve_command(self) -> str:
        return f"bentoml serve {self.bento_tag}"

    @property
    def commands(self) -> dict[str, str]:
        """Copy-ready commands: serve, move to another machine, build an image, deploy."""
        return {
            "serve": self.serve_command,
            "import elsewhere": f"bentoml import {shlex.quote(self.archive)}",
            "container image": f"bentoml containerize {self.bento_tag}",
            "kubernetes": f"kubectl apply -f {self.bento_path}/src/deploy/kubernetes.yaml",
        }
