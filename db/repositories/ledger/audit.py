"""The invariants ``billing verify`` checks, one query each over the whole database (or one
organization): every row a query returns is a violation. Documents made before the ledger
existed (migration 0014) carry no entries and are left out of the checks that need them."""

from __future__ import annotations

from collections.abc import Sequence

from db.connection import Database, Row

__all__ = ["CHECKS", "LedgerAudit"]

# Documents newer than this have their ledger entries.
_OPENED = "(SELECT applied_at FROM schema_migrations WHERE version = 14)"

CHECKS: dict[str, tuple[str, str]] = {
    "transactions balance": (
        "every ledger transaction sums to zero in each currency",
        """
        SELECT organization_id, transaction_id, currency, sum(amount) AS off
        FROM ledger_entries WHERE organization_id LIKE :org
        GROUP BY organization_id, transaction_id, currency HAVING sum(amount) <> 0
        """,
    ),
    "credit balances": (
        "each customer's credit balance equals the sum of its customer_credit entries",
        """
        SELECT coalesce(b.organization_id, e.organization_id) AS organization_id,
               coalesce(b.customer_id, e.customer_id) AS customer_id,
               coalesce(b.currency, e.currency) AS currency,
               coalesce(b.balance, 0) AS stored, coalesce(e.credit, 0) AS from_entries
        FROM (SELECT * FROM customer_balances WHERE organization_id LIKE :org) b
        FULL JOIN (
            SELECT organization_id, customer_id, currency, -sum(amount) AS credit
            FROM ledger_entries
            WHERE organization_id LIKE :org AND account = 'customer_credit'
            GROUP BY organization_id, customer_id, currency
        ) e USING (organization_id, customer_id, currency)
        WHERE coalesce(b.balance, 0) <> coalesce(e.credit, 0) OR coalesce(e.credit, 0) < 0
        """,
    ),
    "refunded within collected": (
        "no payment returns more than it received: refunds, refunds in flight and card money "
        "credited to the balance by credit notes never exceed what it captured",
        """
        SELECT p.organization_id, p.id AS payment_id, p.amount_captured,
               coalesce(r.committed, 0) AS refunds, coalesce(c.credited, 0) AS credited
        FROM payments p
        LEFT JOIN (
            SELECT organization_id, payment_id, sum(amount) AS committed FROM refunds
            WHERE status IN ('pending_approval', 'pending', 'succeeded')
            GROUP BY organization_id, payment_id
        ) r ON r.organization_id = p.organization_id AND r.payment_id = p.id
        LEFT JOIN (
            SELECT organization_id, payment_id, -sum(amount) AS credited FROM ledger_entries
            WHERE account = 'customer_credit' AND kind = 'credit_note' AND payment_id IS NOT NULL
            GROUP BY organization_id, payment_id
        ) c ON c.organization_id = p.organization_id AND c.payment_id = p.id
        WHERE p.organization_id LIKE :org
          AND coalesce(r.committed, 0) + coalesce(c.credited, 0) > p.amount_captured
        """,
    ),
    "cash matches payments": (
        "each payment's cash entries equal what it captured less its succeeded refunds",
        """
        SELECT p.organization_id, p.id AS payment_id, p.status,
               CASE WHEN p.status = 'succeeded' THEN p.amount_captured ELSE 0 END
                 - p.amount_refunded AS expected,
               coalesce(e.cash, 0) AS from_entries
        FROM payments p
        LEFT JOIN (
            SELECT organization_id, payment_id, sum(amount) AS cash FROM ledger_entries
            WHERE account = 'cash' GROUP BY organization_id, payment_id
        ) e ON e.organization_id = p.organization_id AND e.payment_id = p.id
        WHERE p.organization_id LIKE :org AND p.created_at > """
        + _OPENED
        + """
          AND CASE WHEN p.status = 'succeeded' THEN p.amount_captured ELSE 0 END
                - p.amount_refunded <> coalesce(e.cash, 0)
        """,
    ),
    "refunds match refund rows": (
        "each payment's refunded total equals its succeeded refunds",
        """
        SELECT p.organization_id, p.id AS payment_id, p.amount_refunded,
               coalesce(r.succeeded, 0) AS succeeded_refunds
        FROM payments p
        LEFT JOIN (
            SELECT organization_id, payment_id, sum(amount) AS succeeded FROM refunds
            WHERE status = 'succeeded' GROUP BY organization_id, payment_id
        ) r ON r.organization_id = p.organization_id AND r.payment_id = p.id
        WHERE p.organization_id LIKE :org AND p.amount_refunded <> coalesce(r.succeeded, 0)
        """,
    ),
    "invoice totals equal lines": (
        "a finalized invoice's total equals the sum of its lines (inclusive tax lines aside), "
        "and its subtotal the sum of the lines it was given",
        """
        SELECT i.organization_id, i.id AS invoice_id, i.total, i.subtotal,
               coalesce(l.lines, 0) AS lines, coalesce(l.given, 0) AS given
        FROM invoices i
        LEFT JOIN (
            SELECT organization_id, invoice_id,
                   sum(amount) FILTER (WHERE NOT informational) AS lines,
                   sum(amount) FILTER (WHERE kind NOT IN ('discount', 'tax')) AS given
            FROM invoice_lines GROUP BY organization_id, invoice_id
        ) l ON l.organization_id = i.organization_id AND l.invoice_id = i.id
        WHERE i.organization_id LIKE :org AND i.status <> 'draft'
          AND (i.total <> coalesce(l.lines, 0) OR i.subtotal <> coalesce(l.given, 0))
        """,
    ),
    "invoice debts": (
        "what the ledger says an invoice still owes matches its status: its remaining amount "
        "when open, nothing when paid, void or written off",
        """
        SELECT i.organization_id, i.id AS invoice_id, i.status,
               i.amount_due - i.amount_paid AS remaining, coalesce(e.receivable, 0) AS receivable
        FROM invoices i
        LEFT JOIN (
            SELECT organization_id, invoice_id, sum(amount) AS receivable FROM ledger_entries
            WHERE account = 'receivable' AND invoice_id IS NOT NULL
            GROUP BY organization_id, invoice_id
        ) e ON e.organization_id = i.organization_id AND e.invoice_id = i.id
        WHERE i.organization_id LIKE :org AND i.finalized_at > """
        + _OPENED
        + """
          AND coalesce(e.receivable, 0) <> CASE
                WHEN i.status = 'open' AND i.payment_lease_token IS NULL
                    THEN i.amount_due - i.amount_paid
                WHEN i.status = 'open' THEN coalesce(e.receivable, 0)
                ELSE 0 END
        """,
    ),
    "invoices finalized in the ledger": (
        "every finalized invoice has its finalization entries",
        """
        SELECT i.organization_id, i.id AS invoice_id, i.total
        FROM invoices i
        WHERE i.organization_id LIKE :org AND i.status <> 'draft' AND i.finalized_at > """
        + _OPENED
        + """
          AND (i.total <> 0 OR i.discount_total <> 0 OR i.tax_total <> 0)
          AND NOT EXISTS (
            SELECT 1 FROM ledger_entries e
            WHERE e.organization_id = i.organization_id AND e.invoice_id = i.id
              AND e.kind = 'invoice_finalized')
        """,
    ),
    "credited within invoiced": (
        "credit notes and refunds of an invoice's payment never exceed the invoice's total",
        """
        SELECT i.organization_id, i.id AS invoice_id, i.total, e.credited, e.refunded
        FROM invoices i
        JOIN (
            SELECT organization_id, invoice_id,
                   sum(amount) FILTER (WHERE kind = 'credit_note'
                                       AND account IN ('revenue', 'tax')) AS credited,
                   sum(amount) FILTER (WHERE kind = 'refund' AND account = 'revenue') AS refunded
            FROM ledger_entries WHERE invoice_id IS NOT NULL
            GROUP BY organization_id, invoice_id
        ) e ON e.organization_id = i.organization_id AND e.invoice_id = i.id
        WHERE i.organization_id LIKE :org
          AND coalesce(e.credited, 0) + coalesce(e.refunded, 0) > greatest(i.total, 0)
        """,
    ),
    "unused time credited within paid": (
        "no subscription was credited for unused time more than it paid for its time: the "
        "credits for unused time on its invoices never exceed what its paid invoices charged "
        "for its periods, after their discounts",
        """
        SELECT i.organization_id, i.subscription_id,
               sum(-(l.amount - l.discount_amount))
                 FILTER (WHERE l.amount < 0 AND NOT l.discountable) AS credited,
               sum(l.amount - l.discount_amount)
                 FILTER (WHERE l.amount > 0 AND i.status = 'paid') AS paid
        FROM invoices i
        JOIN invoice_lines l ON l.organization_id = i.organization_id AND l.invoice_id = i.id
        WHERE i.organization_id LIKE :org AND i.subscription_id IS NOT NULL
          AND i.status NOT IN ('draft', 'void') AND l.kind IN ('subscription', 'proration')
        GROUP BY i.organization_id, i.subscription_id
        HAVING coalesce(sum(-(l.amount - l.discount_amount))
                 FILTER (WHERE l.amount < 0 AND NOT l.discountable), 0)
             > coalesce(sum(l.amount - l.discount_amount)
                 FILTER (WHERE l.amount > 0 AND i.status = 'paid'), 0)
        """,
    ),
    "refunds payable settled": (
        "no customer's refunds payable is overdrawn (a credit note's refund paid out twice)",
        """
        SELECT organization_id, customer_id, currency, sum(amount) AS balance
        FROM ledger_entries WHERE organization_id LIKE :org AND account = 'refunds_payable'
        GROUP BY organization_id, customer_id, currency HAVING sum(amount) > 0
        """,
    ),
}


class LedgerAudit:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def violations(self, name: str, org: str | None) -> Sequence[Row]:
        _, query = CHECKS[name]
        return await self._db.fetch_all(query, {"org": org if org is not None else "%"})
