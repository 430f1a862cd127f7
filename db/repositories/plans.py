"""SQL for the plan catalog."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.pagination import Page, cut_page
from db.tables import plans

__all__ = ["PlanFilter", "PlanRepository"]

PlanFilter = Mapping[str, Any]  # keys: tier, active, currency (each optional)


class PlanRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def by_ids(self, org: str, ids: Sequence[str]) -> list[Row | None]:
        """Rows aligned with ``ids`` (None where missing), in one statement."""
        rows = await self._db.fetch_all(
            sa.select(plans).where(plans.c.organization_id == org, plans.c.id.in_(list(set(ids))))
        )
        by_id = {row["id"]: row for row in rows}
        return [by_id.get(i) for i in ids]

    async def page(self, org: str, filters: PlanFilter, *, first: int, after: str | None) -> Page:
        query = sa.select(plans).where(*self._conditions(org, filters))
        if after is not None:
            query = query.where(plans.c.id > after)
        rows = await self._db.fetch_all(query.order_by(plans.c.id).limit(first + 1))
        return cut_page(rows, first)

    async def count(self, org: str, filters: PlanFilter) -> int:
        query = sa.select(sa.func.count()).select_from(plans)
        return int(await self._db.fetch_val(query.where(*self._conditions(org, filters))))

    async def insert(self, values: Mapping[str, Any]) -> Row | None:
        """Insert a plan; None when its code is already taken in the organization."""
        query = (
            pg_insert(plans)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["organization_id", "code"])
            .returning(*plans.c)
        )
        return await self._db.fetch_one(query)

    async def update(self, org: str, plan_id: str, values: Mapping[str, Any]) -> Row | None:
        query = (
            sa.update(plans)
            .where(plans.c.organization_id == org, plans.c.id == plan_id)
            .values(**values, updated_at=sa.func.now())
            .returning(*plans.c)
        )
        return await self._db.fetch_one(query)

    async def archive(self, org: str, plan_id: str) -> Row | None:
        return await self.update(org, plan_id, {"active": False, "archived_at": sa.func.now()})

    async def lock(self, org: str, plan_id: str) -> Row | None:
        query = (
            sa.select(plans)
            .where(plans.c.organization_id == org, plans.c.id == plan_id)
            .with_for_update()
        )
        return await self._db.fetch_one(query)

    @staticmethod
    def _conditions(org: str, filters: PlanFilter) -> list[sa.ColumnElement[bool]]:
        conditions = [plans.c.organization_id == org]
        if filters.get("tier") is not None:
            conditions.append(plans.c.tier == filters["tier"])
        if filters.get("active") is not None:
            conditions.append(plans.c.active == filters["active"])
        if filters.get("currency") is not None:
            conditions.append(plans.c.currency == filters["currency"])
        return conditions
