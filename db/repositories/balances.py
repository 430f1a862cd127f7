"""SQL for customers' credit balances (one row per customer and currency) and their ledger."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import ClauseElement

from db.connection import Database, Row
from db.tables import customer_balance_transactions, customer_balances

__all__ = ["BalanceRepository"]

_b = customer_balances.c


class BalanceRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lock(self, org: str, customer_id: str, currency: str) -> int:
        """The balance, locked until the end of the transaction (0 when there is none yet)."""
        query = (
            sa.select(_b.balance)
            .where(
                _b.organization_id == org, _b.customer_id == customer_id, _b.currency == currency
            )
            .with_for_update()
        )
        value = await self._db.fetch_val(query)
        return int(value or 0)

    async def change(
        self,
        org: str,
        customer_id: str,
        currency: str,
        *,
        delta: int,
        ledger_id: str,
        kind: str,
        invoice_id: str | None = None,
        credit_note_id: str | None = None,
    ) -> int:
        """Add ``delta`` (negative to spend) and record it in the ledger; returns the new
        balance. The table's CHECK refuses a balance below zero."""
        # PostgreSQL checks an upsert's proposed row before the conflict, so spending (which
        # needs an existing row) is a plain UPDATE.
        query: ClauseElement = (
            sa.update(customer_balances)
            .where(
                _b.organization_id == org, _b.customer_id == customer_id, _b.currency == currency
            )
            .values(balance=_b.balance + delta, updated_at=sa.func.now())
            .returning(_b.balance)
        )
        if delta > 0:
            query = (
                pg_insert(customer_balances)
                .values(
                    organization_id=org, customer_id=customer_id, currency=currency, balance=delta
                )
                .on_conflict_do_update(
                    index_elements=[_b.organization_id, _b.customer_id, _b.currency],
                    set_={"balance": _b.balance + delta, "updated_at": sa.func.now()},
                )
                .returning(_b.balance)
            )
        balance = int(await self._db.fetch_val(query))
        await self._db.execute(
            pg_insert(customer_balance_transactions).values(
                organization_id=org,
                id=ledger_id,
                customer_id=customer_id,
                currency=currency,
                amount=delta,
                balance_after=balance,
                kind=kind,
                invoice_id=invoice_id,
                credit_note_id=credit_note_id,
            )
        )
        return balance

    async def by_customer_ids(self, org: str, customer_ids: Sequence[str]) -> dict[str, list[Row]]:
        query = (
            sa.select(customer_balances)
            .where(_b.organization_id == org, _b.customer_id.in_(sorted(set(customer_ids))))
            .order_by(_b.customer_id, _b.currency)
        )
        grouped: dict[str, list[Row]] = {i: [] for i in customer_ids}
        for row in await self._db.fetch_all(query):
            grouped[row["customer_id"]].append(row)
        return grouped
