"""SQL for credit notes and their lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import credit_note_lines, credit_notes

__all__ = ["CreditNoteLineRepository", "CreditNoteRepository"]


class CreditNoteRepository(TableRepository):
    table = credit_notes

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        for name in ("customer_id", "invoice_id"):
            if filters.get(name):
                conditions.append(credit_notes.c[name] == filters[name])
        return conditions

    async def by_invoice_ids(self, org: str, invoice_ids: Sequence[str]) -> dict[str, list[Row]]:
        query = (
            sa.select(credit_notes)
            .where(
                credit_notes.c.organization_id == org,
                credit_notes.c.invoice_id == any_of(sorted(set(invoice_ids))),
            )
            .order_by(credit_notes.c.id)
        )
        grouped: dict[str, list[Row]] = {i: [] for i in invoice_ids}
        for row in await self._db.fetch_all(query):
            grouped[row["invoice_id"]].append(row)
        return grouped


class CreditNoteLineRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_credit_note_ids(self, org: str, ids: Sequence[str]) -> dict[str, list[Row]]:
        """The lines (with their credit note's currency) in one statement, grouped, in order."""
        line, note = credit_note_lines.c, credit_notes.c
        query = (
            sa.select(credit_note_lines, note.currency)
            .join(
                credit_notes,
                sa.and_(
                    note.organization_id == line.organization_id, note.id == line.credit_note_id
                ),
            )
            .where(line.organization_id == org, line.credit_note_id == any_of(sorted(set(ids))))
            .order_by(line.credit_note_id, line.position)
        )
        grouped: dict[str, list[Row]] = {i: [] for i in ids}
        for row in await self._db.fetch_all(query):
            grouped[row["credit_note_id"]].append(row)
        return grouped

    async def by_ids(self, org: str, ids: Sequence[str]) -> dict[str, Row]:
        """Lines by their own ids (with the credit note's currency and customer)."""
        line, note = credit_note_lines.c, credit_notes.c
        query = (
            sa.select(credit_note_lines, note.currency, note.customer_id)
            .join(
                credit_notes,
                sa.and_(
                    note.organization_id == line.organization_id, note.id == line.credit_note_id
                ),
            )
            .where(line.organization_id == org, line.id == any_of(sorted(set(ids))))
        )
        return {row["id"]: row for row in await self._db.fetch_all(query)}

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self._db.execute(pg_insert(credit_note_lines).values(list(rows)))
