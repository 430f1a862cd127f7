"""SQL for received Stripe webhook events: claim once, mark processed or failed, release on a
transient failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from db.connection import Database, Row

__all__ = ["StripeEventRepository"]

# Insert the event as processing, or take over one whose processing died (lease over), or one
# that failed before (a new delivery is a new try: e.g. resent from the dashboard after a fix).
_CLAIM = """
INSERT INTO stripe_events AS e (organization_id, event_id, type, state, lease_until)
VALUES (:org, :event_id, :type, 'processing', now() + :lease)
ON CONFLICT (organization_id, event_id) DO UPDATE
    SET attempts = e.attempts + 1, lease_until = now() + :lease, state = 'processing',
        error = NULL
    WHERE (e.state = 'processing' AND e.lease_until < now()) OR e.state = 'failed'
RETURNING attempts
"""

# Record an event that cannot be applied: a new row, the end of this delivery's claim, or one
# more failed delivery of an event that failed before. A processed event stays processed.
_FAILED = """
INSERT INTO stripe_events AS e (organization_id, event_id, type, state, error, payload)
VALUES (:org, :event_id, :type, 'failed', :error, :payload)
ON CONFLICT (organization_id, event_id) DO UPDATE
    SET state = 'failed', error = EXCLUDED.error, lease_until = NULL,
        payload = COALESCE(EXCLUDED.payload, e.payload),
        attempts = e.attempts + CASE WHEN e.state = 'failed' THEN 1 ELSE 0 END
    WHERE e.state <> 'processed'
"""

_MAX_ERROR = 1000
_MAX_PAYLOAD = 256 * 1024  # a larger body is not kept (nor is it one Stripe sends)


class StripeEventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, org: str, event_id: str, event_type: str, lease: timedelta) -> bool:
        """True when this delivery should apply the event (first time, a dead attempt, or an
        event that failed before)."""
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

    async def failed(
        self, org: str, event_id: str, event_type: str, error: str, payload: str | None = None
    ) -> None:
        """Record that the event can never be applied, and why (``org`` is '' when the event
        names no valid organization), with its verified body for a later replay."""
        await self._db.execute(
            _FAILED,
            {
                "org": org,
                "event_id": event_id,
                "type": event_type,
                "error": error[:_MAX_ERROR],
                "payload": payload if payload is None or len(payload) <= _MAX_PAYLOAD else None,
            },
        )

    async def page(
        self,
        org: str,
        state: str | None,
        *,
        first: int,
        after: tuple[datetime, str] | None,
        oldest: bool = False,
    ) -> tuple[Sequence[Row], bool]:
        """One organization's events, latest received first, or oldest first (keyset on
        received_at, id)."""
        beyond, order = (">", "ASC") if oldest else ("<", "DESC")
        rows = await self._db.fetch_all(
            "SELECT * FROM stripe_events WHERE organization_id = :org "
            "AND (CAST(:state AS text) IS NULL OR state = :state) "
            "AND (CAST(:at AS timestamptz) IS NULL "
            f"OR (received_at, event_id) {beyond} (:at, :key)) "
            f"ORDER BY received_at {order}, event_id {order} LIMIT :limit",
            {
                "org": org,
                "state": state,
                "at": after[0] if after else None,
                "key": after[1] if after else "",
                "limit": first + 1,
            },
        )
        return rows[:first], len(rows) > first

    async def count(self, org: str, state: str | None) -> int:
        return int(
            await self._db.fetch_val(
                "SELECT count(*) FROM stripe_events WHERE organization_id = :org "
                "AND (CAST(:state AS text) IS NULL OR state = :state)",
                {"org": org, "state": state},
            )
        )

    async def release(self, org: str, event_id: str) -> None:
        """Give up this delivery's claim after a transient failure: the lease ends now, so
        Stripe's next delivery takes the event over (the row keeps its attempt count)."""
        await self._db.execute(
            "UPDATE stripe_events SET lease_until = now() "
            "WHERE organization_id = :org AND event_id = :event_id AND state = 'processing'",
            {"org": org, "event_id": event_id},
        )

    async def failures(self, limit: int = 100) -> Sequence[Row]:
        """The most recently received events recorded as failed, for an operator."""
        return await self._db.fetch_all(
            "SELECT organization_id, event_id, type, attempts, received_at, error "
            "FROM stripe_events WHERE state = 'failed' ORDER BY received_at DESC LIMIT :limit",
            {"limit": limit},
        )

    async def get(self, org: str, event_id: str) -> Row | None:
        return await self._db.fetch_one(
            "SELECT * FROM stripe_events WHERE organization_id = :org AND event_id = :event_id",
            {"org": org, "event_id": event_id},
        )
