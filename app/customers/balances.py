"""Customers' credit balances: credit left over from credit notes, credit invoices and unused
time, per currency, spent first by the customer's next invoices.

The balance is the ``customer_credit`` account of the ledger (``app.ledger``), which keeps it
materialized, one row per customer and currency; whoever spends it locks that row first, and the
database refuses a negative balance, so two invoices finalized at once cannot spend the same
credit.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.money import Money
from db.connection import Database
from db.repositories.balances import BalanceRepository

__all__ = ["CreditBalances"]


class CreditBalances:
    def __init__(self, db: Database) -> None:
        self._balances = BalanceRepository(db)

    async def lock(self, org: str, customer_id: str, currency: str) -> int:
        """The customer's credit in ``currency``, locked until the transaction ends."""
        return await self._balances.lock(org, customer_id, currency)

    async def of_customers(self, org: str, customer_ids: Sequence[str]) -> list[list[Money]]:
        """Each customer's non-zero balances, one per currency, aligned with ``customer_ids``."""
        grouped = await self._balances.by_customer_ids(org, customer_ids)
        return [
            [Money(row["balance"], row["currency"]) for row in grouped[c] if row["balance"]]
            for c in customer_ids
        ]
