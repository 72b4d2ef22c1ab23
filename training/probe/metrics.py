"""Token- and span-level precision, recall and F1 per class, micro and macro, and recall at 95 % precision.

A predicted span is a maximal run of consecutive tokens of one example whose score for the class is at least the
threshold, kept when it has at least `min_tokens` tokens (multi-token evidence); its score is the max over its
tokens (span aggregation). It is correct when it overlaps a gold span of that class; a gold span is found when a
kept run overlaps it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.probe.generate import CLASSES
from training.probe.tokens import TokenTable

TARGET_PRECISION = 0.95


@dataclass
class Counts:
    tp_pred: int = 0  # predictions (tokens or spans) that are right
    n_pred: int = 0
    found: int = 0  # gold items (tokens or spans) found
    n_gold: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tp_pred + other.tp_pred,
            self.n_pred + other.n_pred,
            self.found + other.found,
            self.n_gold + other.n_gold,
        )

    def prf(self) -> dict[str, float]:
        p = self.tp_pred / self.n_pred if self.n_pred else 0.0
        r = self.found / self.n_gold if self.n_gold else 0.0
        return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def token_counts(table: TokenTable, score: np.ndarray, cls: int, threshold: float) -> Counts:
    gold, pred = table.labels == cls, score >= threshold
    return Counts(int((gold & pred).sum()), int(pred.sum()), int((gold & pred).sum()), int(gold.sum()))


def span_counts(table: TokenTable, score: np.ndarray, cls: int, threshold: float, min_tokens: int = 1) -> Counts:
    n_gold = int((table.span_labels == cls).sum())
    mask = score >= threshold
    if not mask.any():
        return Counts(0, 0, 0, n_gold)
    starts = mask.copy()
    starts[1:] &= ~mask[:-1] | (table.example_of[1:] != table.example_of[:-1])
    run = np.cumsum(starts) - 1  # run index of every token (meaningful where mask)
    run_of = run[mask]
    kept = np.bincount(run_of) >= min_tokens
    span_of = table.span_ids[mask]
    gold_here = span_of >= 0
    gold_here[gold_here] = table.span_labels[span_of[gold_here]] == cls
    right = np.bincount(run_of, weights=gold_here) > 0
    in_kept = kept[run_of] & gold_here
    found = len(np.unique(span_of[in_kept]))
    return Counts(int((kept & right).sum()), int(kept.sum()), found, n_gold)


def _thresholds(score: np.ndarray) -> np.ndarray:
    """Candidate thresholds: score quantiles, dense near the top where the rare PII tokens are; a 0/1 scorer (the
    regex) has one operating point."""
    if np.isin(score, (0.0, 1.0)).all():
        return np.asarray([0.5])
    quantiles = 1 - np.geomspace(1, 1e-4, 40)[::-1] + 1e-4
    grid = np.quantile(score, np.clip(np.concatenate([np.linspace(0, 0.9, 10), quantiles]), 0, 1))
    return np.unique(np.concatenate([grid, [0.5, 1.0]]))


def choose_thresholds(table: TokenTable, scores: np.ndarray, min_tokens: int = 1) -> np.ndarray:
    """Per class, the threshold with the best span F1 on `table` (a validation split of the training data; never
    the held-out split); 0.5 for a class it does not contain."""
    chosen = np.full(scores.shape[1], 0.5)
    for c in range(scores.shape[1]):
        if not (table.span_labels == c + 1).any():
            continue
        candidates = _thresholds(scores[:, c])
        f1s = [span_counts(table, scores[:, c], c + 1, t, min_tokens).prf()["f1"] for t in candidates]
        chosen[c] = float(candidates[int(np.argmax(f1s))])
    return chosen


def _recall_at_precision(points: list[dict[str, float]]) -> float:
    ok = [pt["recall"] for pt in points if pt["precision"] >= TARGET_PRECISION]
    return max(ok) if ok else 0.0


def evaluate(
    table: TokenTable,
    scores: np.ndarray,
    thresholds: float | Sequence[float] = 0.5,
    min_tokens: int = 1,
    curves: bool = True,
) -> dict[str, Any]:
    """Metrics of `scores` [tokens, classes] on the table: per class (token and span level, at its threshold, with
    recall at 95 % precision over all thresholds), micro and macro over the classes that occur, and the
    span-level precision-recall points per class (for the plot)."""
    per_class: dict[str, Any] = {}
    totals = {"token": Counts(), "span": Counts()}
    per_threshold = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(CLASSES),))
    for c, name in enumerate(CLASSES):
        score, cls, threshold = scores[:, c], c + 1, float(per_threshold[c])
        tok, span = token_counts(table, score, cls, threshold), span_counts(table, score, cls, threshold, min_tokens)
        totals["token"] += tok
        totals["span"] += span
        entry: dict[str, Any] = {
            "support_spans": span.n_gold,
            "support_tokens": tok.n_gold,
            "threshold": threshold,
            "token": tok.prf(),
            "span": span.prf(),
        }
        if curves:
            token_pts = [token_counts(table, score, cls, t).prf() for t in _thresholds(score)]
            span_pts = [span_counts(table, score, cls, t, min_tokens).prf() for t in _thresholds(score)]
            entry["token"]["recall_at_95p"] = _recall_at_precision(token_pts)
            entry["span"]["recall_at_95p"] = _recall_at_precision(span_pts)
            entry["pr_curve"] = [(round(p["precision"], 4), round(p["recall"], 4)) for p in span_pts]
        per_class[name] = entry
    present = [name for name in CLASSES if per_class[name]["support_spans"]]
    out: dict[str, Any] = {"per_class": per_class, "classes_present": present}
    for level in ("token", "span"):
        out[f"{level}_micro"] = totals[level].prf()
        out[f"{level}_macro"] = {
            key: float(np.mean([per_class[n][level][key] for n in present])) if present else 0.0
            for key in ("precision", "recall", "f1")
        }
        if curves:
            out[f"{level}_macro"]["recall_at_95p"] = (
                float(np.mean([per_class[n][level]["recall_at_95p"] for n in present])) if present else 0.0
            )
    return out
