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
    model = LogisticRegression(C=settings.C, l1_ratio=1.0 if settings.penalty == "l1" else 0.0,
                               solver="liblinear" if settings.penalty == "l1" else "lbfgs",
                               class_weight=settings.class_weight, max_iter=settings.max_iter)
    if kind == "raw":
        return make_pipeline(StandardScaler(), model)
    if kind == "sae":
        return make_pipeline(MaxAbsScaler(), model)
    return make_pipeline(model)


def fit_predict(kind: str, train_x: Features, train_labels: np.ndarray, test_x: Features, n_classes: int,
                settings: ProbeSettings | None = None) -> np.ndarray:
    """[test tokens, n_classes] probability that each token belongs to each class (column c is class c + 1 of
    the labels; a class absent from training scores 0)."""
    settings = settings or ProbeSettings()
    scores = np.zeros((test_x.shape[0], n_classes), dtype=np.float64)
    for c in range(n_classes):
        target = (train_labels == c + 1).astype(np.int64)
        if target.min() == target.max():
            continue
        probe = _probe(kind, settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probe.fit(train_x, target)
        scores[:, c] = probe.predict_proba(test_x)[:, 1]
    return scores
