"""What the list filters of invoices and payments share: a creation-time range, `from`
inclusive to `to` exclusive, read as UTC when a time has no offset."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry

__all__ = ["as_utc", "created_from", "created_range", "created_to"]


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` with UTC as its zone when it has none (GraphQL times may omit the offset)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def created_from() -> Any:
    """The filter field ``from``."""
    return strawberry.field(
        default=None,
        name="from",
        description="Created at or after this time (ISO 8601; UTC when no offset is given).",
    )


def created_to() -> Any:
    """The filter field ``to``."""
    return strawberry.field(
        default=None, description="Created before this time (ISO 8601; UTC when no offset)."
    )


def created_range(start: datetime | None, end: datetime | None) -> dict[str, datetime | None]:
    """The repository filters of a ``from``/``to`` pair."""
    return {"created_from": as_utc(start), "created_to": as_utc(end)}
