"""Domain enums exposed to GraphQL, with a description for every value."""

from __future__ import annotations

import enum
from typing import TypeVar

import strawberry

from app.customers import TaxExempt
from app.errors import ErrorCode
from app.plans import IntervalUnit, Tier

__all__ = ["ErrorCode", "IntervalUnit", "TaxExempt", "Tier"]

# The domain enums themselves are registered (GraphQL names PlanTier, BillingInterval, ErrorCode),
# so resolvers return domain values and the schema annotates with the domain classes.

E = TypeVar("E", bound=enum.Enum)


def expose(cls: type[E], name: str, description: str, values: dict[E, str]) -> None:
    """Register a domain enum with strawberry (names are the member names) and describe it."""
    missing = set(cls) - set(values)
    if missing:
        raise TypeError(f"{name}: undocumented values {sorted(m.name for m in missing)}")
    strawberry.enum(cls, name=name, description=description)
    for value in cls.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[cls[value.name]]


expose(
    Tier,
    "PlanTier",
    "The commercial tier of a plan, for grouping and statistics.",
    {
        Tier.FREE: "Free tier.",
        Tier.BASIC: "Entry paid tier.",
        Tier.PRO: "Professional tier.",
        Tier.ENTERPRISE: "Enterprise tier.",
        Tier.CUSTOM: "A negotiated, customer-specific plan.",
    },
)

expose(
    IntervalUnit,
    "BillingInterval",
    "How often a plan bills; combined with `intervalCount` (quarterly = MONTH x 3).",
    {
        IntervalUnit.DAY: "Every `intervalCount` days.",
        IntervalUnit.WEEK: "Every `intervalCount` weeks.",
        IntervalUnit.MONTH: "Every `intervalCount` calendar months, anchored to the start day.",
        IntervalUnit.YEAR: "Every `intervalCount` years (at most 3).",
        IntervalUnit.ONE_TIME: "Charged once; never renews (`intervalCount` is 1).",
    },
)

expose(
    ErrorCode,
    "ErrorCode",
    "Machine-readable reason of a `UserError`.",
    {
        ErrorCode.INVALID: "A value is malformed or out of range.",
        ErrorCode.REQUIRED: "A required value is missing or blank.",
        ErrorCode.NOT_FOUND: "The referenced object does not exist (or is not visible to you).",
        ErrorCode.DUPLICATE: "A unique value (such as a code) is already taken.",
        ErrorCode.INVALID_STATE: "The object's current state does not allow this operation.",
        ErrorCode.UNKNOWN_CURRENCY: "The currency is not a supported ISO 4217 code.",
        ErrorCode.CURRENCY_MISMATCH: "Amounts in different currencies cannot be combined.",
        ErrorCode.PAYMENT_PROVIDER_ERROR: "Stripe failed or was unreachable; nothing changed.",
        ErrorCode.CARD_DECLINED: "The card was declined; see the message for the reason.",
        ErrorCode.IDEMPOTENCY_KEY_REUSED: "The idempotency key was used with a different input.",
        ErrorCode.IDEMPOTENCY_KEY_IN_USE: "A request with this idempotency key is in flight.",
        ErrorCode.AMOUNT_EXCEEDS_REFUNDABLE: "The refund exceeds what is still refundable.",
    },
)

expose(
    TaxExempt,
    "TaxExempt",
    "A customer's tax status.",
    {
        TaxExempt.NONE: "Taxed normally by the rates of its billing address.",
        TaxExempt.EXEMPT: "Exempt: no tax is charged.",
        TaxExempt.REVERSE: "Reverse charge: the customer accounts for the tax; invoices say so.",
    },
)
