"""Spent so far: the fleet's hourly price times the hours since its creation (the FleetClock's `created_at`)."""

from __future__ import annotations

from datetime import UTC, datetime


def hours_since(created_at: str, now: datetime | None = None) -> float:
    created = datetime.fromisoformat(created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - created).total_seconds() / 3600.0)


def spent_usd(hourly_usd: float, created_at: str, now: datetime | None = None) -> float:
    return hourly_usd * hours_since(created_at, now)


def usd(amount: float) -> str:
    """Cents for big amounts, tenths of a cent below $10 (so a young fleet's spend is seen growing)."""
    return f"${amount:,.2f}" if amount >= 10 else f"${amount:.4f}"


def duration(hours: float) -> str:
    minutes = int(round(hours * 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{hours * 60:.1f} min"
