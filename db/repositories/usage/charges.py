"""SQL for what usage billed: the rated lines reserved by an invoice key, and the billed
periods that late events reopened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.repositories.base import any_of
from db.tables import metered_prices, usage_charges, usage_late_periods

__all__ = ["UsageChargeRepository"]

_c = usage_charges.c
_late = usage_late_periods.c


class UsageChargeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lock_subscription(self, org: str, subscription_id: str) -> None:
        """The exclusive usage lock of the subscription (in a transaction): ingestion of its
        events waits until the rating that holds it commits (UsageEventRepository)."""
        await self._db.execute(
            sa.select(
                sa.func.pg_advisory_xact_lock(
                    sa.func.hashtextextended(f"usage:{org}:{subscription_id}", 0)
                )
            )
        )

    async def applies(self, org: str, plan_id: str, subscription_id: str, key: str) -> bool:
        """The plan has metered prices, or ``key`` reserved lines of the subscription."""
        priced = sa.exists().where(
            metered_prices.c.organization_id == org, metered_prices.c.plan_id == plan_id
        )
        reserved = sa.exists().where(
            _c.organization_id == org,
            _c.subscription_id == subscription_id,
            _c.invoice_key == key,
        )
        return bool(await self._db.fetch_val(sa.select(sa.or_(priced, reserved))))

    async def reserved_by(self, org: str, subscription_id: str, key: str) -> list[Row]:
        """The lines an invoice key reserved, in the order written."""
        query = (
            sa.select(usage_charges)
            .where(
                _c.organization_id == org,
                _c.subscription_id == subscription_id,
                _c.invoice_key == key,
            )
            .order_by(_c.id)
        )
        return list(await self._db.fetch_all(query))

    async def link_invoice(self, org: str, subscription_id: str, key: str, invoice_id: str) -> None:
        """Record which invoice the lines reserved by ``key`` went on."""
        await self._db.execute(
            sa.update(usage_charges)
            .where(
                _c.organization_id == org,
                _c.subscription_id == subscription_id,
                _c.invoice_key == key,
                _c.invoice_id.is_(None),
            )
            .values(invoice_id=invoice_id)
        )

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self._db.execute(sa.insert(usage_charges).values(list(rows)))

    async def billed_in(
        self, org: str, subscription_id: str, starts: Sequence[datetime]
    ) -> list[Row]:
        """Every line billed so far for the periods starting at ``starts``."""
        query = sa.select(usage_charges).where(
            _c.organization_id == org,
            _c.subscription_id == subscription_id,
            _c.period_start
            == sa.any_(sa.literal(list(starts), sa.ARRAY(sa.DateTime(timezone=True)))),
        )
        return list(await self._db.fetch_all(query))

    async def billed_periods(self, org: str, subscription_ids: Sequence[str]) -> list[Row]:
        """The periods usage billed, per subscription (subscription_id, period_start,
        period_end)."""
        query = (
            sa.select(_c.subscription_id, _c.period_start, _c.period_end)
            .where(
                _c.organization_id == org,
                _c.subscription_id == any_of(subscription_ids),
                _c.kind == "usage",
            )
            .distinct()
        )
        return list(await self._db.fetch_all(query))

    async def reopen(self, org: str, periods: Sequence[tuple[str, datetime, datetime]]) -> None:
        """Mark billed periods (subscription, start, end) as having late events."""
        if not periods:
            return
        rows = [
            {"organization_id": org, "subscription_id": s, "period_start": a, "period_end": b}
            for s, a, b in sorted(set(periods))
        ]
        await self._db.execute(pg_insert(usage_late_periods).values(rows).on_conflict_do_nothing())

    async def take_reopened(self, org: str, subscription_id: str, *, before: datetime) -> list[Row]:
        """The subscription's reopened periods starting before ``before``, removed (call it
        with the exclusive lock)."""
        query = (
            sa.delete(usage_late_periods)
            .where(
                _late.organization_id == org,
                _late.subscription_id == subscription_id,
                _late.period_start < before,
            )
            .returning(_late.period_start, _late.period_end)
        )
        rows = await self._db.fetch_all(query)
        return sorted(rows, key=lambda r: r["period_start"])

    async def reopened(self, org: str, subscription_id: str) -> list[Row]:
        query = (
            sa.select(_late.period_start, _late.period_end)
            .where(_late.organization_id == org, _late.subscription_id == subscription_id)
            .order_by(_late.period_start)
        )
        return list(await self._db.fetch_all(query))
