"""Organization-scoped table access shared by the repositories."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.pagination import Page, cut_page

__all__ = ["Filters", "TableRepository", "any_of"]

Filters = Mapping[str, Any]


def any_of(values: Iterable[str]) -> Any:
    """``= ANY($1)``: one array parameter, whatever the number of values, so the statement's
    text is the same for every list and is compiled once (``db/statement_cache.py``); an
    ``IN (…)`` has a placeholder per value and is compiled each time."""
    return sa.any_(sa.literal(list(values), ARRAY(sa.Text)))


class TableRepository:
    """Rows of one table whose key is (organization_id, id); ids sort by creation time."""

    table: sa.Table
    unique: Sequence[str] = ()  # the natural unique key (besides id), for insert conflicts

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def _c(self) -> Any:
        return self.table.c

    async def by_ids(self, org: str, ids: Sequence[str]) -> list[Row | None]:
        """Rows aligned with ``ids`` (None where missing), in one statement."""
        rows = await self._db.fetch_all(
            sa.select(self.table).where(
                self._c.organization_id == org, self._c.id == any_of(sorted(set(ids)))
            )
        )
        by_id = {row["id"]: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def page(self, org: str, filters: Filters, *, first: int, after: str | None) -> Page:
        """A keyset page in id order (ids sort by creation), or newest first when
        ``filters["newest_first"]``; ``after`` is the last id of the previous page."""
        newest = bool(filters.get("newest_first"))
        query = sa.select(self.table).where(*self.conditions(org, filters))
        if after is not None:
            query = query.where(self._c.id < after if newest else self._c.id > after)
        order = self._c.id.desc() if newest else self._c.id
        rows = await self._db.fetch_all(query.order_by(order).limit(first + 1))
        return cut_page(rows, first)

    async def count(self, org: str, filters: Filters) -> int:
        query = sa.select(sa.func.count()).select_from(self.table)
        return int(await self._db.fetch_val(query.where(*self.conditions(org, filters))))

    async def insert(self, values: Mapping[str, Any]) -> Row | None:
        """Insert a row; None when its natural unique key is already taken."""
        query = pg_insert(self.table).values(**values)
        if self.unique:
            query = query.on_conflict_do_nothing(index_elements=["organization_id", *self.unique])
        return await self._db.fetch_one(query.returning(*self.table.c))

    async def update(self, org: str, row_id: str, values: Mapping[str, Any]) -> Row | None:
        query = (
            sa.update(self.table)
            .where(self._c.organization_id == org, self._c.id == row_id)
            .values(**values, updated_at=sa.func.now())
            .returning(*self.table.c)
        )
        return await self._db.fetch_one(query)

    async def lock(self, org: str, row_id: str) -> Row | None:
        """The row, locked until the end of the current transaction."""
        query = (
            sa.select(self.table)
            .where(self._c.organization_id == org, self._c.id == row_id)
            .with_for_update()
        )
        return await self._db.fetch_one(query)

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        """WHERE clauses for a list filter; subclasses add their own on top of the tenant."""
        return [self._c.organization_id == org]
