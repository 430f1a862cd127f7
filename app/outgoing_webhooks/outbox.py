"""The outbox: an event is written in the transaction of the change it describes, with one
delivery per enabled endpoint that wants its type (one statement). A rolled-back change leaves
no event; a committed one is delivered by a worker even if this process dies right after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.ids import new_id
from app.outgoing_webhooks.envelope import API_VERSION, NAMES, envelope_json
from db.connection import Database
from db.repositories.outgoing_webhooks import WebhookEventRepository

__all__ = ["emit"]


async def emit(
    db: Database,
    org: str,
    event_type: str,
    data: dict[str, Any],
    *,
    dedupe_key: str | None = None,
) -> str:
    """Write an event about ``data`` (an object as ``api_view`` renders it). Call it inside
    the transaction that makes the change. Returns the event id."""
    if event_type not in NAMES:
        raise ValueError(f"unknown event type {event_type!r}")
    event_id = new_id("evt")
    created = datetime.now(UTC)
    await WebhookEventRepository(db).record(
        {
            "org": org,
            "id": event_id,
            "type": event_type,
            "api_version": API_VERSION,
            "object_id": str(data.get("id", "")),
            "payload": envelope_json(
                event_id=event_id, event_type=event_type, org=org, created=created, data=data
            ),
            "dedupe_key": dedupe_key,
            "created_at": created,
        }
    )
    return event_id
