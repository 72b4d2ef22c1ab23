"""Fault injection for the public API: errors (JSON or not), 429s, slow responses, dropped responses.

A rule (from the config file's `faults:` list or `POST /_emulator/faults`):
  {"action": "error" | "rate_limit" | "delay" | "drop_response" | "disconnect",
   "method": "POST" (default any), "path": regex searched in the path after /api/v1 (default any),
   "probability": 0..1 (default 1), "count": how many times it may fire (default unlimited),
   "status": HTTP status for "error" (default 503), "body": "json" | "html" | "text" (default json),
   "delay_seconds": wall seconds for "delay" (not scaled by time_scale: this is about client timeouts)}
  error          answer `status` without touching state (5xx from the edge or a provider/* error)
  rate_limit     answer 429 without touching state
  delay          sleep, then handle normally (other rules still apply)
  drop_response  handle the request (a launch commits and bills), then close the connection without answering
  disconnect     close the connection without handling anything
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import invalid_parameters

ACTIONS = ("error", "rate_limit", "delay", "drop_response", "disconnect")
BODIES = ("json", "html", "text")


@dataclass
class FaultRule:
    action: str
    method: str | None = None
    path: str | None = None
    probability: float = 1.0
    count: int | None = None
    status: int = 503
    body: str = "json"
    delay_seconds: float = 0.0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    fired: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class FaultDecision:
    delay_seconds: float = 0.0
    terminal: FaultRule | None = None  # error / rate_limit / disconnect: answer without handling
    drop_response: bool = False


def parse_rule(raw: Any) -> FaultRule:
    if not isinstance(raw, dict):
        raise invalid_parameters("A fault rule must be a JSON object.")
    unknown = set(raw) - {"action", "method", "path", "probability", "count", "status", "body", "delay_seconds"}
    if unknown:
        raise invalid_parameters(f"Unknown fault rule fields: {sorted(unknown)}.")
    action = raw.get("action")
    if action not in ACTIONS:
        raise invalid_parameters(f"action must be one of {ACTIONS}, got {action!r}.")
    body = raw.get("body", "json")
    if body not in BODIES:
        raise invalid_parameters(f"body must be one of {BODIES}, got {body!r}.")
    path = raw.get("path")
    if path is not None:
        try:
            re.compile(path)
        except re.error as exc:
            raise invalid_parameters(f"path is not a valid regular expression: {exc}") from None
    try:
        rule = FaultRule(
            action=action,
            method=raw["method"].upper() if raw.get("method") else None,
            path=path,
            probability=float(raw.get("probability", 1.0)),
            count=int(raw["count"]) if raw.get("count") is not None else None,
            status=int(raw.get("status", 429 if action == "rate_limit" else 503)),
            body=body,
            delay_seconds=float(raw.get("delay_seconds", 0.0)),
        )
    except (TypeError, ValueError) as exc:
        raise invalid_parameters(f"Bad fault rule value: {exc}") from None
    if not 0.0 <= rule.probability <= 1.0:
        raise invalid_parameters("probability must be between 0 and 1.")
    return rule


class FaultInjector:
    def __init__(self, rules: list[dict[str, Any]] | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._rules: list[FaultRule] = [parse_rule(r) for r in rules or []]

    def add(self, raw: Any) -> FaultRule:
        rule = parse_rule(raw)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def decide(self, method: str, api_path: str) -> FaultDecision:
        decision = FaultDecision()
        with self._lock:
            for rule in self._rules:
                if rule.method and rule.method != method:
                    continue
                if rule.path and not re.search(rule.path, api_path):
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.action == "delay":
                    decision.delay_seconds += rule.delay_seconds
                elif rule.action == "drop_response":
                    decision.drop_response = True
                else:
                    decision.terminal = rule
                    break
        return decision


def fault_body(rule: FaultRule) -> tuple[bytes, str]:
    """Body and content type of an injected error."""
    if rule.body == "html":
        # The edge answers HTML (../shared/lambda-cloud/NOTES.md §1 "Edge errors"), e.g. the Cloudflare ban page on 429.
        text = (
            "<html><head><title>Access denied</title></head><body><h1>Error 1015</h1>"
            "<p>You are being rate limited. The owner of this website has banned you temporarily.</p></body></html>"
            if rule.status == 429
            else f"<html><head><title>{rule.status} Bad Gateway</title></head><body><center><h1>{rule.status} "
            "Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>"
        )
        return text.encode(), "text/html"
    if rule.body == "text":
        return f"upstream error {rule.status}".encode(), "text/plain"
    if rule.status == 429:
        code, message, suggestion = "global/rate-limited", "Too many requests.", "Slow down."
    else:
        code, message, suggestion = "provider/internal-unavailable", "Provider unavailable", "Try again shortly"
    return json.dumps(
        {"error": {"code": code, "message": message, "suggestion": suggestion}}
    ).encode(), "application/json"
