"""Ledger entries (append-only) and the customer credit balances they keep materialized."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from db.connection import Database, Row

__all__ = ["LedgerRepository"]

_INSERT = """
INSERT INTO ledger_entries
    (organization_id, id, transaction_id, customer_id, currency, account, amount, kind,
     invoice_id, payment_id, refund_id, credit_note_id, subscription_id, occurred_at)
SELECT :org, e.id, :transaction_id, :customer_id, :currency, e.account, e.amount, :kind,
       :invoice_id, e.payment_id, :refund_id, :credit_note_id, :subscription_id,
       coalesce(CAST(:occurred_at AS timestamptz), now())
FROM unnest(CAST(:ids AS text[]), CAST(:accounts AS text[]), CAST(:amounts AS bigint[]),
            CAST(:payment_ids AS text[])) AS e(id, account, amount, payment_id)
"""

# The customer_credit account's balance, materialized; a negative result violates the table's
# CHECK (balance >= 0), so credit cannot be spent twice even by transactions that did not lock.
# PostgreSQL checks an upsert's proposed row before the conflict, so spending (which needs an
# existing row) is a plain UPDATE.
_CREDIT_ADD = """
INSERT INTO customer_balances AS b (organization_id, customer_id, currency, balance)
VALUES (:org, :customer_id, :currency, :delta)
ON CONFLICT (organization_id, customer_id, currency)
DO UPDATE SET balance = b.balance + EXCLUDED.balance, updated_at = now()
"""
_CREDIT_SPEND = """
UPDATE customer_balances SET balance = balance + :delta, updated_at = now()
WHERE organization_id = :org AND customer_id = :customer_id AND currency = :currency
RETURNING balance
"""

_BY_INVOICE = """
SELECT account, kind, payment_id IS NOT NULL AS tagged, sum(amount)::bigint AS amount
FROM ledger_entries
WHERE organization_id = :org AND invoice_id = :invoice_id
GROUP BY account, kind, payment_id IS NOT NULL
"""

_BY_PAYMENT = """
SELECT account, kind, sum(amount)::bigint AS amount
FROM ledger_entries
WHERE organization_id = :org AND payment_id = :payment_id
GROUP BY account, kind
"""

_CREDITED_BY_PAYMENTS = """
SELECT payment_id, -sum(amount)::bigint AS credited
FROM ledger_entries
WHERE organization_id = :org AND payment_id = ANY(CAST(:payment_ids AS text[]))
  AND account = 'customer_credit' AND kind = 'credit_note'
GROUP BY payment_id
"""

_INVOICE_ENTRIES = """
SELECT customer_id, currency, account, payment_id, subscription_id, sum(amount)::bigint AS amount
FROM ledger_entries
WHERE organization_id = :org AND invoice_id = :invoice_id
GROUP BY customer_id, currency, account, payment_id, subscription_id
HAVING sum(amount) <> 0
"""

_PAGE = """
SELECT id, transaction_id, customer_id, currency, account, amount, kind, invoice_id, payment_id,
       refund_id, credit_note_id, subscription_id, occurred_at
FROM ledger_entries
WHERE organization_id = :org AND customer_id = :customer_id AND currency = :currency
  AND account = ANY(CAST(:accounts AS text[]))
  AND occurred_at >= coalesce(CAST(:since AS timestamptz), '-infinity')
  AND occurred_at < coalesce(CAST(:until AS timestamptz), 'infinity')
  AND id > coalesce(CAST(:after AS text), '')
ORDER BY id
LIMIT :limit
"""

_COUNT = """
SELECT count(*) FROM ledger_entries
WHERE organization_id = :org AND customer_id = :customer_id AND currency = :currency
  AND account = ANY(CAST(:accounts AS text[]))
  AND occurred_at >= coalesce(CAST(:since AS timestamptz), '-infinity')
  AND occurred_at < coalesce(CAST(:until AS timestamptz), 'infinity')
"""

_TOTALS = """
SELECT account, sum(amount)::bigint AS amount
FROM ledger_entries
WHERE organization_id = :org AND customer_id = :customer_id AND currency = :currency
  AND occurred_at < coalesce(CAST(:until AS timestamptz), 'infinity')
GROUP BY account
"""


class LedgerRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(
        self,
        org: str,
        *,
        transaction_id: str,
        customer_id: str,
        currency: str,
        kind: str,
        entries: Sequence[tuple[str, str, int, str | None]],
        invoice_id: str | None,
        refund_id: str | None,
        credit_note_id: str | None,
        subscription_id: str | None,
        occurred_at: datetime | None,
    ) -> None:
        """Insert one transaction's entries, given as (id, account, amount, payment id)."""
        await self._db.execute(
            _INSERT,
            {
                "org": org,
                "transaction_id": transaction_id,
                "customer_id": customer_id,
                "currency": currency,
                "kind": kind,
                "invoice_id": invoice_id,
                "refund_id": refund_id,
                "credit_note_id": credit_note_id,
                "subscription_id": subscription_id,
                "occurred_at": occurred_at,
                "ids": [e[0] for e in entries],
                "accounts": [e[1] for e in entries],
                "amounts": [e[2] for e in entries],
                "payment_ids": [e[3] for e in entries],
            },
        )

    async def add_credit(self, org: str, customer_id: str, currency: str, delta: int) -> None:
        """Move the materialized credit balance by ``delta`` (negative to spend)."""
        values = {"org": org, "customer_id": customer_id, "currency": currency, "delta": delta}
        if delta > 0:
            await self._db.execute(_CREDIT_ADD, values)
        elif await self._db.fetch_one(_CREDIT_SPEND, values) is None:
            raise ValueError(f"customer {customer_id} has no {currency} credit to spend")

    async def by_invoice(self, org: str, invoice_id: str) -> Sequence[Row]:
        return await self._db.fetch_all(_BY_INVOICE, {"org": org, "invoice_id": invoice_id})

    async def by_payment(self, org: str, payment_id: str) -> Sequence[Row]:
        return await self._db.fetch_all(_BY_PAYMENT, {"org": org, "payment_id": payment_id})

    async def credited_by_payments(self, org: str, payment_ids: Sequence[str]) -> dict[str, int]:
        rows = await self._db.fetch_all(
            _CREDITED_BY_PAYMENTS, {"org": org, "payment_ids": list(payment_ids)}
        )
        return {row["payment_id"]: int(row["credited"]) for row in rows}

    async def invoice_entries(self, org: str, invoice_id: str) -> Sequence[Row]:
        """The invoice's net position per (customer, currency, account, payment, subscription)."""
        return await self._db.fetch_all(_INVOICE_ENTRIES, {"org": org, "invoice_id": invoice_id})

    async def page(
        self,
        org: str,
        customer_id: str,
        currency: str,
        *,
        accounts: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        after: str | None,
        limit: int,
    ) -> Sequence[Row]:
        """Entries in id order (ids sort by time), after the entry id ``after``."""
        values = {
            "org": org,
            "customer_id": customer_id,
            "currency": currency,
            "accounts": list(accounts),
            "since": since,
            "until": until,
            "after": after,
            "limit": limit,
        }
        return await self._db.fetch_all(_PAGE, values)

    async def count(
        self,
        org: str,
        customer_id: str,
        currency: str,
        *,
        accounts: Sequence[str],
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        values = {
            "org": org,
            "customer_id": customer_id,
            "currency": currency,
            "accounts": list(accounts),
            "since": since,
            "until": until,
        }
        return int(await self._db.fetch_val(_COUNT, values))

    async def totals(
        self, org: str, customer_id: str, currency: str, *, until: datetime | None
    ) -> Sequence[Row]:
        return await self._db.fetch_all(
            _TOTALS,
            {"org": org, "customer_id": customer_id, "currency": currency, "until": until},
        )
