"""SQL for coupons, the discounts that apply them to customers or subscriptions, and the
periods each discount was redeemed for."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Row
from db.repositories.base import Filters, TableRepository
from db.tables import coupons, discount_redemptions, discounts

__all__ = ["CouponRepository", "DiscountRepository"]


class CouponRepository(TableRepository):
    table = coupons
    unique = ("code",)

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        if filters.get("active") is not None:
            conditions.append(coupons.c.active == filters["active"])
        if filters.get("code"):
            conditions.append(coupons.c.code == filters["code"])
        return conditions

    async def redeem(self, org: str, coupon_id: str) -> Row | None:
        """Count one more redemption if the coupon is active, not expired and below its limit
        (one conditional UPDATE, so concurrent redemptions cannot pass the limit)."""
        c = coupons.c
        query = (
            sa.update(coupons)
            .where(
                c.organization_id == org,
                c.id == coupon_id,
                c.active,
                sa.or_(c.redeem_by.is_(None), c.redeem_by > sa.func.now()),
                sa.or_(c.max_redemptions.is_(None), c.times_redeemed < c.max_redemptions),
            )
            .values(times_redeemed=c.times_redeemed + 1, updated_at=sa.func.now())
            .returning(*coupons.c)
        )
        return await self._db.fetch_one(query)

    async def archive(self, org: str, coupon_id: str) -> Row | None:
        query = (
            sa.update(coupons)
            .where(coupons.c.organization_id == org, coupons.c.id == coupon_id, coupons.c.active)
            .values(active=False, archived_at=sa.func.now(), updated_at=sa.func.now())
            .returning(*coupons.c)
        )
        return await self._db.fetch_one(query)


class DiscountRepository(TableRepository):
    table = discounts

    def _current(
        self, org: str, customer_id: str, subscription_id: str | None
    ) -> sa.Select[tuple[object, ...]]:
        c = discounts.c
        scope = (
            c.subscription_id.is_(None)
            if subscription_id is None
            else (c.subscription_id == subscription_id)
        )
        return sa.select(discounts).where(
            c.organization_id == org, c.customer_id == customer_id, scope, c.ended_at.is_(None)
        )

    async def current(
        self, org: str, customer_id: str, subscription_id: str | None, *, lock: bool = False
    ) -> Row | None:
        """The discount in force for the customer (``subscription_id`` None) or subscription."""
        query = self._current(org, customer_id, subscription_id)
        return await self._db.fetch_one(query.with_for_update() if lock else query)

    async def end(self, org: str, discount_id: str) -> None:
        await self._db.execute(
            sa.update(discounts)
            .where(discounts.c.organization_id == org, discounts.c.id == discount_id)
            .values(ended_at=sa.func.now(), updated_at=sa.func.now())
        )

    async def redeemed_for(self, org: str, discount_id: str, period_key: str) -> bool:
        r = discount_redemptions.c
        query = sa.select(
            sa.exists().where(
                r.organization_id == org, r.discount_id == discount_id, r.period_key == period_key
            )
        )
        return bool(await self._db.fetch_val(query))

    async def record_redemption(
        self, org: str, discount_id: str, period_key: str, invoice_id: str
    ) -> None:
        """Count the period as used (the caller checked it was not already)."""
        await self._db.execute(
            pg_insert(discount_redemptions).values(
                organization_id=org,
                discount_id=discount_id,
                period_key=period_key,
                invoice_id=invoice_id,
            )
        )
        await self._db.execute(
            sa.update(discounts)
            .where(discounts.c.organization_id == org, discounts.c.id == discount_id)
            .values(periods_used=discounts.c.periods_used + 1, updated_at=sa.func.now())
        )
