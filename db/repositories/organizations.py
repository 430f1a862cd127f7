"""SQL for organizations: settings, read and merged with an upsert (a tenant's row may not
exist yet: tenants are created implicitly by their first token)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.tables import organizations

__all__ = ["OrganizationRepository"]


class OrganizationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, org: str) -> Row | None:
        return await self._db.fetch_one(sa.select(organizations).where(organizations.c.id == org))

    async def merge_settings(self, org: str, changes: dict[str, Any]) -> Row:
        """Set the given top-level settings keys, creating the organization row if needed."""
        insert = pg_insert(organizations).values(id=org, name="", settings=changes)
        query = insert.on_conflict_do_update(
            index_elements=[organizations.c.id],
            set_={"settings": organizations.c.settings.op("||")(insert.excluded.settings)},
        ).returning(*organizations.c)
        row = await self._db.fetch_one(query)
        assert row is not None  # an upsert always returns its row
        return row
