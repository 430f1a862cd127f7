"""Retention of outgoing webhook events: the worker's housekeeping deletes events older than
``WEBHOOK_RETENTION_DAYS`` (by the wall clock they were written at) whose deliveries are all
finished, with their deliveries and delivery attempts, so the outbox does not grow forever.
Retries stop after ``WEBHOOK_MAX_AGE_SECONDS``, which the settings keep shorter than the
retention: no event is deleted while it may still be delivered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db.connection import Database
from db.repositories.outgoing_webhooks import WebhookEventRepository

__all__ = ["WebhookRetention"]

_BATCH = 1_000


class WebhookRetention:
    def __init__(self, db: Database, *, days: int, max_rounds: int = 20) -> None:
        self._events = WebhookEventRepository(db)
        self._keep = timedelta(days=days)
        self._max_rounds = max_rounds

    async def purge(self) -> int:
        """Delete events past the retention, ``_BATCH`` per statement and at most
        ``max_rounds`` statements per call (the next housekeeping round goes on); returns how
        many events were deleted."""
        before = datetime.now(UTC) - self._keep
        deleted = 0
        for _ in range(self._max_rounds):
            count = await self._events.purge_before(before, limit=_BATCH)
            deleted += count
            if count < _BATCH:
                break
        return deleted
