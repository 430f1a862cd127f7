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

# What a subscription's customer has paid for it and not been given back, in one statement:
# card money received for its invoices and the credit balance they spent, less the credit its
# invoices gave to the balance (credit invoices, credit notes, credit notes' refunds honoured as
# balance; voids reverse their entries), less the refunds of its invoices' payments that
# succeeded, are in flight or await approval, less the credits pending for its next invoice
# (in full: the charges pending beside them are not paid yet, and may be cut short).
_ROOM = """
  (SELECT coalesce(sum(e.amount), 0)
   FROM ledger_entries e
   JOIN invoices i ON i.organization_id = e.organization_id AND i.id = e.invoice_id
   WHERE e.organization_id = :org AND i.subscription_id = {sub}
     AND ((e.account = 'cash' AND e.kind = 'payment') OR e.account = 'customer_credit'))
  - (SELECT coalesce(sum(r.amount), 0)
     FROM refunds r
     JOIN invoices i ON i.organization_id = r.organization_id AND i.payment_id = r.payment_id
     WHERE r.organization_id = :org AND i.subscription_id = {sub}
       AND r.status IN ('pending_approval', 'pending', 'succeeded'))
  + (SELECT coalesce(sum(least(p.amount, 0)), 0)
     FROM subscription_pending_lines p
     WHERE p.organization_id = :org AND p.subscription_id = {sub}
       AND p.taken_by IS NULL)
"""
_SUBSCRIPTION_ROOM = "SELECT" + _ROOM.format(sub=":subscription_id") + "AS room"
# Per payment: the card money credit notes gave to the balance, and the room of the
# subscription whose invoice it paid (NULL for other payments).
_REFUND_LIMITS = (
    """SELECT p.id AS payment_id,
  coalesce((SELECT -sum(c.amount) FROM ledger_entries c
            WHERE c.organization_id = :org AND c.payment_id = p.id
              AND c.account = 'customer_credit' AND c.kind = 'credit_note'), 0)::bigint
    AS credited,
  CASE WHEN paid.subscription_id IS NULL THEN NULL ELSE"""
    + _ROOM.format(sub="paid.subscription_id")
    + """END::bigint AS room
FROM unnest(CAST(:payment_ids AS text[])) AS p(id)
LEFT JOIN invoices paid
  ON paid.organization_id = :org AND paid.payment_id = p.id
 AND paid.subscription_id IS NOT NULL"""
)

_BY_PAYMENT = """
SELECT account, kind, sum(amount)::bigint AS amount
FROM ledger_entries
WHERE organization_id = :org AND payment_id = :payment_id
GROUP BY account, kind
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

# The same, newest first: a backward page, turned around by the caller.
_BY_IDS = """
SELECT id, transaction_id, customer_id, currency, account, amount, kind, invoice_id, payment_id,
       refund_id, credit_note_id, subscription_id, occurred_at
FROM ledger_entries
WHERE organization_id = :org AND id = ANY(CAST(:ids AS text[]))
"""

_PAGE_NEWEST = _PAGE.replace(
    "id > coalesce(CAST(:after AS text), '')", "id < coalesce(CAST(:after AS text), '~')"
).replace("ORDER BY id", "ORDER BY id DESC")

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

    async def subscription_room(self, org: str, subscription_id: str) -> int:
        """Read under a transaction-scoped advisory lock on the subscription, so the roads
        that give its money back (refunds, credit notes, credit for unused time) take turns."""
        await self._db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))",
            {"key": f"subscription-room:{org}:{subscription_id}"},
        )
        row = await self._db.fetch_one(
            _SUBSCRIPTION_ROOM, {"org": org, "subscription_id": subscription_id}
        )
        assert row is not None
        return int(row["room"])

    async def by_payment(self, org: str, payment_id: str) -> Sequence[Row]:
        return await self._db.fetch_all(_BY_PAYMENT, {"org": org, "payment_id": payment_id})

    async def refund_limits(self, org: str, payment_ids: Sequence[str]) -> dict[str, Row]:
        """Per payment: ``credited`` (card money credit notes gave to the balance) and
        ``room`` (its subscription's, or None), in one statement, no lock (for display)."""
        rows = await self._db.fetch_all(
            _REFUND_LIMITS, {"org": org, "payment_ids": list(payment_ids)}
        )
        return {row["payment_id"]: row for row in rows}

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
        newest: bool = False,
    ) -> Sequence[Row]:
        """Entries in id order (ids sort by time), after the entry id ``after`` (or newest
        first, before it)."""
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
        return await self._db.fetch_all(_PAGE_NEWEST if newest else _PAGE, values)

    async def by_ids(self, org: str, ids: Sequence[str]) -> dict[str, Row]:
        rows = await self._db.fetch_all(_BY_IDS, {"org": org, "ids": sorted(set(ids))})
        return {row["id"]: row for row in rows}

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
