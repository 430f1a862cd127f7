"""SQL for refunds: the committed amount of a payment, batch loads by payment, and the
conditional updates of the refund state machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from db.connection import Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import refunds

__all__ = ["COMMITTED", "RefundRepository"]

# Statuses whose amount counts against what is still refundable.
COMMITTED = ("pending_approval", "pending", "succeeded")


class RefundRepository(TableRepository):
    table = refunds

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        c = refunds.c
        for name in ("id", "payment_id", "customer_id"):
            if filters.get(name):
                conditions.append(c[name] == filters[name])
        if filters.get("statuses"):
            conditions.append(c.status == any_of(filters["statuses"]))
        return conditions

    async def get(self, org: str, refund_id: str) -> Row | None:
        query = sa.select(refunds, (refunds.c.lease_until < sa.func.now()).label("lease_expired"))
        return await self._db.fetch_one(
            query.where(refunds.c.organization_id == org, refunds.c.id == refund_id)
        )

    async def committed_amount(self, org: str, payment_id: str) -> int:
        """Requested, in-flight and succeeded refunds of a payment (call under its row lock)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(
            refunds.c.organization_id == org,
            refunds.c.payment_id == payment_id,
            refunds.c.status == any_of(COMMITTED),
        )
        return int(await self._db.fetch_val(query))

    async def direct_committed_amount(self, org: str, payment_id: str) -> int:
        """Like ``committed_amount``, only the refunds no credit note made."""
        query = sa.select(sa.func.coalesce(sa.func.sum(refunds.c.amount), 0)).where(
            refunds.c.organization_id == org,
            refunds.c.payment_id == payment_id,
            refunds.c.status == any_of(COMMITTED),
            refunds.c.credit_note_id.is_(None),
        )
        return int(await self._db.fetch_val(query))

    async def of_credit_note(self, org: str, credit_note_id: str) -> Row | None:
        query = sa.select(refunds).where(
            refunds.c.organization_id == org, refunds.c.credit_note_id == credit_note_id
        )
        return await self._db.fetch_one(query)

    async def by_payment_ids(self, org: str, payment_ids: Sequence[str]) -> Sequence[Row]:
        query = (
            sa.select(refunds)
            .where(refunds.c.organization_id == org, refunds.c.payment_id == any_of(payment_ids))
            .order_by(refunds.c.payment_id, refunds.c.id)
        )
        return await self._db.fetch_all(query)

    async def transition(
        self,
        org: str,
        refund_id: str,
        *,
        from_statuses: Sequence[str],
        values: Mapping[str, Any],
        token: str | None = None,
    ) -> Row | None:
        """Change a refund only if it is still in one of ``from_statuses`` (and, with ``token``,
        only while that lease is held). Ends the lease unless ``values`` sets one."""
        c = refunds.c
        query = sa.update(refunds).where(
            c.organization_id == org, c.id == refund_id, c.status == any_of(from_statuses)
        )
        if token is not None:
            query = query.where(c.lease_token == token)
        released = {"lease_token": None, "lease_until": None}
        return await self._db.fetch_one(
            query.values(**{**released, **values}, updated_at=sa.func.now()).returning(*refunds.c)
        )

    async def claim_submission(
        self, org: str, refund_id: str, *, token: str, key: str, lease: timedelta
    ) -> Row | None:
        """Lease a refund that is released to Stripe but not yet known there: free, expired, or
        held under the same Stripe idempotency key (a retry of the same request)."""
        c = refunds.c
        query = (
            sa.update(refunds)
            .where(
                c.organization_id == org,
                c.id == refund_id,
                c.status == "pending",
                c.stripe_refund_id.is_(None),
                sa.or_(
                    c.lease_token.is_(None),
                    c.lease_until < sa.func.now(),
                    c.stripe_idempotency_key == key,
                ),
            )
            .values(
                lease_token=token,
                lease_until=sa.func.now() + sa.literal(lease, sa.Interval()),
                updated_at=sa.func.now(),
            )
            .returning(*refunds.c)
        )
        return await self._db.fetch_one(query)

    async def unsent(
        self, *, older_than: timedelta, limit: int, org: str | None = None
    ) -> Sequence[Row]:
        """Refunds of any organization released to Stripe but not known there, created more
        than ``older_than`` ago and not leased by a live request: their request died or
        Stripe did not answer. Oldest first."""
        c = refunds.c
        query = (
            sa.select(c.organization_id, c.id)
            .where(
                c.status == "pending",
                c.stripe_refund_id.is_(None),
                sa.or_(c.lease_until.is_(None), c.lease_until < sa.func.now()),
                # Cast: `now() - $1` alone lets PostgreSQL read $1 as a timestamp.
                c.created_at < sa.func.now() - sa.cast(sa.literal(older_than), sa.Interval()),
                *([c.organization_id == org] if org is not None else []),
            )
            .order_by(c.created_at)
            .limit(limit)
        )
        return await self._db.fetch_all(query)

    async def abandon(self, org: str, refund_id: str, *, token: str) -> None:
        """Outcome at Stripe unknown: expire the lease so the next caller looks there first."""
        await self._db.execute(
            sa.update(refunds)
            .where(
                refunds.c.organization_id == org,
                refunds.c.id == refund_id,
                refunds.c.lease_token == token,
            )
            .values(lease_token=None, lease_until=sa.func.now() - sa.text("interval '1 second'"))
        )
