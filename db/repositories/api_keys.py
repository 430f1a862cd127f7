"""SQL for organization API keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from db.connection import Row
from db.repositories.base import Filters, TableRepository
from db.tables import api_keys

__all__ = ["ApiKeyRepository"]


class ApiKeyRepository(TableRepository):
    table = api_keys

    async def by_prefix(self, prefix: str) -> Sequence[Row]:
        """Every key with this prefix, in any organization (the caller of a key does not say
        its organization; the prefix is random, so this is one row but for a fluke)."""
        return await self._db.fetch_all(sa.select(api_keys).where(api_keys.c.prefix == prefix))

    async def add(self, values: Mapping[str, Any]) -> Row:
        row = await self._db.fetch_one(sa.insert(api_keys).values(**values).returning(*api_keys.c))
        assert row is not None
        return row

    async def change(self, org: str, key_id: str, values: Mapping[str, Any]) -> Row | None:
        query = (
            sa.update(api_keys)
            .where(api_keys.c.organization_id == org, api_keys.c.id == key_id)
            .values(**values)
            .returning(*api_keys.c)
        )
        return await self._db.fetch_one(query)

    async def touch(self, org: str, key_id: str, at: datetime) -> None:
        """Record a use at ``at`` unless a later one is recorded already."""
        await self._db.execute(
            sa.update(api_keys)
            .where(
                api_keys.c.organization_id == org,
                api_keys.c.id == key_id,
                sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at),
            )
            .values(last_used_at=at)
        )

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        if not filters.get("include_revoked"):
            conditions.append(api_keys.c.revoked_at.is_(None))
        return conditions
