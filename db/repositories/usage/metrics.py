"""SQL for billable metrics and the metered prices that plans put on them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import billable_metrics, metered_prices, plans

__all__ = ["MeteredPriceRepository", "MetricRepository"]


class MetricRepository(TableRepository):
    table = billable_metrics
    unique = ("code",)

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        if filters.get("active") is True:
            conditions.append(billable_metrics.c.archived_at.is_(None))
        elif filters.get("active") is False:
            conditions.append(billable_metrics.c.archived_at.is_not(None))
        return conditions

    async def by_codes(self, org: str, codes: Sequence[str]) -> list[Row]:
        c = billable_metrics.c
        query = sa.select(billable_metrics).where(
            c.organization_id == org, c.code == any_of(sorted(set(codes)))
        )
        return list(await self._db.fetch_all(query))

    async def archive(self, org: str, metric_id: str) -> Row | None:
        c = billable_metrics.c
        query = (
            sa.update(billable_metrics)
            .where(c.organization_id == org, c.id == metric_id, c.archived_at.is_(None))
            .values(archived_at=sa.func.now())
            .returning(*billable_metrics.c)
        )
        return await self._db.fetch_one(query)


class MeteredPriceRepository(TableRepository):
    table = metered_prices

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self._db.execute(pg_insert(metered_prices).values(list(rows)))

    async def of_plans(
        self, org: str, plan_ids: Sequence[str], *, ids: Sequence[str] | None = None
    ) -> list[Row]:
        """The metered prices of ``plans`` (or, with ``ids``, those prices whatever their
        plan), each with its metric's columns (``metric_*``) and its plan's currency, in plan
        then position order."""
        p, m = metered_prices.c, billable_metrics.c
        query = (
            sa.select(
                metered_prices,
                m.code.label("metric_code"),
                m.name.label("metric_name"),
                m.aggregation.label("metric_aggregation"),
                m.property.label("metric_property"),
                m.filters.label("metric_filters"),
                m.archived_at.label("metric_archived_at"),
                m.created_at.label("metric_created_at"),
                plans.c.currency.label("plan_currency"),
            )
            .join(
                billable_metrics,
                sa.and_(m.organization_id == p.organization_id, m.id == p.metric_id),
            )
            .join(
                plans,
                sa.and_(plans.c.organization_id == p.organization_id, plans.c.id == p.plan_id),
            )
            .where(p.organization_id == org)
            .order_by(p.plan_id, p.position)
        )
        if ids is None:
            query = query.where(p.plan_id == any_of(sorted(set(plan_ids))))
        else:
            query = query.where(p.id == any_of(sorted(set(ids))))
        return list(await self._db.fetch_all(query))
