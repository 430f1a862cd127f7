"""The catalog: plans, coupons and tax rates (and the terms the invoice arithmetic reads)."""

from app.catalog.coupons import (
    AppliedCoupon,
    CouponDraft,
    CouponDuration,
    CouponRecord,
    CouponService,
    Discount,
)
from app.catalog.loaders import CatalogLoaders
from app.catalog.plans import UPDATABLE, IntervalUnit, Plan, PlanDraft, PlanService, Tier
from app.catalog.tax_rates import TaxChoice, TaxRateDraft, TaxRateRecord, TaxRateService
from app.catalog.terms import BASIS_POINTS, RATE_SCALE, Coupon, TaxRate

__all__ = [
    "BASIS_POINTS",
    "RATE_SCALE",
    "UPDATABLE",
    "AppliedCoupon",
    "CatalogLoaders",
    "Coupon",
    "CouponDraft",
    "CouponDuration",
    "CouponRecord",
    "CouponService",
    "Discount",
    "IntervalUnit",
    "Plan",
    "PlanDraft",
    "PlanService",
    "TaxChoice",
    "TaxRate",
    "TaxRateDraft",
    "TaxRateRecord",
    "TaxRateService",
    "Tier",
]
