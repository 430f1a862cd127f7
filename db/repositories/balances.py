"""SQL for customers' credit balances (one row per customer and currency), the materialized
balance of their ledger account (written by ``db.repositories.ledger``)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from db.connection import Database, Row
from db.repositories.base import any_of
from db.tables import customer_balances

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

    async def by_customer_ids(self, org: str, customer_ids: Sequence[str]) -> dict[str, list[Row]]:
        query = (
            sa.select(customer_balances)
            .where(_b.organization_id == org, _b.customer_id == any_of(sorted(set(customer_ids))))
            .order_by(_b.customer_id, _b.currency)
        )
        grouped: dict[str, list[Row]] = {i: [] for i in customer_ids}
        for row in await self._db.fetch_all(query):
            grouped[row["customer_id"]].append(row)
        return grouped
