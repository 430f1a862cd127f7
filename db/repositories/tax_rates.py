"""SQL for tax rates: listing, archiving, and the rate for a jurisdiction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import tax_rates

__all__ = ["TaxRateRepository"]


class TaxRateRepository(TableRepository):
    table = tax_rates

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        if filters.get("country"):
            conditions.append(tax_rates.c.country == filters["country"])
        if filters.get("active") is not None:
            conditions.append(tax_rates.c.active == filters["active"])
        return conditions

    async def insert(self, values: Mapping[str, Any]) -> Row | None:
        """Insert an active rate; None when its jurisdiction already has one."""
        query = (
            pg_insert(tax_rates)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["organization_id", "country", "region"],
                index_where=tax_rates.c.active,
            )
            .returning(*tax_rates.c)
        )
        return await self._db.fetch_one(query)

    async def for_jurisdiction(self, org: str, country: str, region: str) -> Row | None:
        """The active rate of the region, else the country's rate (region '')."""
        c = tax_rates.c
        query = (
            sa.select(tax_rates)
            .where(
                c.organization_id == org,
                c.active,
                c.country == country,
                c.region == any_of(sorted({region, ""})),
            )
            .order_by(c.region.desc())
            .limit(1)
        )
        return await self._db.fetch_one(query)

    async def archive(self, org: str, rate_id: str) -> Row | None:
        query = (
            sa.update(tax_rates)
            .where(
                tax_rates.c.organization_id == org, tax_rates.c.id == rate_id, tax_rates.c.active
            )
            .values(active=False, archived_at=sa.func.now(), updated_at=sa.func.now())
            .returning(*tax_rates.c)
        )
        return await self._db.fetch_one(query)
