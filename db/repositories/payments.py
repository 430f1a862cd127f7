"""SQL for payments: listing, the per-currency summary, and the state machine's conditional
updates (every status change names the statuses it may leave from and the lease it holds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from db.connection import Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import payments

__all__ = ["PaymentRepository"]


def _lease_end(lease: timedelta) -> Any:
    return sa.func.now() + sa.literal(lease, sa.Interval())


_RELEASED = {
    "operation": None,
    "operation_key": None,
    "operation_amount": None,
    "lease_token": None,
    "lease_until": None,
}


def _totals(*keys: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Count, succeeded count, captured by succeeded payments and refunded, per currency (and
    per ``keys`` first)."""
    c = payments.c
    succeeded = c.status == "succeeded"
    return sa.select(
        *keys,
        c.currency,
        sa.func.count().label("count"),
        sa.func.count().filter(succeeded).label("succeeded_count"),
        sa.func.coalesce(sa.func.sum(c.amount_captured).filter(succeeded), 0).label("succeeded"),
        sa.func.coalesce(sa.func.sum(c.amount_refunded), 0).label("refunded"),
    )


class PaymentRepository(TableRepository):
    table = payments

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        c = payments.c
        if filters.get("id"):
            conditions.append(c.id == filters["id"])
        if filters.get("customer_id"):
            conditions.append(c.customer_id == filters["customer_id"])
        if filters.get("statuses"):
            conditions.append(c.status == any_of(filters["statuses"]))
        if filters.get("currency"):
            conditions.append(c.currency == filters["currency"])
        if filters.get("created_from") is not None:
            conditions.append(c.created_at >= filters["created_from"])
        if filters.get("created_to") is not None:
            conditions.append(c.created_at < filters["created_to"])
        return conditions

    async def get(self, org: str, payment_id: str) -> Row | None:
        """The row and whether its operation lease (if any) has expired, by the database clock."""
        query = sa.select(
            payments, (payments.c.lease_until < sa.func.now()).label("lease_expired")
        ).where(payments.c.organization_id == org, payments.c.id == payment_id)
        return await self._db.fetch_one(query)

    async def begin_operation(
        self,
        org: str,
        payment_id: str,
        *,
        operation: str,
        allowed: Sequence[str],
        token: str,
        key: str,
        lease: timedelta,
        amount: int | None = None,
        customer_id: str | None = None,
    ) -> Row | None:
        """Mark a Stripe call as in flight, if the status allows it and nothing else is (and,
        with ``customer_id``, only on that customer's payment)."""
        query = sa.update(payments).where(
            payments.c.organization_id == org,
            payments.c.id == payment_id,
            payments.c.status == any_of(allowed),
            payments.c.operation.is_(None),
        )
        if customer_id is not None:
            query = query.where(payments.c.customer_id == customer_id)
        query = query.values(
            operation=operation,
            operation_key=key,
            operation_amount=amount,
            lease_token=token,
            lease_until=_lease_end(lease),
            updated_at=sa.func.now(),
        ).returning(*payments.c)
        return await self._db.fetch_one(query)

    async def take_over_operation(
        self, org: str, payment_id: str, *, token: str, key: str, lease: timedelta
    ) -> Row | None:
        """Take an interrupted operation: its lease expired, or it was started under the same
        idempotency key (whose own lease, already taken over, says its first owner is gone)."""
        c = payments.c
        query = (
            sa.update(payments)
            .where(
                c.organization_id == org,
                c.id == payment_id,
                c.operation.is_not(None),
                sa.or_(c.lease_until < sa.func.now(), c.operation_key == key),
            )
            .values(lease_token=token, lease_until=_lease_end(lease), updated_at=sa.func.now())
            .returning(*payments.c)
        )
        return await self._db.fetch_one(query)

    async def finish_operation(
        self, org: str, payment_id: str, *, token: str, from_status: str, values: Mapping[str, Any]
    ) -> Row | None:
        """Record Stripe's answer and end the operation; None if the lease was lost or the status
        moved (the conditional update is the state machine's guard)."""
        query = (
            sa.update(payments)
            .where(
                payments.c.organization_id == org,
                payments.c.id == payment_id,
                payments.c.lease_token == token,
                payments.c.status == from_status,
            )
            .values(**values, **_RELEASED, updated_at=sa.func.now())
            .returning(*payments.c)
        )
        return await self._db.fetch_one(query)

    async def end_operation(self, org: str, payment_id: str, *, token: str) -> Row | None:
        """End an operation that changed nothing at Stripe."""
        query = (
            sa.update(payments)
            .where(
                payments.c.organization_id == org,
                payments.c.id == payment_id,
                payments.c.lease_token == token,
            )
            .values(**_RELEASED, updated_at=sa.func.now())
            .returning(*payments.c)
        )
        return await self._db.fetch_one(query)

    async def abandon_operation(self, org: str, payment_id: str, *, token: str) -> None:
        """Give up an operation whose outcome at Stripe is unknown: keep it marked, expire the
        lease, so the next caller reads Stripe before acting."""
        await self._db.execute(
            sa.update(payments)
            .where(
                payments.c.organization_id == org,
                payments.c.id == payment_id,
                payments.c.lease_token == token,
            )
            .values(lease_token=None, lease_until=sa.func.now() - sa.text("interval '1 second'"))
        )

    async def interrupted(
        self, *, older_than: timedelta, limit: int, org: str | None = None
    ) -> Sequence[Row]:
        """Payments of any organization with a Stripe call still marked whose lease expired
        more than ``older_than`` ago: their request died, or Stripe did not answer and no one
        retried. Oldest lease first."""
        c = payments.c
        query = (
            sa.select(c.organization_id, c.id)
            .where(
                c.operation.is_not(None),
                # Cast: `now() - $1` alone lets PostgreSQL read $1 as a timestamp.
                c.lease_until < sa.func.now() - sa.cast(sa.literal(older_than), sa.Interval()),
                *([c.organization_id == org] if org is not None else []),
            )
            .order_by(c.lease_until)
            .limit(limit)
        )
        return await self._db.fetch_all(query)

    async def orphaned_invoice_charges(
        self, *, older_than: timedelta, limit: int, org: str | None = None
    ) -> Sequence[Row]:
        """Payments an invoice charge created and never confirmed nor linked to its invoice
        (the request died in between), older than ``older_than``."""
        query = (
            "SELECT p.organization_id, p.id FROM payments p "
            "LEFT JOIN invoices i ON i.organization_id = p.organization_id "
            "AND i.id = p.metadata->>'invoice_id' "
            "WHERE p.status = 'requires_confirmation' AND p.operation IS NULL "
            "AND p.metadata ? 'invoice_charge' "
            "AND (i.id IS NULL OR i.payment_id IS DISTINCT FROM p.id) "
            "AND p.updated_at < now() - CAST(:older AS interval) "
            "AND (CAST(:org AS text) IS NULL OR p.organization_id = :org) "
            "ORDER BY p.updated_at LIMIT :limit"
        )
        return await self._db.fetch_all(query, {"older": older_than, "org": org, "limit": limit})

    async def add_refunded(self, org: str, payment_id: str, delta: int) -> None:
        """Move the refunded total; the table's CHECK keeps it within what was captured."""
        await self._db.execute(
            sa.update(payments)
            .where(payments.c.organization_id == org, payments.c.id == payment_id)
            .values(amount_refunded=payments.c.amount_refunded + delta, updated_at=sa.func.now())
        )

    async def summary(self, org: str, filters: Filters) -> Sequence[Row]:
        """Count and totals per currency over everything the filter matches (not one page)."""
        c = payments.c
        query = _totals().where(*self.conditions(org, filters)).group_by(c.currency)
        return await self._db.fetch_all(query.order_by(c.currency))

    async def summaries_by_customer(self, org: str, customer_ids: Sequence[str]) -> Sequence[Row]:
        """``summary`` for each of several customers, in one statement (rows carry
        ``customer_id``)."""
        c = payments.c
        query = (
            _totals(c.customer_id)
            .where(c.organization_id == org, c.customer_id == any_of(customer_ids))
            .group_by(c.customer_id, c.currency)
            .order_by(c.customer_id, c.currency)
        )
        return await self._db.fetch_all(query)

    async def pages_by_customer(
        self,
        org: str,
        customer_ids: Sequence[str],
        *,
        first: int,
        after: str | None,
        newest: bool = False,
    ) -> Sequence[Row]:
        """For each customer, its first ``first + 1`` payments after ``after`` (in id order,
        or newest first): one statement."""
        c = payments.c
        order = c.id.desc() if newest else c.id
        number = sa.func.row_number().over(partition_by=c.customer_id, order_by=order)
        inner = sa.select(payments, number.label("position")).where(
            c.organization_id == org, c.customer_id == any_of(customer_ids)
        )
        if after is not None:
            inner = inner.where(c.id < after if newest else c.id > after)
        ranked = inner.subquery()
        query = (
            sa.select(ranked)
            .where(ranked.c.position <= first + 1)
            .order_by(ranked.c.customer_id, ranked.c.position)
        )
        return await self._db.fetch_all(query)
