"""Organizations: their settings and the policy of what customers may do themselves."""

from app.organizations.policy import (
    MAX_QUANTITY,
    CustomerPolicy,
    EndedSubscriptionInvoices,
    LateUsage,
    ProrationBehavior,
    change_refusals,
    create_refusals,
    is_customer,
    pause_refusals,
    resolved_behavior,
    resume_refusals,
    trial_days_at_create,
    trial_end_after_change,
)
from app.organizations.service import Organization, OrganizationService

__all__ = [
    "MAX_QUANTITY",
    "CustomerPolicy",
    "EndedSubscriptionInvoices",
    "LateUsage",
    "Organization",
    "OrganizationService",
    "ProrationBehavior",
    "change_refusals",
    "create_refusals",
    "is_customer",
    "pause_refusals",
    "resolved_behavior",
    "resume_refusals",
    "trial_days_at_create",
    "trial_end_after_change",
]
