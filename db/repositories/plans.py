"""SQL for the plan catalog."""

from __future__ import annotations

import sqlalchemy as sa

from db.connection import Row
from db.repositories.base import Filters, TableRepository
from db.tables import plans

__all__ = ["PlanRepository"]


class PlanRepository(TableRepository):
    table = plans
    unique = ("code",)

    async def archive(self, org: str, plan_id: str) -> Row | None:
        return await self.update(org, plan_id, {"active": False, "archived_at": sa.func.now()})

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        for name in ("tier", "active", "currency"):
            if filters.get(name) is not None:
                conditions.append(plans.c[name] == filters[name])
        return conditions
