"""Customers' credit balances: credit left over from credit notes and credit invoices, per
currency, spent first by the customer's next invoices.

Every change is one ledger row plus an update of the running balance, in the caller's
transaction; the balance row is locked by whoever spends it, and the database refuses a negative
balance, so two invoices finalized at once cannot spend the same credit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from app.ids import new_id
from app.money import Money
from db.connection import Database
from db.repositories.balances import BalanceRepository

__all__ = ["BalanceChange", "CreditBalances"]


class BalanceChange(enum.Enum):
    CREDIT_NOTE = "credit_note"  # credit left over from a credit note
    CREDIT_INVOICE = "credit_invoice"  # an invoice whose total is negative
    APPLIED_TO_INVOICE = "applied_to_invoice"  # spent on an invoice at finalization
    INVOICE_VOIDED = "invoice_voided"  # given back when that invoice is voided


class CreditBalances:
    def __init__(self, db: Database) -> None:
        self._balances = BalanceRepository(db)

    async def lock(self, org: str, customer_id: str, currency: str) -> int:
        """The customer's credit in ``currency``, locked until the transaction ends."""
        return await self._balances.lock(org, customer_id, currency)

    async def change(
        self,
        org: str,
        customer_id: str,
        currency: str,
        amount: int,
        kind: BalanceChange,
        *,
        invoice_id: str | None = None,
        credit_note_id: str | None = None,
    ) -> int:
        """Add ``amount`` (negative to spend); returns the new balance."""
        return await self._balances.change(
            org,
            customer_id,
            currency,
            delta=amount,
            ledger_id=new_id("cbt"),
            kind=kind.value,
            invoice_id=invoice_id,
            credit_note_id=credit_note_id,
        )

    async def of_customers(self, org: str, customer_ids: Sequence[str]) -> list[list[Money]]:
        """Each customer's non-zero balances, one per currency, aligned with ``customer_ids``."""
        grouped = await self._balances.by_customer_ids(org, customer_ids)
        return [
            [Money(row["balance"], row["currency"]) for row in grouped[c] if row["balance"]]
            for c in customer_ids
        ]
