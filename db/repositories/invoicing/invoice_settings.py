"""SQL for an organization's invoice settings and its gapless document counters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.tables import document_counters, invoice_settings

__all__ = ["DocumentCounterRepository", "InvoiceSettingsRepository"]


class InvoiceSettingsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, org: str) -> Row | None:
        return await self._db.fetch_one(
            sa.select(invoice_settings).where(invoice_settings.c.organization_id == org)
        )

    async def merge(self, org: str, values: Mapping[str, Any]) -> Row:
        """Set the given columns, creating the organization's row (with defaults) if needed."""
        insert = pg_insert(invoice_settings).values(organization_id=org, **values)
        query = insert.on_conflict_do_update(
            index_elements=[invoice_settings.c.organization_id],
            set_={**{name: insert.excluded[name] for name in values}, "updated_at": sa.func.now()},
        ).returning(*invoice_settings.c)
        row = await self._db.fetch_one(query)
        assert row is not None  # an upsert always returns its row
        return row


class DocumentCounterRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def next_number(self, org: str, series: str) -> tuple[int, datetime]:
        """Increment and return the series' counter, and the transaction's time.

        The upsert locks the counter row until the surrounding transaction ends, so concurrent
        callers (in any process) take numbers one after the other, and a rollback returns the
        number: only committed documents consume numbers.
        """
        query = (
            pg_insert(document_counters)
            .values(organization_id=org, series=series, last_number=1)
            .on_conflict_do_update(
                index_elements=[document_counters.c.organization_id, document_counters.c.series],
                set_={"last_number": document_counters.c.last_number + 1},
            )
            .returning(document_counters.c.last_number, sa.func.now().label("at"))
        )
        row = await self._db.fetch_one(query)
        assert row is not None  # an upsert always returns its row
        return int(row["last_number"]), row["at"]
