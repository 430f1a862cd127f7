"""The demo organization's catalog, made through the catalog services: the plans of the
scenario, a VAT rate per European country and a welcome coupon."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog import (
    CouponDraft,
    CouponDuration,
    CouponRecord,
    IntervalUnit,
    Plan,
    PlanDraft,
    TaxRateDraft,
    Tier,
)
from app.demo.scenario import VAT, PlanSpec
from app.services import Services

__all__ = ["Catalog", "create_catalog"]

_TIERS = {"starter": Tier.BASIC, "pro": Tier.PRO, "business": Tier.ENTERPRISE}
_FEATURES = {
    "starter": {"projects": "5", "support": "email"},
    "pro": {"projects": "unlimited", "support": "priority"},
    "business": {"projects": "unlimited", "support": "dedicated", "sso": "yes"},
}


@dataclass(frozen=True)
class Catalog:
    plans: dict[str, Plan]  # by code
    coupon: CouponRecord
    tax_rates: int


async def create_catalog(services: Services, org: str, specs: list[PlanSpec]) -> Catalog:
    plans = {}
    for spec in specs:
        plans[spec.code] = await services.plans.create(
            org,
            PlanDraft(
                code=spec.code,
                name=spec.name,
                tier=_TIERS[spec.tier],
                amount=spec.amount,
                currency=spec.currency,
                interval=IntervalUnit.YEAR if spec.yearly else IntervalUnit.MONTH,
                description=f"{spec.name} plan, billed {'yearly' if spec.yearly else 'monthly'}",
                features=_FEATURES[spec.tier],
                max_users=None if spec.tier != "starter" else 3,
                family="workspace",
            ),
        )
    for country, percentage in sorted(VAT.items()):
        await services.tax_rates.create(
            org, TaxRateDraft(name=f"VAT {country}", percentage=percentage, country=country)
        )
    coupon = await services.coupons.create(
        org,
        CouponDraft(
            code="WELCOME20",
            name="Welcome: 20% off the first three months",
            duration=CouponDuration.REPEATING,
            percent_off="20",
            duration_periods=3,
        ),
    )
    return Catalog(plans=plans, coupon=coupon, tax_rates=len(VAT))
