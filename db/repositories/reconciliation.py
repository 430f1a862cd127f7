"""SQL for reconciliation with Stripe: the local records that may disagree with Stripe, and the
log of repairs (db/migrations/0021_stripe_event_replay.sql)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from db.connection import Database, Row

__all__ = ["ReconciliationRepository"]

# Payments a PaymentIntent exists for, still short of a final status, created within the window,
# untouched for `settle` (a live request is not raced) and not leased by one.
_PAYMENTS = """
SELECT organization_id, id, status, stripe_payment_intent_id FROM payments
WHERE status NOT IN ('succeeded', 'canceled')
  AND stripe_payment_intent_id IS NOT NULL
  AND created_at > now() - CAST(:window AS interval)
  AND updated_at < now() - CAST(:settle AS interval)
  AND (lease_until IS NULL OR lease_until < now())
  AND (CAST(:org AS text) IS NULL OR organization_id = :org)
ORDER BY created_at
LIMIT :limit
"""

# Refunds sent to Stripe and still pending there as far as we know.
_REFUNDS = """
SELECT organization_id, id, status FROM refunds
WHERE status = 'pending'
  AND stripe_refund_id IS NOT NULL
  AND created_at > now() - CAST(:window AS interval)
  AND updated_at < now() - CAST(:settle AS interval)
  AND (lease_until IS NULL OR lease_until < now())
  AND (CAST(:org AS text) IS NULL OR organization_id = :org)
ORDER BY created_at
LIMIT :limit
"""


class ReconciliationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_payments(
        self, *, window: timedelta, settle: timedelta, limit: int, org: str | None
    ) -> Sequence[Row]:
        return await self._db.fetch_all(_PAYMENTS, _args(window, settle, limit, org))

    async def pending_refunds(
        self, *, window: timedelta, settle: timedelta, limit: int, org: str | None
    ) -> Sequence[Row]:
        return await self._db.fetch_all(_REFUNDS, _args(window, settle, limit, org))

    async def record(self, values: Mapping[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO reconciliation_repairs (organization_id, id, kind, object_id, "
            "status_before, status_after) VALUES (:organization_id, :id, :kind, :object_id, "
            ":status_before, :status_after)",
            dict(values),
        )

    async def totals(self) -> Sequence[Row]:
        """Repairs so far per kind (for /metrics)."""
        return await self._db.fetch_all(
            "SELECT kind, count(*) AS repairs FROM reconciliation_repairs GROUP BY kind"
        )


def _args(window: timedelta, settle: timedelta, limit: int, org: str | None) -> dict[str, Any]:
    return {"window": window, "settle": settle, "limit": limit, "org": org}
