"""SQL for received Stripe webhook events: claim once, mark processed, release on failure."""

from __future__ import annotations

from datetime import timedelta

from db.connection import Database

__all__ = ["StripeEventRepository"]

# Insert the event as processing, or take over one whose processing died (lease over).
_CLAIM = """
INSERT INTO stripe_events AS e (organization_id, event_id, type, state, lease_until)
VALUES (:org, :event_id, :type, 'processing', now() + :lease)
ON CONFLICT (organization_id, event_id) DO UPDATE
    SET attempts = e.attempts + 1, lease_until = now() + :lease
    WHERE e.state = 'processing' AND e.lease_until < now()
RETURNING attempts
"""


class StripeEventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, org: str, event_id: str, event_type: str, lease: timedelta) -> bool:
        """True when this delivery should apply the event (first time, or a dead attempt)."""
        row = await self._db.fetch_one(
            _CLAIM, {"org": org, "event_id": event_id, "type": event_type, "lease": lease}
        )
        return row is not None

    async def processed(self, org: str, event_id: str) -> None:
        await self._db.execute(
            "UPDATE stripe_events SET state = 'processed', processed_at = now(), "
            "lease_until = NULL WHERE organization_id = :org AND event_id = :event_id",
            {"org": org, "event_id": event_id},
        )

    async def release(self, org: str, event_id: str) -> None:
        """Forget a failed attempt, so Stripe's next delivery applies the event."""
        await self._db.execute(
            "DELETE FROM stripe_events WHERE organization_id = :org AND event_id = :event_id "
            "AND state = 'processing'",
            {"org": org, "event_id": event_id},
        )
