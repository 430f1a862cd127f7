"""Outgoing webhooks and received Stripe events: types, inputs, payloads, queries, mutations.
Admins only, except ``events`` (admins and services). See docs/webhooks.md."""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.scalars import JSON

from app.core.errors import PublicError
from app.outgoing_webhooks import DeliveryAttempt as DomainAttempt
from app.outgoing_webhooks import EndpointChange, EndpointDraft
from app.outgoing_webhooks import WebhookDelivery as DomainDelivery
from app.outgoing_webhooks import WebhookEndpoint as DomainEndpoint
from app.outgoing_webhooks import WebhookEvent as DomainEvent
from app.payments import ReceivedEvent
from resolvers import outgoing_webhooks as resolve
from schema.base import INPUT, Info
from schema.enums import WebhookDeliveryStatus, WebhookEventType, expose
from schema.errors import UserError, attempt
from schema.filters import as_utc
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    ORDER_BY,
    Connection,
    ListOrder,
    newest_first,
    ordered,
    to_connection,
    to_keyed_connection,
    window,
)
from schema.permissions import AdminOnly, AdminOrService

__all__ = ["WebhookMutations", "WebhookQueries"]

T = TypeVar("T")


class StripeEventStatus(enum.Enum):
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"


expose(
    StripeEventStatus,
    "StripeEventStatus",
    "What became of a Stripe event received at /webhooks/stripe.",
    {
        StripeEventStatus.PROCESSING: "Being applied.",
        StripeEventStatus.PROCESSED: "Applied.",
        StripeEventStatus.FAILED: "Could not be applied; `error` says why (`stripeEventReplay`).",
    },
)


@strawberry.type(
    description="An HTTPS address of yours that receives signed events (docs/webhooks.md)."
)
class WebhookEndpoint(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `we_…`.")

    is_type_of = serves(DomainEndpoint)
    url: str = strawberry.field(
        description="Where events are POSTed: https (http to a loopback host outside "
        "production); in production never a private, loopback or link-local address."
    )
    description: str = strawberry.field(description="Your note; may be empty.")
    enabled: bool = strawberry.field(
        description="False: nothing is sent (set by you, or after WEBHOOK_MAX_AGE of failures)."
    )
    disabled_reason: str | None = strawberry.field(description="Why it is disabled, if it is.")
    failing_since: datetime | None = strawberry.field(
        description="While deliveries fail: the time of the oldest event not acknowledged since "
        "the last success; null after a success. The endpoint is disabled once this is "
        "WEBHOOK_MAX_AGE (3 days) old."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation, until when the previous secret also signs (a second "
        "`v1` in `Billing-Signature`); null when only the current secret signs."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")

    @strawberry.field(description="The event types sent to this endpoint.")
    def event_types(self, root: strawberry.Parent[DomainEndpoint]) -> list[WebhookEventType]:
        return [WebhookEventType(t) for t in root.event_types]


@strawberry.type(description="One attempt of a delivery (the delivery log).")
class WebhookDeliveryAttempt:
    attempt: int = strawberry.field(description="1 for the first attempt, then 2, …")
    started_at: datetime = strawberry.field(description="When it was sent (UTC).")
    duration_ms: int = strawberry.field(description="Until the answer's status, in ms.")
    status_code: int | None = strawberry.field(
        description="The HTTP status answered; null when none came (refused, timeout, …)."
    )
    error: str | None = strawberry.field(description="Why it failed; null for a 2xx.")


@strawberry.type(description="One event sent (or to be sent) to one endpoint.")
class WebhookDelivery(Node):
    id: strawberry.ID = strawberry.field(
        description="Opaque id, `whd_…`, one per event and endpoint, sortable by event time."
    )

    is_type_of = serves(DomainDelivery)
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint, `we_…`.")
    event_id: strawberry.ID = strawberry.field(
        description="The event, `evt_…` (the `Billing-Event-Id` header: de-duplicate on it)."
    )
    status: WebhookDeliveryStatus = strawberry.field(description="Where it stands.")
    attempts: int = strawberry.field(description="Attempts so far.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When it is tried next (UTC), while PENDING."
    )
    last_status_code: int | None = strawberry.field(description="The last HTTP status answered.")
    last_error: str | None = strawberry.field(description="Why the last attempt failed.")
    delivered_at: datetime | None = strawberry.field(description="When it succeeded (UTC).")
    created_at: datetime = strawberry.field(description="When the event was written (UTC).")

    @strawberry.field(description="The event's type.")
    def event_type(self, root: strawberry.Parent[DomainDelivery]) -> WebhookEventType:
        return WebhookEventType(root.event_type)

    @strawberry.field(
        description="Every attempt, oldest first (at most one per retry; bounded by the 3-day "
        "retry window)."
    )
    async def log(
        self, info: Info, root: strawberry.Parent[DomainDelivery]
    ) -> list[WebhookDeliveryAttempt]:
        found: list[DomainAttempt] = await resolve.attempts(info.context, root)
        return found  # type: ignore[return-value]  # served as the schema type


@strawberry.type(description="An event as sent to endpoints (the outbox, kept for catching up).")
class WebhookEvent(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `evt_…`, sortable by time.")

    is_type_of = serves(DomainEvent)
    api_version: str = strawberry.field(description="The envelope's version.")
    object_id: strawberry.ID = strawberry.field(description="The object it is about.")
    created_at: datetime = strawberry.field(description="When the change committed (UTC).")

    @strawberry.field(description="The event's type.")
    def type(self, root: strawberry.Parent[DomainEvent]) -> WebhookEventType:
        return WebhookEventType(root.type)

    @strawberry.field(
        description="The envelope exactly as delivered: `id`, `type`, `apiVersion`, "
        "`created`, `organization`, `data.object` (the object as this API shows it)."
    )
    def envelope(self, root: strawberry.Parent[DomainEvent]) -> JSON:
        return root.envelope  # type: ignore[no-any-return]


@strawberry.type(description="A Stripe event received at /webhooks/stripe.")
class StripeEvent(Node):
    id: strawberry.ID = strawberry.field(description="Stripe's event id, `evt_…`.")

    is_type_of = serves(ReceivedEvent)
    type: str = strawberry.field(
        description="Stripe's event type, e.g. `payment_intent.succeeded`."
    )
    attempts: int = strawberry.field(description="Deliveries (and replays) that tried it.")
    received_at: datetime = strawberry.field(description="First received (UTC).")
    processed_at: datetime | None = strawberry.field(description="When it was applied (UTC).")
    error: str | None = strawberry.field(description="Why it could not be applied.")
    replayable: bool = strawberry.field(
        description="True when it failed and its body was kept, so `stripeEventReplay` can "
        "apply it again."
    )

    @strawberry.field(description="What became of it.")
    def status(self, root: strawberry.Parent[ReceivedEvent]) -> StripeEventStatus:
        return StripeEventStatus(root.state)


# -- inputs and payloads --------------------------------------------------------------------


@strawberry.input(description="A new endpoint.")
class WebhookEndpointCreateInput:
    url: str = strawberry.field(description="https URL, at most 2048 characters.")
    event_types: list[WebhookEventType] = strawberry.field(
        description="The events to send it (at least one)."
    )
    description: str = strawberry.field(default="", description="At most 1000 characters.")


@strawberry.input(description="Change an endpoint; omitted fields stay as they are.")
class WebhookEndpointUpdateInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint, `we_…`.")
    url: str | None = strawberry.field(default=None, description="New URL (checked again).")
    event_types: list[WebhookEventType] | None = strawberry.field(
        default=None, description="New event types (replace the old ones)."
    )
    description: str | None = strawberry.field(default=None, description="New description.")
    enabled: bool | None = strawberry.field(
        default=None,
        description="False stops deliveries (pending ones fail); true starts again and clears "
        "the failure record (events missed meanwhile: `events`, or `webhookRedeliver`).",
    )


@strawberry.input(description="A new signing secret for an endpoint.")
class WebhookEndpointRotateSecretInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint, `we_…`.")
    grace_hours: int = strawberry.field(
        default=24,
        description="Hours (0-168) the current secret keeps signing next to the new one, so "
        "receivers can switch without refusing a delivery; 0 ends it at once.",
    )


@strawberry.input(description="An endpoint to delete.")
class WebhookEndpointDeleteInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint, `we_…`.")


@strawberry.input(description="A delivery to send again.")
class WebhookRedeliverInput:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery, `whd_…`.")


@strawberry.input(description="A failed Stripe event to apply again.")
class StripeEventReplayInput:
    event_id: strawberry.ID = strawberry.field(description="Stripe's event id, `evt_…`.")


@strawberry.type(description="Result of changing or deleting an endpoint.")
class WebhookEndpointPayload:
    endpoint: DomainEndpoint | None = strawberry.field(
        graphql_type=WebhookEndpoint | None, description="The endpoint; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="What went wrong, if anything.")


@strawberry.type(description="Result of creating an endpoint or rotating its secret.")
class WebhookEndpointSecretPayload:
    endpoint: DomainEndpoint | None = strawberry.field(
        graphql_type=WebhookEndpoint | None, description="The endpoint; null on errors."
    )
    secret: str | None = strawberry.field(
        description="The signing secret (`whsec_…`), shown this once: keep it with the "
        "receiver. Null on errors."
    )
    errors: list[UserError] = strawberry.field(description="What went wrong, if anything.")


@strawberry.type(description="Result of `webhookRedeliver`.")
class WebhookDeliveryPayload:
    delivery: DomainDelivery | None = strawberry.field(
        graphql_type=WebhookDelivery | None, description="The delivery, due now; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="What went wrong, if anything.")


@strawberry.type(description="Result of `stripeEventReplay`.")
class StripeEventPayload:
    event: ReceivedEvent | None = strawberry.field(
        graphql_type=StripeEvent | None,
        description="The event after the replay: PROCESSED, or FAILED with the new reason.",
    )
    errors: list[UserError] = strawberry.field(description="What went wrong, if anything.")


def _types(values: list[Any]) -> list[str]:
    return [v.value for v in values]


def _stripe_cursor(event: ReceivedEvent) -> str:
    micros = int(event.received_at.timestamp() * 1_000_000)
    return f"{micros}-{event.id}"


def _stripe_position(key: str | None, name: str) -> tuple[datetime, str] | None:
    """The (received at, event id) a decoded stripeEvents cursor names."""
    if key is None:
        return None
    micros, _, event_id = key.partition("-")
    if not micros.isdigit() or not event_id:
        raise PublicError(f"The `{name}` cursor is not one this API issued.")
    return datetime.fromtimestamp(int(micros) / 1_000_000, UTC), event_id


async def _secret_payload(
    action: Awaitable[tuple[DomainEndpoint, str]],
) -> WebhookEndpointSecretPayload:
    result, errors = await attempt(action)
    if result is None:
        return WebhookEndpointSecretPayload(endpoint=None, secret=None, errors=errors)
    return WebhookEndpointSecretPayload(endpoint=result[0], secret=result[1], errors=[])


async def _endpoint_payload(action: Awaitable[DomainEndpoint]) -> WebhookEndpointPayload:
    endpoint, errors = await attempt(action)
    return WebhookEndpointPayload(endpoint=endpoint, errors=errors)


@strawberry.type
class WebhookQueries:
    @strawberry.field(
        description="The organization's webhook endpoints (at most 16). Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Connection[WebhookEndpoint],
    )
    async def webhook_endpoints(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> Connection[DomainEndpoint]:
        page = window(first, after, last, before)
        nodes, more, count = await resolve.endpoints_page(
            info.context,
            first=page.size,
            after=page.cursor,
            newest=newest_first(order_by, page),
        )
        return to_connection(nodes, more, count, page)

    @strawberry.field(
        description="Deliveries of events to endpoints, each with its attempt log, by event "
        "time. Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Connection[WebhookDelivery],
    )
    async def webhook_deliveries(
        self,
        info: Info,
        endpoint_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this endpoint's.")
        ] = None,
        event_type: Annotated[
            WebhookEventType | None,
            strawberry.argument(description="Only events of this type."),
        ] = None,
        status: Annotated[
            WebhookDeliveryStatus | None, strawberry.argument(description="Only in this status.")
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.NEWEST_FIRST,
    ) -> Connection[DomainDelivery]:
        page = window(first, after, last, before)
        filters = {
            "endpoint_id": endpoint_id,
            "event_type": event_type.value if event_type is not None else None,
            "status": status.value if status is not None else None,
        }
        nodes, more, count = await resolve.deliveries_page(
            info.context, ordered(filters, order_by, page), first=page.size, after=page.cursor
        )
        return to_connection(nodes, more, count, page)

    @strawberry.field(
        description="Events written for other back ends (whatever the endpoints), by time: "
        "catch up after an outage, or check what was sent. `from` inclusive, `to` exclusive. "
        "Admin or service.",
        permission_classes=[AdminOrService],
        graphql_type=Connection[WebhookEvent],
    )
    async def events(
        self,
        info: Info,
        type: Annotated[
            WebhookEventType | None,
            strawberry.argument(description="Only events of this type."),
        ] = None,
        from_: Annotated[
            datetime | None,
            strawberry.argument(
                name="from", description="At or after this time (ISO 8601; UTC without offset)."
            ),
        ] = None,
        to: Annotated[
            datetime | None,
            strawberry.argument(description="Before this time (ISO 8601; UTC without offset)."),
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> Connection[DomainEvent]:
        page = window(first, after, last, before)
        filters = {
            "types": [type.value] if type is not None else None,
            "from": as_utc(from_),
            "to": as_utc(to),
        }
        nodes, more, count = await resolve.events_page(
            info.context, ordered(filters, order_by, page), first=page.size, after=page.cursor
        )
        return to_connection(nodes, more, count, page)

    @strawberry.field(
        description="Stripe events received at /webhooks/stripe, latest first; "
        "`status: FAILED` lists those that could not be applied. Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Connection[StripeEvent],
    )
    async def stripe_events(
        self,
        info: Info,
        status: Annotated[
            StripeEventStatus | None, strawberry.argument(description="Only in this status.")
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
    ) -> Connection[ReceivedEvent]:
        page = window(first, after, last, before)
        nodes, more, count = await resolve.stripe_events_page(
            info.context,
            status.value if status is not None else None,
            first=page.size,
            after=_stripe_position(page.cursor, "before" if page.backward else "after"),
            oldest=page.backward,  # latest first; a backward page reads the other way
        )
        if page.backward:
            nodes = list(reversed(nodes))
        keyed = [(_stripe_cursor(n), n) for n in nodes]
        return to_keyed_connection(
            keyed,
            page.bounded if page.backward else more,
            count,
            has_previous=more if page.backward else page.bounded,
        )


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Register an endpoint; the payload carries its signing secret, shown "
        "once. Events written from now on are sent to it. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def webhook_endpoint_create(
        self,
        info: Info,
        input: Annotated[WebhookEndpointCreateInput, strawberry.argument(description=INPUT)],
    ) -> WebhookEndpointSecretPayload:
        draft = EndpointDraft(
            url=input.url, event_types=_types(input.event_types), description=input.description
        )
        return await _secret_payload(resolve.create(info.context, draft))

    @strawberry.mutation(
        description="Change an endpoint's URL, event types, description, or enable/disable it. "
        "Admin only.",
        permission_classes=[AdminOnly],
    )
    async def webhook_endpoint_update(
        self,
        info: Info,
        input: Annotated[WebhookEndpointUpdateInput, strawberry.argument(description=INPUT)],
    ) -> WebhookEndpointPayload:
        change = EndpointChange(
            url=input.url,
            event_types=None if input.event_types is None else _types(input.event_types),
            description=input.description,
            enabled=input.enabled,
        )
        return await _endpoint_payload(resolve.update(info.context, input.endpoint_id, change))

    @strawberry.mutation(
        description="A new signing secret (shown once); the previous one keeps signing next to "
        "it for `graceHours`. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def webhook_endpoint_rotate_secret(
        self,
        info: Info,
        input: Annotated[WebhookEndpointRotateSecretInput, strawberry.argument(description=INPUT)],
    ) -> WebhookEndpointSecretPayload:
        return await _secret_payload(
            resolve.rotate_secret(info.context, input.endpoint_id, input.grace_hours)
        )

    @strawberry.mutation(
        description="Delete an endpoint and its delivery log (events stay listed in `events`). "
        "Admin only.",
        permission_classes=[AdminOnly],
    )
    async def webhook_endpoint_delete(
        self,
        info: Info,
        input: Annotated[WebhookEndpointDeleteInput, strawberry.argument(description=INPUT)],
    ) -> WebhookEndpointPayload:
        return await _endpoint_payload(resolve.delete(info.context, input.endpoint_id))

    @strawberry.mutation(
        description="Send a delivery again as soon as a worker is free, whatever its status, "
        "with a fresh 3-day retry window (receivers de-duplicate on the event id). Admin only.",
        permission_classes=[AdminOnly],
    )
    async def webhook_redeliver(
        self,
        info: Info,
        input: Annotated[WebhookRedeliverInput, strawberry.argument(description=INPUT)],
    ) -> WebhookDeliveryPayload:
        delivery, errors = await attempt(resolve.redeliver(info.context, input.delivery_id))
        return WebhookDeliveryPayload(delivery=delivery, errors=errors)

    @strawberry.mutation(
        description="Apply again a Stripe event recorded as FAILED, from the body kept when it "
        "failed (after fixing the cause). Admin only.",
        permission_classes=[AdminOnly],
    )
    async def stripe_event_replay(
        self,
        info: Info,
        input: Annotated[StripeEventReplayInput, strawberry.argument(description=INPUT)],
    ) -> StripeEventPayload:
        event, errors = await attempt(resolve.replay(info.context, input.event_id))
        return StripeEventPayload(event=event, errors=errors)
