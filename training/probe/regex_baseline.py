"""The regex/validator baseline: e-mails, phones, cards that pass Luhn, IBANs that pass the mod-97 check, IPv4/IPv6,
US-style SSNs. Names, street addresses and dates of birth have no regex here: the baseline scores 0 for them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import numpy as np

from training.probe.generate import CLASSES
from training.probe.tokens import TokenTable


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"\D", "", number)]
    if not 12 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ip_ok(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _phone_ok(value: str) -> bool:
    return 7 <= len(re.sub(r"\D", "", value)) <= 15 and not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}|\d{2}\.\d{2}\.\d{4}", value
    )


# ASCII boundaries: Japanese text puts letters right next to values, and `\b` counts them as word characters.
_B, _E = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
PATTERNS: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "email": (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), lambda v: True),
    "iban": (re.compile(_B + r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?" + _E), iban_ok),
    "credit_card": (re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{3,4}){2,3}(?:[ -]?\d{1,4})?(?![\d-])"), luhn_ok),
    "ip_address": (
        re.compile(
            r"(?<![A-Za-z0-9:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7})"
            r"(?![A-Za-z0-9:.])"
        ),
        _ip_ok,
    ),
    "national_id": (re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"), lambda v: True),
    "phone": (
        re.compile(
            r"(?<![A-Za-z0-9-])\+?(?:\(?\d{1,5}\)?)(?:[ .-]?(?:\(0\))?\(?\d{2,5}\)?){1,4}(?:x\d+)?"
            r"(?![A-Za-z0-9-])"
        ),
        _phone_ok,
    ),
}


def find_spans(text: str) -> list[tuple[int, int, str]]:
    """Validated matches; earlier patterns win where matches overlap (an IBAN's digits are no phone)."""
    taken: list[tuple[int, int, str]] = []
    for label, (pattern, valid) in PATTERNS.items():
        for match in pattern.finditer(text):
            start, end = match.span()
            if valid(match.group()) and all(end <= s or start >= e for s, e, _ in taken):
                taken.append((start, end, label))
    return taken


def regex_scores(table: TokenTable) -> np.ndarray:
    """[tokens, classes] 1.0 where a token overlaps a validated match of that class, else 0."""
    scores = np.zeros((table.n_tokens, len(CLASSES)))
    for e, example in enumerate(table.examples):
        rows = np.nonzero(table.example_of == e)[0]
        for start, end, label in find_spans(example.text):
            hit = rows[(table.offsets[rows, 0] < end) & (table.offsets[rows, 1] > start)]
            scores[hit, CLASSES.index(label)] = 1.0
    return scores
