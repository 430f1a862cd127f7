"""SQL for the plan catalog."""

from __future__ import annotations

import sqlalchemy as sa

from db.repositories.base import Filters
from db.repositories.stripe.mirror import StripeMirrorRepository
from db.tables import plans

__all__ = ["PlanRepository"]


class PlanRepository(StripeMirrorRepository):
    table = plans
    unique = ("code",)

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        for name in ("tier", "active", "currency"):
            if filters.get(name) is not None:
                conditions.append(self._c[name] == filters[name])
        return conditions
