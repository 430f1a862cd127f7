"""Entitlements: what a customer may use now, merged from the plans of its subscriptions
(docs/entitlements.md)."""

from app.entitlements.merge import Granting, merge_features, merge_limit
from app.entitlements.service import GRANTING, CreditAllowance, Entitlements, EntitlementService

__all__ = [
    "GRANTING",
    "CreditAllowance",
    "EntitlementService",
    "Entitlements",
    "Granting",
    "merge_features",
    "merge_limit",
]
