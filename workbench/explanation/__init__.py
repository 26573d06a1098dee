"""Explanations: which method explains a model, checked before it is kept (:mod:`.choice`), and
which input column each feature of a Pipeline comes from (:mod:`.sources`). The runtime carries
the method out (``workbench/runtime/explainer.py``), in the Bento and in the validate report."""

from workbench.explanation.choice import Chosen, additivity_error, choose_explanation

__all__ = ["Chosen", "additivity_error", "choose_explanation"]
