"""SQL for the service a subscription's customer paid or was promised: its billing lines that
reach past an instant (``app.subscriptions.service_value`` values them)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from db.connection import Database, Row
from db.repositories.base import any_of
from db.tables import invoice_lines, invoices, ledger_entries, subscription_pending_lines

__all__ = ["PENDING", "ServicePeriodRepository"]

PENDING = "pending"
"""The ``standing`` of a line still waiting for an invoice."""

_KINDS = ("subscription", "proration")
_lines = invoice_lines.c
_invoices = invoices.c
_pending = subscription_pending_lines.c
_ledger = ledger_entries.c


class ServicePeriodRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lines_after(self, org: str, subscription_id: str, at: datetime) -> list[Row]:
        """The subscription's subscription and proration lines that end after ``at``, in one
        statement: those of its finalized invoices, with ``standing`` the invoice's status and
        ``value`` the line's amount after its share of the invoice's discount, then the lines
        still waiting for an invoice (``standing`` ``pending``, not taken by a billing key).
        Columns: ``value``, ``period_start``, ``period_end``, ``standing``, ``invoice_total``
        and ``given_back`` (what credit notes and refunds of its payment gave back of the
        invoice, from the ledger)."""
        given_back = (
            sa.select(sa.func.coalesce(sa.func.sum(_ledger.amount), 0))
            .where(
                _ledger.organization_id == _invoices.organization_id,
                _ledger.invoice_id == _invoices.id,
                sa.or_(
                    sa.and_(
                        _ledger.kind == "credit_note", _ledger.account == any_of(("revenue", "tax"))
                    ),
                    sa.and_(_ledger.kind == "refund", _ledger.account == "revenue"),
                ),
            )
            .scalar_subquery()
        )
        invoiced = (
            sa.select(
                (_lines.amount - _lines.discount_amount).label("value"),
                _lines.period_start,
                _lines.period_end,
                _invoices.status.label("standing"),
                _invoices.total.label("invoice_total"),
                given_back.label("given_back"),
            )
            .select_from(
                invoices.join(
                    invoice_lines,
                    sa.and_(
                        _lines.organization_id == _invoices.organization_id,
                        _lines.invoice_id == _invoices.id,
                    ),
                )
            )
            .where(
                _invoices.organization_id == org,
                _invoices.subscription_id == subscription_id,
                _invoices.status != "draft",
                _lines.organization_id == org,
                _lines.kind == any_of(_KINDS),
                _lines.period_start.is_not(None),
                _lines.period_end > at,
            )
        )
        pending = sa.select(
            _pending.amount.label("value"),
            _pending.period_start,
            _pending.period_end,
            sa.literal(PENDING, sa.Text).label("standing"),
            sa.literal(0, sa.BigInteger).label("invoice_total"),
            sa.literal(0, sa.BigInteger).label("given_back"),
        ).where(
            _pending.organization_id == org,
            _pending.subscription_id == subscription_id,
            _pending.taken_by.is_(None),
            _pending.period_end > at,
        )
        return list(await self._db.fetch_all(sa.union_all(invoiced, pending)))
