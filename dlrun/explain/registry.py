"""Explanation methods by name: `explain.methods=[NAME,...]`. A new method is a module
with one function `(Explained, ExplainConfig) -> MethodResult` and one line here."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, List, Tuple

from dlrun.config.schema import EXPLAIN_METHODS


@dataclass(frozen=True)
class Method:
    module: str        # in dlrun.explain (imported when the method runs: shap, lime, TensorFlow)
    function: str
    kinds: Tuple[str, ...]  # what it explains: tabular (table rows) | image | text (a text column's tokens)
    needs: str         # said when the method does not fit the run's model
    writes: str        # its files, for --help

    def load(self) -> Callable:
        return getattr(importlib.import_module(f"dlrun.explain.{self.module}"), self.function)


TABULAR = "explains a model of table rows, feature by feature"
IMAGE = "explains a model of images, pixel by pixel"
METHODS = {
    "permutation": Method("permutation", "permutation_importance", ("tabular", "text"),
                          "explains a model of table rows, column by column",
                          "permutation_importance.csv/.png (a text column: shuffled as a whole)"),
    "shap": Method("shapley", "shap_values", ("tabular",), TABULAR,
                   "shap_importance.csv, shap_values.csv, shap_summary.png"),
    "lime": Method("lime_rows", "lime_explanations", ("tabular",), TABULAR, "lime.csv, lime_row<N>.png"),
    "saliency": Method("gradients", "saliency", ("image",), IMAGE, "saliency.png (gradients and SmoothGrad)"),
    "integrated_gradients": Method("gradients", "integrated_gradients", ("image", "text"),
                                   "explains a model of images (pixel by pixel) or of text (token by token)",
                                   "integrated_gradients.png/.csv (with its completeness check)"),
    "grad_cam": Method("gradients", "grad_cam", ("image",),
                       "needs a convolutional layer (Grad-CAM weighs its feature maps)", "grad_cam.png"),
    "feature_visualization": Method("features", "feature_visualization", ("image",),
                                    "needs a convolutional model (it visualizes filters)",
                                    "feature_visualization.png"),
    "attention": Method("attention", "attention_weights", ("image", "text"),
                        "needs model=attention (it reads the attention weights)",
                        "attention.png, attention.csv, attention_vs_gradients.png"),
}
assert tuple(METHODS) == EXPLAIN_METHODS  # the schema validates names; this maps them


def defaults(kind: str) -> List[str]:
    """What explain.methods=[auto] runs for a model of this kind: every method that fits it
    (before the model's own exclusions: source.UNFIT)."""
    return [name for name, m in METHODS.items() if kind in m.kinds]
