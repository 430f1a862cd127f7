"""The payment: its statuses and the transitions between them (enforced again by database
triggers), the draft of a new payment and its validation, and how a Stripe PaymentIntent's
state is recorded on the row (``PaymentService`` in ``service.py`` drives the calls)."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.core.errors import DomainError, ErrorCode, ValidationFailed
from app.core.ids import has_prefix
from app.core.money import MAX_AMOUNT, Money, row_money
from app.stripe import CardDeclined, StripeIntent
from db.connection import Row

log = logging.getLogger("app.payments.service")  # the name its warnings had


_MAX_METADATA_KEYS = 40  # Stripe allows 50; we add our own keys
_RESERVED_PREFIX = "billing_"


class PaymentStatus(enum.Enum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    FAILED = "failed"


class CaptureMethod(enum.Enum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


S = PaymentStatus
_OPEN = frozenset(
    {S.REQUIRES_ACTION, S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.CANCELED, S.FAILED}
)
# The same table as payments_guard() in db/migrations/0003: the database refuses any other change.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.REQUIRES_PAYMENT_METHOD: _OPEN | {S.REQUIRES_CONFIRMATION},
    S.REQUIRES_CONFIRMATION: _OPEN | {S.REQUIRES_PAYMENT_METHOD},
    S.REQUIRES_ACTION: (_OPEN - {S.REQUIRES_ACTION})
    | {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION},
    S.PROCESSING: frozenset({S.REQUIRES_CAPTURE, S.SUCCEEDED, S.CANCELED, S.FAILED}),
    S.REQUIRES_CAPTURE: frozenset({S.SUCCEEDED, S.CANCELED}),
    # Stripe lets a declined PaymentIntent be retried (e.g. by Stripe.js); a refresh records it.
    S.FAILED: (_OPEN - {S.FAILED}) | {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION},
    S.SUCCEEDED: frozenset(),
    S.CANCELED: frozenset(),
}
TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

CONFIRMABLE = (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION)
CAPTURABLE = (S.REQUIRES_CAPTURE,)
CANCELABLE = (
    S.REQUIRES_PAYMENT_METHOD,
    S.REQUIRES_CONFIRMATION,
    S.REQUIRES_ACTION,
    S.REQUIRES_CAPTURE,
    S.FAILED,
)


class _Op(enum.Enum):
    CONFIRM = "confirm"
    CAPTURE = "capture"
    CANCEL = "cancel"
    REFRESH = "refresh"


_ALLOWED: dict[_Op, tuple[PaymentStatus, ...]] = {
    _Op.CONFIRM: CONFIRMABLE,
    _Op.CAPTURE: CAPTURABLE,
    _Op.CANCEL: CANCELABLE,
    _Op.REFRESH: tuple(s for s in PaymentStatus if s not in TERMINAL),
}
# Statuses that are the answer to an operation: what a retry of an interrupted request returns.
_OUTCOMES: dict[_Op, frozenset[PaymentStatus]] = {
    _Op.CONFIRM: frozenset(
        {S.REQUIRES_ACTION, S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED}
    ),
    _Op.CAPTURE: frozenset({S.SUCCEEDED}),
    _Op.CANCEL: frozenset({S.CANCELED}),
    _Op.REFRESH: frozenset(PaymentStatus),
}
_VERBS = {
    _Op.CONFIRM: "confirmed",
    _Op.CAPTURE: "captured",
    _Op.CANCEL: "canceled",
    _Op.REFRESH: "refreshed",
}


@dataclass(frozen=True, slots=True)
class Breakdown:
    subtotal: Money
    tax: Money
    shipping: Money
    discount: Money


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    organization_id: str
    customer_id: str
    amount: Money
    status: PaymentStatus
    capture_method: CaptureMethod
    description: str
    order_id: str | None
    breakdown: Breakdown | None
    metadata: dict[str, str]
    payment_method_id: str | None
    stripe_payment_intent_id: str
    client_secret: str | None
    next_action: dict[str, Any] | None
    amount_capturable: Money
    amount_captured: Money
    amount_refunded: Money
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Payment:
        money = row_money(row)
        breakdown = None
        if row["subtotal_amount"] is not None:
            breakdown = Breakdown(
                subtotal=money("subtotal_amount"),
                tax=money("tax_amount"),
                shipping=money("shipping_amount"),
                discount=money("discount_amount"),
            )
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            customer_id=row["customer_id"],
            amount=money("amount"),
            status=PaymentStatus(row["status"]),
            capture_method=CaptureMethod(row["capture_method"]),
            description=row["description"],
            order_id=row["order_id"],
            breakdown=breakdown,
            metadata=row["metadata"],
            payment_method_id=row["payment_method_id"],
            stripe_payment_intent_id=row["stripe_payment_intent_id"],
            client_secret=row["client_secret"],
            next_action=row["next_action"],
            amount_capturable=money("amount_capturable"),
            amount_captured=money("amount_captured"),
            amount_refunded=money("amount_refunded"),
            failure_code=row["failure_code"],
            failure_message=row["failure_message"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class CurrencySummary:
    currency: str
    count: int
    succeeded_count: int
    succeeded: Money
    refunded: Money

    @property
    def net(self) -> Money:
        return self.succeeded - self.refunded


@dataclass(frozen=True)
class BreakdownDraft:
    subtotal: int
    tax: int = 0
    shipping: int = 0
    discount: int = 0


@dataclass(frozen=True)
class PaymentDraft:
    customer_id: str
    amount: int
    currency: str
    description: str = ""
    order_id: str | None = None
    breakdown: BreakdownDraft | None = None
    metadata: Any = field(default_factory=dict)  # validated: an object of strings
    payment_method_id: str | None = None
    capture_method: CaptureMethod = CaptureMethod.AUTOMATIC


class PaymentDeclined(DomainError):
    """Stripe declined the card: the error, with the payment it left ``failed``."""

    def __init__(self, payment: Payment, error: DomainError) -> None:
        super().__init__(error.code, error.message, field=error.field, details=error.details)
        self.payment = payment


def _method(value: str | None) -> str | None:
    if value is None:
        return None
    method = value.strip()
    if not method.startswith("pm_") or len(method) > 255:
        raise DomainError(
            ErrorCode.INVALID,
            "A payment method id looks like pm_…",
            field=("input", "paymentMethodId"),
        )
    return method


def _validate(draft: PaymentDraft) -> dict[str, Any]:
    """The normalized values of a new payment, or every problem at once."""
    path = ("input",)
    errors: list[DomainError] = []
    values: dict[str, Any] = {}

    def bad(name: tuple[str, ...], message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        errors.append(DomainError(code, message, field=(*path, *name)))

    try:
        amount = Money.of(draft.amount, draft.currency, field=(*path, "amount"))
        if amount.amount <= 0:
            bad(("amount", "amount"), "A payment amount is more than zero minor units.")
        values["amount"] = amount
    except DomainError as exc:
        errors.append(exc)
    if not has_prefix(draft.customer_id, "cus"):
        bad(("customerId",), "Customer not found.", ErrorCode.NOT_FOUND)
    description = draft.description.strip()
    if len(description) > 1000:
        bad(("description",), "Description must be at most 1000 characters.")
    values["description"] = description
    order_id = (draft.order_id or "").strip() or None
    if order_id is not None and len(order_id) > 200:
        bad(("orderId",), "Order id must be at most 200 characters.")
    values["order_id"] = order_id
    metadata = draft.metadata if draft.metadata is not None else {}
    if not isinstance(metadata, dict) or len(metadata) > _MAX_METADATA_KEYS:
        bad(("metadata",), f"Metadata is an object of at most {_MAX_METADATA_KEYS} keys.")
    elif not all(
        isinstance(k, str) and isinstance(v, str) and 1 <= len(k) <= 40 and len(v) <= 500
        for k, v in metadata.items()
    ):
        bad(("metadata",), "Metadata keys (1-40 chars) and values (≤ 500 chars) are strings.")
    elif any(k.startswith(_RESERVED_PREFIX) for k in metadata):
        bad(("metadata",), f"Metadata keys starting with {_RESERVED_PREFIX!r} are reserved.")
    values["metadata"] = metadata
    if draft.breakdown is not None:
        parts = draft.breakdown
        numbers = (parts.subtotal, parts.tax, parts.shipping, parts.discount)
        if not all(0 <= n <= MAX_AMOUNT for n in numbers):
            bad(("breakdown",), "Breakdown amounts are zero or more minor units.")
        elif parts.subtotal + parts.tax + parts.shipping - parts.discount != draft.amount:
            bad(
                ("breakdown",),
                "The breakdown must add up to the amount: subtotal + tax + shipping - discount.",
            )
    values["breakdown"] = draft.breakdown
    try:
        values["payment_method_id"] = _method(draft.payment_method_id)
    except DomainError as exc:
        errors.append(exc)
    if errors:
        raise ValidationFailed(errors)
    return values


def _status_of(intent: StripeIntent) -> PaymentStatus:
    """Our status for a PaymentIntent: Stripe's, except that a PaymentIntent back at
    ``requires_payment_method`` after an attempt (decline, failed 3-D Secure) is ``failed``."""
    if intent.status == "requires_payment_method" and intent.error_code:
        return S.FAILED
    try:
        return PaymentStatus(intent.status)
    except ValueError:
        log.warning("unknown PaymentIntent status %r; treated as processing", intent.status)
        return S.PROCESSING


def _recorded(row: Row, intent: StripeIntent) -> dict[str, Any]:
    """The columns that record ``intent`` on ``row``, never with a transition the state machine
    forbids (the database would refuse it too)."""
    current = PaymentStatus(row["status"])
    status = _status_of(intent)
    if status is not current and status not in TRANSITIONS[current]:
        log.warning(
            "payment %s: Stripe reports %s, which cannot follow %s; kept",
            row["id"],
            status.value,
            current.value,
        )
        status = current
    captured = 0
    if status is S.SUCCEEDED:
        if current is S.SUCCEEDED:
            captured = row["amount_captured"]
        elif intent.amount_received is not None:
            captured = intent.amount_received
        elif row["operation"] == _Op.CAPTURE.value and row["operation_amount"] is not None:
            captured = row["operation_amount"]
        else:
            captured = intent.amount
    failed = status is S.FAILED
    return {
        "status": status.value,
        "payment_method_id": intent.payment_method or row["payment_method_id"],
        "next_action": intent.next_action if status is S.REQUIRES_ACTION else None,
        "amount_capturable": (
            (intent.amount_capturable or intent.amount) if status is S.REQUIRES_CAPTURE else 0
        ),
        "amount_captured": captured,
        "failure_code": (intent.error_code or row["failure_code"]) if failed else None,
        "failure_message": (intent.error_message or row["failure_message"]) if failed else None,
    }


def _declined(exc: CardDeclined) -> dict[str, Any]:
    return {
        "status": S.FAILED.value,
        "next_action": None,
        "amount_capturable": 0,
        "amount_captured": 0,
        "failure_code": exc.decline_code,
        "failure_message": exc.provider_message,
    }
