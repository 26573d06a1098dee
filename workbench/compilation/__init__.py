"""Compiled models: the validated scikit-learn model as an ONNX graph, kept only where it answers
every test row as scikit-learn does. Used by validation (latency of both runtimes) and packaging
(what the Bento serves with)."""

from workbench.compilation.compiled import MODES, CompiledModel, Mode, compile_model, for_mode
from workbench.compilation.parity import TOLERANCE

__all__ = ["MODES", "TOLERANCE", "CompiledModel", "Mode", "compile_model", "for_mode"]
