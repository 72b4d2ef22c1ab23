"""Offline labelled PII text: faker values in our own sentence templates, with the exact character span of every
inserted value. Train and test use disjoint templates, disjoint locales (except ja_JP, faker's one Japanese locale,
which both use with disjoint templates) and disjoint value formats: the stand-in for the synthetic-to-real shift."""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from faker import Faker

CLASSES = (
    "person_name",
    "email",
    "phone",
    "street_address",
    "credit_card",
    "iban",
    "national_id",
    "ip_address",
    "date_of_birth",
)
SPLITS = ("train", "test")
LOCALES = {"train": ("en_US", "de_DE", "fr_FR", "ja_JP"), "test": ("en_GB", "it_IT", "es_ES", "ja_JP")}
ALL_LOCALES = tuple(sorted({loc for locs in LOCALES.values() for loc in locs}))

# Placeholders: the PII classes above, plus fillers that are not PII (they make false positives measurable).
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "en": (
            "Hi, my name is {person_name} and you can reach me at {email}.",
            "Please call {person_name} on {phone} about order {order_id}.",
            "Ship the package to {street_address} before {weekday}.",
            "Card number {credit_card} was declined for the {amount} payment.",
            "Transfer {amount} to IBAN {iban}, reference {order_id}.",
            "Customer {person_name}, SSN {national_id}, born {date_of_birth}.",
            "Login from {ip_address} failed three times for user {email}.",
            "The meeting with {company} moved to {weekday} at {time}.",
            "Update my address to {street_address} and my phone to {phone}, thanks.",
            "Our server at {ip_address} restarted at {time} without errors.",
            "Date of birth: {date_of_birth}. National ID: {national_id}.",
            "Invoice {order_id} for {company} totals {amount}.",
        ),
        "ja": (
            "{person_name}です。連絡先は{email}です。",
            "{phone}まで{person_name}様にお電話ください。",
            "お届け先は{street_address}です。",
            "カード番号{credit_card}でお支払いをお願いします。",
            "生年月日は{date_of_birth}です。",
            "注文番号{order_id}は{weekday}に発送されます。",
        ),
    },
    "test": {
        "en": (
            "Can you send the contract to {email}? It is for {person_name}.",
            "{person_name} lives at {street_address} and was born on {date_of_birth}.",
            "Reach our support line at {phone} any {weekday}.",
            "My card {credit_card} got charged twice for {amount}.",
            "Refund to account {iban} please, the name on it is {person_name}.",
            "Their tax id is {national_id} according to the file.",
            "Traffic spiked from {ip_address} around {time}.",
            "{company} confirmed the shipment {order_id} for {weekday}.",
            "Note from {person_name}: new number {phone}, old address {street_address}.",
            "The total was {amount} and it shipped at {time}.",
        ),
        "ja": (
            "担当の{person_name}のメールアドレスは{email}です。",
            "住所を{street_address}に変更しました。電話番号は{phone}です。",
            "{date_of_birth}生まれの{person_name}さんから問い合わせがありました。",
            "口座{iban}への振込を確認しました。",
            "{weekday}の会議は{time}からです。",
        ),
    },
}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


@dataclass
class Example:
    text: str
    spans: list[Span]
    template: str = ""
    locale: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "spans": [asdict(s) for s in self.spans],
            "template": self.template,
            "locale": self.locale,
        }


def _language(locale: str) -> str:
    return "ja" if locale.startswith("ja") else "en"


def _grouped(value: str, sep: str) -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


def _dob(fake: Faker, rng: random.Random, split: str, lang: str) -> str:
    born: date = fake.date_of_birth(minimum_age=18, maximum_age=90)
    if lang == "ja":
        return f"{born.year}年{born.month}月{born.day}日" if split == "train" else born.strftime("%Y/%m/%d")
    formats = ("%Y-%m-%d", "%d.%m.%Y") if split == "train" else ("%B %d, %Y", "%d/%m/%Y")
    return born.strftime(rng.choice(formats))


def _value(kind: str, fake: Faker, rng: random.Random, split: str, lang: str) -> str:
    """One value for a placeholder; the per-split formats differ (cards, IBANs, dates, e-mails, IPs)."""
    values: dict[str, Callable[[], str]] = {
        "person_name": fake.name,
        "email": lambda: fake.email() if split == "train" else rng.choice((fake.free_email, fake.company_email))(),
        "phone": fake.phone_number,
        "street_address": lambda: re.sub(r"\s*\n\s*", ", ", fake.address()),
        "credit_card": lambda: (
            rng.choice((lambda v: v, lambda v: _grouped(v, " "))) if split == "train" else lambda v: _grouped(v, "-")
        )(fake.credit_card_number()),
        "iban": lambda: fake.iban() if split == "train" else _grouped(fake.iban(), " "),
        "national_id": fake.ssn,
        "ip_address": lambda: fake.ipv4() if split == "train" or rng.random() < 0.5 else fake.ipv6(),
        "date_of_birth": lambda: _dob(fake, rng, split, lang),
        "order_id": lambda: f"{rng.choice('ABCDEFGHJK')}{rng.randrange(10**5, 10**6)}",
        "amount": lambda: f"{rng.randrange(5, 2000)}.{rng.randrange(100):02d} {rng.choice(('EUR', 'USD', 'JPY'))}",
        "weekday": fake.day_of_week,
        "time": lambda: f"{rng.randrange(24):02d}:{rng.randrange(60):02d}",
        "company": fake.company,
    }
    return values[kind]()


def _fill(template: str, fake: Faker, rng: random.Random, split: str, lang: str) -> tuple[str, list[Span], list[str]]:
    """The filled template, the spans of its PII values and those values (in order)."""
    parts, spans, values, pos = [], [], [], 0
    for literal, kind in re.findall(r"([^{]*)(?:\{(\w+)\})?", template):
        parts.append(literal)
        pos += len(literal)
        if kind:
            value = _value(kind, fake, rng, split, lang).strip()
            if kind in CLASSES:
                spans.append(Span(pos, pos + len(value), kind))
                values.append(value)
            parts.append(value)
            pos += len(value)
    return "".join(parts), spans, values


def _seed(*parts: object) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


def generate(n: int, split: str, seed: int = 0, locales: Iterable[str] | None = None) -> list[Example]:
    """`n` examples of `split` ('train' or 'test'): the same list for the same arguments."""
    if split not in SPLITS:
        raise ValueError(f"split: {split!r} is not one of {SPLITS}")
    locales = tuple(locales or LOCALES[split])
    rng = random.Random(_seed("pii", split, seed))
    fakers = {}
    for loc in locales:
        fakers[loc] = Faker(loc)
        fakers[loc].seed_instance(_seed("faker", split, seed, loc))
    out = []
    for _ in range(n):
        locale = rng.choice(locales)
        lang = _language(locale)
        index = rng.randrange(len(TEMPLATES[split][lang]))
        text, spans, values = _fill(TEMPLATES[split][lang][index], fakers[locale], rng, split, lang)
        out.append(Example(text, spans, template=f"{split}/{lang}/{index}", locale=locale, meta={"values": values}))
    return out


def write_jsonl(examples: Iterable[Example], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[Example]:
    """A user's `{text, spans: [{start, end, label}]}` lines (labels among CLASSES), checked line by line."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            text, raw_spans = record["text"], record.get("spans", [])
            spans = [Span(int(s["start"]), int(s["end"]), str(s["label"])) for s in raw_spans]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f'{where}: expected {{"text": str, "spans": [{{"start", "end", "label"}}]}} ({exc}); fix that line'
            ) from exc
        for span in spans:
            if span.label not in CLASSES:
                raise ValueError(f"{where}: label {span.label!r} is not a known class; use one of {list(CLASSES)}")
            if not 0 <= span.start < span.end <= len(text):
                raise ValueError(
                    f"{where}: span {span.start}-{span.end} is outside the text (length {len(text)}); "
                    "start and end are character offsets with end exclusive"
                )
        out.append(Example(text, spans, template=str(record.get("template", "")), locale=str(record.get("locale", ""))))
    if not out:
        raise ValueError(f"{path}: no examples; one JSON object per line")
    return out
