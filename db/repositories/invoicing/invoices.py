"""SQL for invoices and their lines: listing, per-customer pages, the state machine's
conditional updates, and line batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import invoice_lines, invoices

__all__ = ["InvoiceLineRepository", "InvoiceRepository"]

_c = invoices.c


class InvoiceRepository(TableRepository):
    table = invoices

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        if filters.get("id"):
            conditions.append(_c.id == filters["id"])
        if filters.get("customer_id"):
            conditions.append(_c.customer_id == filters["customer_id"])
        if filters.get("subscription_id"):
            conditions.append(_c.subscription_id == filters["subscription_id"])
        if filters.get("statuses"):
            conditions.append(_c.status == any_of(filters["statuses"]))
        if filters.get("created_from") is not None:
            conditions.append(_c.created_at >= filters["created_from"])
        if filters.get("created_to") is not None:
            conditions.append(_c.created_at < filters["created_to"])
        return conditions

    async def by_subscription_ids(self, org: str, subscription_ids: Sequence[str]) -> list[Row]:
        """Every invoice of these subscriptions, oldest first, in one statement."""
        query = (
            sa.select(invoices)
            .where(
                _c.organization_id == org,
                _c.subscription_id == any_of(sorted(set(subscription_ids))),
            )
            .order_by(_c.id)
        )
        return list(await self._db.fetch_all(query))

    async def paid_by(self, org: str, payment_id: str) -> Row | None:
        """The invoice this payment was made for (its ``payment_id``), if any."""
        query = sa.select(_c.id, _c.status, _c.subscription_id).where(
            _c.organization_id == org, _c.payment_id == payment_id
        )
        return await self._db.fetch_one(query)

    async def lock_in(self, org: str, invoice_id: str, statuses: Sequence[str]) -> Row | None:
        """The row locked until the end of the transaction, if it is in one of ``statuses``."""
        query = (
            sa.select(invoices)
            .where(_c.organization_id == org, _c.id == invoice_id, _c.status == any_of(statuses))
            .with_for_update()
        )
        return await self._db.fetch_one(query)

    async def transition(
        self,
        org: str,
        invoice_id: str,
        *,
        allowed: Sequence[str],
        values: Mapping[str, Any],
        idle: bool = False,
    ) -> Row | None:
        """Change the row only if its status is one of ``allowed`` (the state machine's guard)
        and, with ``idle``, no charge of it is in flight; None otherwise (or when the invoice
        does not exist)."""
        query = (
            sa.update(invoices)
            .where(_c.organization_id == org, _c.id == invoice_id, _c.status == any_of(allowed))
            .values(**values, updated_at=sa.func.now())
            .returning(*invoices.c)
        )
        if idle:
            query = query.where(_c.payment_lease_token.is_(None))
        return await self._db.fetch_one(query)

    async def begin_payment(
        self, org: str, invoice_id: str, *, token: str, lease: timedelta, allowed: Sequence[str]
    ) -> Row | None:
        """Take the invoice's charge lease, so that only one charge runs per invoice. ``token``
        is derived from the caller's idempotency key: a retry of an interrupted charge takes its
        own lease back at once; anyone else waits for the lease to expire."""
        query = (
            sa.update(invoices)
            .where(
                _c.organization_id == org,
                _c.id == invoice_id,
                _c.status == any_of(allowed),
                _c.amount_due > _c.amount_paid,
                sa.or_(
                    _c.payment_lease_token.is_(None),
                    _c.payment_lease_token == token,
                    _c.payment_lease_until < sa.func.now(),
                ),
            )
            .values(
                payment_lease_token=token,
                payment_lease_until=sa.func.now() + sa.literal(lease, sa.Interval()),
                updated_at=sa.func.now(),
            )
            .returning(*invoices.c)
        )
        return await self._db.fetch_one(query)

    async def set_payment(self, org: str, invoice_id: str, *, token: str, payment_id: str) -> None:
        """Link the charge's payment to the invoice (counting an attempt when it is new)."""
        await self._db.execute(
            sa.update(invoices)
            .where(
                _c.organization_id == org,
                _c.id == invoice_id,
                _c.payment_lease_token == token,
                _c.payment_id.is_distinct_from(payment_id),
            )
            .values(
                payment_id=payment_id,
                payment_attempts=_c.payment_attempts + 1,
                updated_at=sa.func.now(),
            )
        )

    async def abandoned_charges(
        self,
        *,
        allowed: Sequence[str],
        older_than: timedelta,
        limit: int,
        org: str | None = None,
    ) -> Sequence[Row]:
        """Invoices of any organization still owing, whose charge lease expired more than
        ``older_than`` ago: the request charging them died. Oldest lease first."""
        query = (
            sa.select(_c.organization_id, _c.id, _c.payment_lease_token)
            .where(
                _c.payment_lease_token.is_not(None),
                # Cast: `now() - $1` alone lets PostgreSQL read $1 as a timestamp.
                _c.payment_lease_until
                < sa.func.now() - sa.cast(sa.literal(older_than), sa.Interval()),
                _c.status == any_of(allowed),
                _c.amount_due > _c.amount_paid,
                *([_c.organization_id == org] if org is not None else []),
            )
            .order_by(_c.payment_lease_until)
            .limit(limit)
        )
        return await self._db.fetch_all(query)

    async def end_payment(
        self,
        org: str,
        invoice_id: str,
        *,
        token: str,
        values: Mapping[str, Any],
        allowed: Sequence[str] | None = None,
    ) -> Row | None:
        """Record a charge's outcome and release the lease, if this caller still holds it (and,
        with ``allowed``, the status is one of them)."""
        query = (
            sa.update(invoices)
            .where(
                _c.organization_id == org,
                _c.id == invoice_id,
                _c.payment_lease_token == token,
            )
            .values(
                **values,
                payment_lease_token=None,
                payment_lease_until=None,
                updated_at=sa.func.now(),
            )
            .returning(*invoices.c)
        )
        if allowed is not None:
            query = query.where(_c.status == any_of(allowed))
        return await self._db.fetch_one(query)

    async def pages_by_customer(
        self,
        org: str,
        customer_ids: Sequence[str],
        *,
        first: int,
        after: str | None,
        statuses: Sequence[str] | None,
        newest: bool = False,
    ) -> Sequence[Row]:
        """For each customer, its first ``first + 1`` invoices after ``after`` (in id order,
        or newest first): one statement."""
        order = _c.id.desc() if newest else _c.id
        number = sa.func.row_number().over(partition_by=_c.customer_id, order_by=order)
        inner = sa.select(invoices, number.label("position")).where(
            _c.organization_id == org, _c.customer_id == any_of(sorted(set(customer_ids)))
        )
        if after is not None:
            inner = inner.where(_c.id < after if newest else _c.id > after)
        if statuses:
            inner = inner.where(_c.status == any_of(statuses))
        ranked = inner.subquery()
        query = (
            sa.select(ranked)
            .where(ranked.c.position <= first + 1)
            .order_by(ranked.c.customer_id, ranked.c.position)
        )
        return await self._db.fetch_all(query)

    async def counts_by_customer(
        self, org: str, customer_ids: Sequence[str], statuses: Sequence[str] | None
    ) -> dict[str, int]:
        query = (
            sa.select(_c.customer_id, sa.func.count().label("count"))
            .where(_c.organization_id == org, _c.customer_id == any_of(sorted(set(customer_ids))))
            .group_by(_c.customer_id)
        )
        if statuses:
            query = query.where(_c.status == any_of(statuses))
        return {row["customer_id"]: int(row["count"]) for row in await self._db.fetch_all(query)}


class InvoiceLineRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_invoice_ids(self, org: str, invoice_ids: Sequence[str]) -> dict[str, list[Row]]:
        """Every line of the given invoices (with the invoice's currency) in one statement,
        grouped and in order."""
        line = invoice_lines.c
        query = (
            sa.select(invoice_lines, _c.currency)
            .join(
                invoices,
                sa.and_(_c.organization_id == line.organization_id, _c.id == line.invoice_id),
            )
            .where(line.organization_id == org, line.invoice_id == any_of(sorted(set(invoice_ids))))
            .order_by(line.invoice_id, line.position)
        )
        grouped: dict[str, list[Row]] = {i: [] for i in invoice_ids}
        for row in await self._db.fetch_all(query):
            grouped[row["invoice_id"]].append(row)
        return grouped

    async def by_ids(self, org: str, ids: Sequence[str]) -> dict[str, Row]:
        """Lines by their own ids (with the invoice's currency and customer)."""
        line = invoice_lines.c
        query = (
            sa.select(invoice_lines, _c.currency, _c.customer_id)
            .join(
                invoices,
                sa.and_(_c.organization_id == line.organization_id, _c.id == line.invoice_id),
            )
            .where(line.organization_id == org, line.id == any_of(sorted(set(ids))))
        )
        return {row["id"]: row for row in await self._db.fetch_all(query)}

    async def replace(self, org: str, invoice_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace every line of a draft (one DELETE and one multi-row INSERT)."""
        await self._db.execute(
            sa.delete(invoice_lines).where(
                invoice_lines.c.organization_id == org, invoice_lines.c.invoice_id == invoice_id
            )
        )
        if rows:
            await self._db.execute(pg_insert(invoice_lines).values(list(rows)))
