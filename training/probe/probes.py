"""Token-level probes: one logistic regression per PII class (one-vs-rest, balanced class weights), on raw
activations (standardised), SAE codes (scaled by each latent's max) or binarised codes (as they are)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

from training.probe.features import Features


@dataclass
class ProbeSettings:
    penalty: str = "l2"  # l1 or l2
    C: float = 1.0  # inverse regularisation strength
    max_iter: int = 300
    class_weight: str | None = "balanced"


def _probe(kind: str, settings: ProbeSettings) -> Pipeline:
    # liblinear: binary problems, dense or sparse, L1 or L2; several times faster than lbfgs on these.
    model = LogisticRegression(
        C=settings.C,
        l1_ratio=1.0 if settings.penalty == "l1" else 0.0,
        solver="liblinear",
        class_weight=settings.class_weight,
        max_iter=settings.max_iter,
    )
    if kind == "raw":
        return make_pipeline(StandardScaler(), model)
    if kind == "sae":
        return make_pipeline(MaxAbsScaler(), model)
    return make_pipeline(model)


def fit(
    kind: str, x: Features, labels: np.ndarray, n_classes: int, settings: ProbeSettings | None = None
) -> list[Pipeline | None]:
    """One probe per class (class c + 1 of the labels); None for a class absent from `labels`."""
    settings = settings or ProbeSettings()
    models: list[Pipeline | None] = []
    for c in range(n_classes):
        target = (labels == c + 1).astype(np.int64)
        if target.min() == target.max():
            models.append(None)
            continue
        probe = _probe(kind, settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe.fit(x, target)
        models.append(probe)
    return models


def predict(models: list[Pipeline | None], x: Features) -> np.ndarray:
    """[tokens, classes] probability that each token belongs to each class (0 for a class without a probe)."""
    scores = np.zeros((x.shape[0], len(models)), dtype=np.float64)
    for c, model in enumerate(models):
        if model is not None:
            scores[:, c] = model.predict_proba(x)[:, 1]
    return scores
