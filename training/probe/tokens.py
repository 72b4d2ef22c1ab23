"""Character spans to per-token class labels through a tokenizer's offsets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from training.probe.generate import CLASSES, Example

# Every text is fed after this prefix, whose tokens are never labelled or scored: the first position of a sequence
# is an activation outlier (the trainer skips it too), and a BOS token, where the tokenizer adds one, sits before it.
PREFIX = "\n"


class Tokenizer(Protocol):
    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and each token's (start, end) character offsets; (0, 0) for special tokens."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as token ids (folded into `vocab_size`), each byte's offsets those of its character: the offline
    tokenizer for a randomly initialised model (`hf_model_config`), which has none of its own."""

    def __init__(self, vocab_size: int = 256) -> None:
        self.vocab_size = vocab_size

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = [], []
        for i, char in enumerate(text):
            for byte in char.encode("utf-8"):
                ids.append(byte % self.vocab_size)
                offsets.append((i, i + 1))
        return ids, offsets


class HFTokenizer:
    """A Hugging Face fast tokenizer (the model's own), with its offset mapping."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"{type(tokenizer).__name__}: the probe needs a fast tokenizer (offset mapping); "
                "install `tokenizers` or give a model whose tokenizer.json is available"
            )
        self.tokenizer = tokenizer

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


@dataclass
class TokenTable:
    """One split, tokenised. `ids[e]` is example e's model input; the scored tokens (those covering text) are rows
    of the flat arrays, in example order, and `positions[e]` says which input positions they are."""

    examples: list[Example]
    ids: list[list[int]]
    positions: list[np.ndarray]
    labels: np.ndarray  # [tokens] class index + 1 (0: not PII)
    span_ids: np.ndarray  # [tokens] index into `span_labels` of the gold span the token overlaps, -1 for none
    span_labels: np.ndarray  # [spans] class index + 1 of every gold span
    example_of: np.ndarray  # [tokens] example index
    offsets: np.ndarray  # [tokens, 2] character offsets in the example's text

    @property
    def n_tokens(self) -> int:
        return len(self.labels)


def tokenize(examples: list[Example], tokenizer: Tokenizer) -> TokenTable:
    ids, positions, labels, span_ids, span_labels, example_of, offsets = [], [], [], [], [], [], []
    for e, example in enumerate(examples):
        token_ids, token_offsets = tokenizer.encode(PREFIX + example.text)
        ids.append(token_ids)
        kept = []
        spans = sorted(example.spans, key=lambda s: s.start)
        first_span = len(span_labels)
        span_labels.extend(CLASSES.index(s.label) + 1 for s in spans)
        for pos, (start, end) in enumerate(token_offsets):
            start, end = max(start - len(PREFIX), 0), end - len(PREFIX)
            if pos == 0 or end <= start:
                continue  # the prefix, BOS and other special tokens
            kept.append(pos)
            label, span_id = 0, -1
            for s, span in enumerate(spans):
                if start < span.end and end > span.start:
                    label, span_id = CLASSES.index(span.label) + 1, first_span + s
                    break
            labels.append(label)
            span_ids.append(span_id)
            example_of.append(e)
            offsets.append((start, end))
        positions.append(np.asarray(kept, dtype=np.int64))
    return TokenTable(
        examples,
        ids,
        positions,
        np.asarray(labels, dtype=np.int64),
        np.asarray(span_ids, dtype=np.int64),
        np.asarray(span_labels, dtype=np.int64),
        np.asarray(example_of, dtype=np.int64),
        np.asarray(offsets, dtype=np.int64).reshape(-1, 2),
    )


def select(table: TokenTable, examples: list[int]) -> tuple[TokenTable, np.ndarray]:
    """The sub-table of those examples (renumbered, spans too) and the rows of `table` it keeps (to slice features
    computed for the whole table)."""
    keep = np.isin(table.example_of, examples)
    rows = np.nonzero(keep)[0]
    new_index = {e: i for i, e in enumerate(examples)}
    span_owner = np.full(len(table.span_labels), -1)
    span_owner[table.span_ids[table.span_ids >= 0]] = table.example_of[table.span_ids >= 0]
    kept_spans = np.nonzero(np.isin(span_owner, examples))[0]
    span_map = np.full(len(table.span_labels) + 1, -1)
    span_map[kept_spans] = np.arange(len(kept_spans))
    sub = TokenTable(
        [table.examples[e] for e in examples],
        [table.ids[e] for e in examples],
        [table.positions[e] for e in examples],
        table.labels[rows],
        span_map[table.span_ids[rows]],
        table.span_labels[kept_spans],
        np.asarray([new_index[e] for e in table.example_of[rows]], dtype=np.int64),
        table.offsets[rows],
    )
    return sub, rows
