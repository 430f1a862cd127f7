"""The catalog's batching loaders, scoped to one organization (assembled by `app.context`)."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.catalog.coupons import CouponRecord, CouponService
from app.catalog.plans import Plan, PlanService

__all__ = ["CatalogLoaders"]


class CatalogLoaders:
    """Plans and coupons by id: one statement per batch."""

    def __init__(self, plans: PlanService, coupons: CouponService, org: str) -> None:
        async def plans_by_ids(ids: list[str]) -> list[Plan | None]:
            return await plans.read.by_ids(org, ids)

        async def coupons_by_ids(ids: list[str]) -> list[CouponRecord | None]:
            return await coupons.read.by_ids(org, ids)

        self.plan_by_id: DataLoader[str, Plan | None] = DataLoader(plans_by_ids)
        self.coupon_by_id: DataLoader[str, CouponRecord | None] = DataLoader(coupons_by_ids)
