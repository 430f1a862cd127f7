"""The event envelope other back ends receive: its types, its version, and the object it
carries, rendered as the GraphQL API shows it (camelCase fields, enum names, ``Money`` as
``{amount, currency, decimal}`` with the amount as a string, times in ISO 8601 UTC)."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from app.core.money import Money

__all__ = ["API_VERSION", "EVENT_TYPES", "NAMES", "EventType", "api_view", "envelope_json"]

# Bumped when an envelope or object changes in a way a receiver could notice (a field removed,
# renamed or retyped); new fields do not bump it.
API_VERSION = "2026-11-30"


class EventType(enum.Enum):
    """The events other back ends can receive (the envelope's ``type`` is the value)."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REQUIRES_ACTION = "payment.requires_action"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_PAID = "invoice.paid"
    INVOICE_VOIDED = "invoice.voided"
    CREDIT_NOTE_CREATED = "credit_note.created"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_UPDATED = "subscription.updated"
    SUBSCRIPTION_TRIAL_WILL_END = "subscription.trial_will_end"
    SUBSCRIPTION_PAST_DUE = "subscription.past_due"
    SUBSCRIPTION_CANCELED = "subscription.canceled"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"


E = EventType
EVENT_TYPES: dict[EventType, str] = {
    E.PAYMENT_SUCCEEDED: "A payment's money was captured.",
    E.PAYMENT_FAILED: "A payment attempt was declined or failed.",
    E.PAYMENT_REQUIRES_ACTION: "A payment waits for the customer (e.g. 3-D Secure).",
    E.REFUND_SUCCEEDED: "A refund was sent back to the customer.",
    E.REFUND_FAILED: "A refund was refused by the payment provider.",
    E.INVOICE_FINALIZED: "An invoice got its number and became payable (or paid, when 0 is due).",
    E.INVOICE_PAID: "An invoice was paid in full.",
    E.INVOICE_VOIDED: "An invoice was cancelled; it keeps its number.",
    E.CREDIT_NOTE_CREATED: "A credit note was issued against an invoice.",
    E.SUBSCRIPTION_CREATED: "A subscription was created (trialing, or incomplete until paid).",
    E.SUBSCRIPTION_UPDATED: "A subscription changed (status, plan, quantity, period, pause, …).",
    E.SUBSCRIPTION_TRIAL_WILL_END: "A subscription's trial ends within 3 days (sent once).",
    E.SUBSCRIPTION_PAST_DUE: "A subscription's renewal charge failed (sent at each failure).",
    E.SUBSCRIPTION_CANCELED: "A subscription ended (canceled, or incomplete and expired).",
    E.WEBHOOK_ENDPOINT_DISABLED: "An endpoint was disabled after its deliveries failed for "
    "WEBHOOK_MAX_AGE (sent to the organization's other endpoints that want it).",
}
NAMES = frozenset(t.value for t in EventType)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _value(value: Any) -> Any:
    if isinstance(value, Money):
        return {"amount": str(value.amount), "currency": value.currency, "decimal": value.decimal}
    if isinstance(value, enum.Enum):
        return value.name  # GraphQL enum values are the members' names
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return api_view(value)
    if isinstance(value, Mapping):
        return {str(k): _value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_value(v) for v in value]
    return value


def api_view(
    obj: Any,
    *,
    typename: str | None = None,
    hide: frozenset[str] = frozenset(),
    links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A domain dataclass as the API shows it: each field under its GraphQL name, except
    ``organization_id`` and ``hide`` (kept internal), and ``links`` (``customer_id`` →
    ``customer``) rendered as the related object's ``{"id": …}``."""
    links = links or {}
    view: dict[str, Any] = {} if typename is None else {"__typename": typename}
    for f in dataclasses.fields(obj):
        if f.name == "organization_id" or f.name in hide or f.name.startswith("_"):
            continue
        value = getattr(obj, f.name)
        if f.name in links:
            view[links[f.name]] = None if value is None else {"id": value}
        else:
            view[_camel(f.name)] = _value(value)
    return view


def envelope_json(
    *, event_id: str, event_type: str, org: str, created: datetime, data: dict[str, Any]
) -> str:
    """The exact text sent (and signed) for an event, the same for every delivery."""
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "apiVersion": API_VERSION,
            "created": created.isoformat(),
            "organization": org,
            "data": {"object": data},
        },
        separators=(",", ":"),
        sort_keys=False,
    )
