"""Payments, refunds, and the application of Stripe's webhook events to them."""

from app.payments.loaders import PaymentLoaders, PaymentPageKey
from app.payments.refunds import (
    Refund,
    RefundAudit,
    RefundFailed,
    RefundReason,
    RefundService,
    RefundStatus,
    audit_for,
    refundable,
)
from app.payments.service import (
    BreakdownDraft,
    CaptureMethod,
    CurrencySummary,
    Payment,
    PaymentDeclined,
    PaymentDraft,
    PaymentService,
    PaymentStatus,
)
from app.payments.webhooks import ReceivedEvent, StripeWebhooks, stripe_webhook_endpoint

__all__ = [
    "BreakdownDraft",
    "CaptureMethod",
    "CurrencySummary",
    "Payment",
    "PaymentDeclined",
    "PaymentDraft",
    "PaymentLoaders",
    "PaymentPageKey",
    "PaymentService",
    "PaymentStatus",
    "ReceivedEvent",
    "Refund",
    "RefundAudit",
    "RefundFailed",
    "RefundReason",
    "RefundService",
    "RefundStatus",
    "StripeWebhooks",
    "audit_for",
    "refundable",
    "stripe_webhook_endpoint",
]
