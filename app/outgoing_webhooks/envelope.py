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

__all__ = ["API_VERSION", "EVENT_TYPES", "api_view", "envelope_json"]

# Bumped when an envelope or object changes in a way a receiver could notice (a field removed,
# renamed or retyped); new fields do not bump it.
API_VERSION = "2026-11-30"

EVENT_TYPES: dict[str, str] = {
    "payment.succeeded": "A payment's money was captured.",
    "payment.failed": "A payment attempt was declined or failed.",
    "payment.requires_action": "A payment waits for the customer (e.g. 3-D Secure).",
    "refund.succeeded": "A refund was sent back to the customer.",
    "refund.failed": "A refund was refused by the payment provider.",
    "invoice.finalized": "An invoice got its number and became payable (or paid, when 0 is due).",
    "invoice.paid": "An invoice was paid in full.",
    "invoice.voided": "An invoice was cancelled; it keeps its number.",
    "credit_note.created": "A credit note was issued against an invoice.",
    "subscription.created": "A subscription was created.",
    "subscription.updated": "A subscription changed (plan, quantity, period, pause, …).",
    "subscription.trial_will_end": "A subscription's trial ends within 3 days (sent once).",
    "subscription.past_due": "A subscription's renewal charge failed (sent at each failure).",
    "subscription.canceled": "A subscription ended.",
    "webhook_endpoint.disabled": "An endpoint was disabled after its deliveries failed for too "
    "long (sent to the organization's other endpoints).",
}


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
