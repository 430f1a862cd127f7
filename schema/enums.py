"""Domain enums exposed to GraphQL, with a description for every value."""

from __future__ import annotations

import enum
from typing import TypeVar

import strawberry
from strawberry.types.enum import StrawberryEnumDefinition

from app.catalog import IntervalUnit, Tier
from app.core.errors import ErrorCode
from app.customers import TaxExempt
from app.organizations import EndedSubscriptionInvoices, LateUsage, ProrationBehavior
from app.outgoing_webhooks import EVENT_TYPES, DeliveryStatus, EventType
from app.payments import CaptureMethod, PaymentStatus, RefundReason, RefundStatus
from app.subscriptions import Status

__all__ = [
    "CaptureMethod",
    "EndedSubscriptionInvoices",
    "ErrorCode",
    "IntervalUnit",
    "LateUsage",
    "PaymentStatus",
    "ProrationBehavior",
    "RefundReason",
    "RefundStatus",
    "Status",
    "TaxExempt",
    "Tier",
    "WebhookDeliveryStatus",
    "WebhookEventType",
]

# The domain enums themselves are registered (GraphQL names PlanTier, BillingInterval, ErrorCode),
# so resolvers return domain values and the schema annotates with the domain classes.

E = TypeVar("E", bound=enum.Enum)


def expose(cls: type[E], name: str, description: str, values: dict[E, str]) -> None:
    """Register a domain enum with strawberry (names are the member names) and describe it."""
    missing = set(cls) - set(values)
    if missing:
        raise TypeError(f"{name}: undocumented values {sorted(m.name for m in missing)}")
    strawberry.enum(cls, name=name, description=description)
    definition = vars(cls).get("__strawberry_definition__")  # set by strawberry.enum
    if not isinstance(definition, StrawberryEnumDefinition):
        raise TypeError(f"{name}: strawberry.enum did not register the enum")
    for value in definition.values:
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
        ErrorCode.OPERATION_IN_PROGRESS: (
            "Another change to this payment or refund is in flight; retry in a moment."
        ),
        ErrorCode.AMOUNT_EXCEEDS_CREDITABLE: (
            "The credit note exceeds what the invoice can still be credited."
        ),
        ErrorCode.NOT_PERMITTED: (
            "Your token's role may not make this choice: a customer token is held to the "
            "organization's customer policy (trial, start, quantity, proration, pause; see "
            "`Organization`); an admin or service token may make it."
        ),
        ErrorCode.USAGE_PERIOD_CLOSED: (
            "A usage event falls in a period already invoiced and the organization's "
            "`lateUsage` is REFUSE (or the subscription has ended): it was not recorded."
        ),
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

expose(
    PaymentStatus,
    "PaymentStatus",
    "Where a payment stands; mirrors its Stripe PaymentIntent (only Stripe's word moves it).",
    {
        PaymentStatus.REQUIRES_PAYMENT_METHOD: "Waiting for a payment method.",
        PaymentStatus.REQUIRES_CONFIRMATION: "Has a payment method; `paymentIntentConfirm` next.",
        PaymentStatus.REQUIRES_ACTION: (
            "The customer must authenticate (3-D Secure): hand `nextAction` and `clientSecret` "
            "to Stripe.js, then call `paymentRefresh`."
        ),
        PaymentStatus.PROCESSING: "Stripe is processing it (e.g. bank debits); refresh later.",
        PaymentStatus.REQUIRES_CAPTURE: (
            "Authorized (manual capture): `paymentCapture` or `paymentCancel` next."
        ),
        PaymentStatus.SUCCEEDED: "Charged: Stripe reported success. Final; may be refunded.",
        PaymentStatus.CANCELED: "Canceled; nothing was charged (an authorization is released).",
        PaymentStatus.FAILED: (
            "The last attempt failed (declined card or failed authentication); see "
            "`failureCode`. Create a new payment to try again."
        ),
    },
)

expose(
    CaptureMethod,
    "CaptureMethod",
    "When the money is taken.",
    {
        CaptureMethod.AUTOMATIC: "Charged when confirmed.",
        CaptureMethod.MANUAL: (
            "Only authorized when confirmed (`REQUIRES_CAPTURE`); charged by `paymentCapture`."
        ),
    },
)

expose(
    RefundStatus,
    "RefundStatus",
    "Where a refund stands; once sent to Stripe it follows Stripe's status.",
    {
        RefundStatus.PENDING_APPROVAL: (
            "Above the organization's approval threshold (or asked for by a customer): waits "
            "for `refundApprove` or `refundReject` by an admin. Its amount is reserved."
        ),
        RefundStatus.PENDING: "Sent (or being sent) to Stripe; not final yet.",
        RefundStatus.SUCCEEDED: "Stripe reported the refund succeeded.",
        RefundStatus.FAILED: (
            "Stripe refused or failed the refund; its amount is refundable again. See "
            "`failureReason`."
        ),
        RefundStatus.CANCELED: "Canceled at Stripe; its amount is refundable again.",
        RefundStatus.REJECTED: "Rejected by an admin; never sent to Stripe.",
    },
)

expose(
    RefundReason,
    "RefundReason",
    "Why money is returned (kept with the refund and sent to Stripe as metadata).",
    {
        RefundReason.DUPLICATE: "The customer was charged twice.",
        RefundReason.FRAUDULENT: "The payment was fraudulent.",
        RefundReason.REQUESTED_BY_CUSTOMER: "The customer asked for it.",
        RefundReason.OTHER: "Another reason; say which in `note`.",
    },
)

expose(
    Status,
    "SubscriptionStatus",
    "Where a subscription is in its lifecycle.",
    {
        Status.TRIALING: "In its free trial; billed when the trial ends.",
        Status.ACTIVE: "Paid up; renews at the end of each period.",
        Status.PAST_DUE: "The latest invoice failed; dunning retries are scheduled.",
        Status.CANCELED: "Ended (by request, at period end, or after dunning). Final.",
        Status.UNPAID: "Dunning gave up; kept (not canceled) by configuration.",
        Status.INCOMPLETE: "The first charge failed; expires after 23 hours unless paid.",
        Status.INCOMPLETE_EXPIRED: "The first charge was never paid. Final.",
        Status.PAUSED: "Billing paused: periods pass without invoices.",
    },
)

expose(
    ProrationBehavior,
    "ProrationBehavior",
    "How a mid-period plan change is billed.",
    {
        ProrationBehavior.CREATE_PRORATIONS: "Credit and charge lines go on the next invoice.",
        ProrationBehavior.ALWAYS_INVOICE: "Credit and charge lines are invoiced and charged now.",
        ProrationBehavior.NONE: "No proration; the new price applies from the next period.",
    },
)

expose(
    EndedSubscriptionInvoices,
    "EndedSubscriptionInvoices",
    "What becomes of a subscription's still-open invoices when dunning cancels it.",
    {
        EndedSubscriptionInvoices.VOID: "Voided: nothing is owed any more; the credit balance "
        "an invoice used goes back to the customer.",
        EndedSubscriptionInvoices.UNCOLLECTIBLE: "Marked uncollectible: written off as a bad "
        "debt, and still payable with `invoicePay` (default).",
    },
)

expose(
    LateUsage,
    "LateUsage",
    "What usage ingestion does with an event timestamped in a period already invoiced.",
    {
        LateUsage.REFUSE: "Refused with `USAGE_PERIOD_CLOSED`: nothing is recorded.",
        LateUsage.ADJUST: "Recorded, and the period re-rated at the next invoice: the "
        "difference is billed (or credited) there, on a line naming the original period "
        "(default).",
    },
)

expose(
    EventType,
    "WebhookEventType",
    "The events other back ends can receive; the envelope's `type` is the dotted form "
    "(`PAYMENT_SUCCEEDED` is `payment.succeeded`).",
    dict(EVENT_TYPES),
)

expose(
    DeliveryStatus,
    "WebhookDeliveryStatus",
    "Where the delivery of one event to one endpoint stands.",
    {
        DeliveryStatus.PENDING: "Not acknowledged yet: due, in flight, or waiting for a retry.",
        DeliveryStatus.SUCCEEDED: "The endpoint answered 2xx.",
        DeliveryStatus.FAILED: "Given up: retries failed for WEBHOOK_MAX_AGE (3 days), or the "
        "endpoint is disabled. `webhookRedeliver` sends it again.",
    },
)
WebhookDeliveryStatus = DeliveryStatus
WebhookEventType = EventType
