"""SQL for per-organization test clocks (test mode only)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database
from db.tables import test_clocks

__all__ = ["TestClockRepository"]


class TestClockRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, org: str) -> datetime | None:
        value: datetime | None = await self._db.fetch_val(
            sa.select(test_clocks.c.frozen_at).where(test_clocks.c.organization_id == org)
        )
        return value

    async def set(self, org: str, at: datetime) -> None:
        query = pg_insert(test_clocks).values(organization_id=org, frozen_at=at)
        await self._db.execute(
            query.on_conflict_do_update(
                index_elements=[test_clocks.c.organization_id],
                set_={"frozen_at": query.excluded.frozen_at, "updated_at": sa.func.now()},
            )
        )
