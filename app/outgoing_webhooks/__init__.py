"""Outgoing webhooks: events for other back ends, written to an outbox in the transaction of
the change (``emit``), delivered signed by the workers (``WebhookSender``) to the endpoints an
organization's admins register (``WebhookEndpoints``). Incoming Stripe webhooks are elsewhere:
``app/payments/webhooks.py``. See docs/webhooks.md."""

from app.outgoing_webhooks.addresses import Refused, check_url, resolve
from app.outgoing_webhooks.delivery import DeliveryPolicy, WebhookSender, backoff
from app.outgoing_webhooks.endpoints import EndpointChange, EndpointDraft, WebhookEndpoints
from app.outgoing_webhooks.envelope import API_VERSION, EVENT_TYPES, EventType, api_view
from app.outgoing_webhooks.loaders import WebhookLoaders
from app.outgoing_webhooks.model import (
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.outgoing_webhooks.outbox import emit
from app.outgoing_webhooks.retention import WebhookRetention
from app.outgoing_webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
    verify,
)

__all__ = [
    "API_VERSION",
    "EVENT_ID_HEADER",
    "EVENT_TYPES",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryAttempt",
    "DeliveryPolicy",
    "DeliveryStatus",
    "EndpointChange",
    "EndpointDraft",
    "EventType",
    "Refused",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpoints",
    "WebhookEvent",
    "WebhookLoaders",
    "WebhookRetention",
    "WebhookSender",
    "api_view",
    "backoff",
    "check_url",
    "emit",
    "resolve",
    "sign",
    "verify",
]
