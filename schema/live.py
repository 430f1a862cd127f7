"""The `Live` root subscription type (graphql-transport-ws) and the types it streams."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import traceback
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar, cast

import strawberry
from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.core.errors import PublicError
from app.statistics import RevenueSnapshot as DomainRevenueSnapshot
from resolvers import entitlements as resolve_entitlements
from resolvers import live as resolve
from schema.base import Info
from schema.entitlements import Entitlements
from schema.graphql_core_internals import give_own_subfield_memo
from schema.money import Money
from schema.payments import Payment
from schema.permissions import AdminOnly, AnyRole
from schema.refunds import Refund

__all__ = [
    "Live",
    "PaymentEvent",
    "PaymentEventKind",
    "PerEventExecutor",
    "RevenueSnapshot",
]

log = logging.getLogger("billing.graphql")

T = TypeVar("T")


_SHAREABLE_EVENTS: tuple[type, ...] = (DomainRevenueSnapshot,)
"""Event payloads one process hands to many subscribers at once (the feeds share one object)
and whose fields resolve from the payload alone, never from the subscriber's context: their
result for one document and variables is the same for every subscriber."""

_SharedKey = tuple[int, int, str]


class _SharedResults:
    """Recent results of shareable events, by (payload, operation node, variables). The
    operation node is the same object for every subscriber of the same text (the parser cache),
    and entries hold their payload and node, so identities are not reused while cached."""

    def __init__(self, maxsize: int = 256) -> None:
        self._maxsize = maxsize
        self._entries: OrderedDict[_SharedKey, tuple[object, object, ExecutionResult]] = (
            OrderedDict()
        )
        self.hits = 0

    def get(self, key: _SharedKey, payload: object, operation: object) -> ExecutionResult | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] is not payload or entry[1] is not operation:
            return None
        self.hits += 1
        return entry[2]

    def put(
        self, key: _SharedKey, payload: object, operation: object, result: ExecutionResult
    ) -> None:
        self._entries[key] = (payload, operation, result)
        if len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)


shared_event_results = _SharedResults()


class PerEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Executes subscription events, with two changes to graphql-core 3.3:

    - graphql-core executes each event with a copy of the subscription's executor that shares
      its memo of collected subfields. The memo is keyed by the identity of lists made anew for
      every event, so it never hits across events and grew by about a hundred objects per event
      for as long as a subscription lived (a dashboard open all day leaked millions, and full
      garbage collections paused the process for seconds). Each event gets its own memo
      instead; within an event it works as before. graphql-core has no public way to do that:
      the reach-in is in ``schema/graphql_core_internals.py``.
    - A shareable event (``_SHAREABLE_EVENTS``: the revenue snapshot, one object for every
      subscriber of an organization) is executed once per document and variables, not once per
      subscriber: 500 dashboards open on one organization cost one execution per change.
    """

    def build_per_event_executor(self, payload: Any) -> PerEventExecutor:
        executor = cast(PerEventExecutor, super().build_per_event_executor(payload))
        give_own_subfield_memo(executor)
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        if not isinstance(payload, _SHAREABLE_EVENTS):
            return super().execute_operation(serially)
        variables = json.dumps(self.variable_values, sort_keys=True, default=str)
        key = (id(payload), id(self.operation), variables)
        found = shared_event_results.get(key, payload, self.operation)
        if found is not None:
            return found
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            shared_event_results.put(key, payload, self.operation, result)
        return result


class StreamFailed(PublicError):
    code = "INTERNAL_SERVER_ERROR"


async def _guarded(name: str, stream: AsyncIterator[T]) -> AsyncIterator[T]:
    """Ends a stream that failed unexpectedly with a generic error. An exception escaping a
    subscription's stream reaches the client without a path, which the masking rule takes for
    a request error and would show as it is (SQL, parameters, keys)."""
    try:
        async for item in stream:
            yield item
    except PublicError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is masked, and logged safely
        frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f"{frame[0].filename}:{frame[0].lineno}" if frame else "unknown"
        log.error("unexpected %s in Live.%s at %s", type(exc).__name__, name, where)
        raise StreamFailed("Unexpected error; subscribe again.") from None


@strawberry.type(description="Net revenue of one day (UTC) in one currency.")
class RevenueSnapshotDay:
    day: date = strawberry.field(description="The day, UTC.")
    net: Money = strawberry.field(
        description="Succeeded payments minus succeeded refunds of that day, in minor units."
    )


@strawberry.type(description="Revenue figures of one currency; currencies are never summed.")
class CurrencyRevenueSnapshot:
    currency: str = strawberry.field(description="ISO 4217 code.")
    today: Money = strawberry.field(
        description="Net revenue of the current day (UTC) so far: succeeded payments minus "
        "succeeded refunds."
    )
    this_month: Money = strawberry.field(
        description="Net revenue of the current calendar month (UTC) so far."
    )
    net_total: Money = strawberry.field(description="Net revenue of all time.")
    mrr: Money = strawberry.field(
        description="Monthly recurring revenue now (as defined for `subscriptionStats`)."
    )
    payments_today: int = strawberry.field(
        description="Payments that succeeded during the current day (UTC)."
    )
    days: list[RevenueSnapshotDay] = strawberry.field(
        description="Net revenue per day over the last 30 days, oldest first, today last "
        "(days without revenue included, at zero)."
    )


@strawberry.type(description="The organization's revenue at one moment, per currency.")
class RevenueSnapshot:
    at: datetime = strawberry.field(
        description="The moment the figures describe (UTC; the organization's test clock in "
        "test mode)."
    )
    currencies: list[CurrencyRevenueSnapshot] = strawberry.field(
        description="One entry per currency with revenue or recurring revenue, ordered by "
        "code; with `currency`, exactly that one (zeros when it has none)."
    )


@strawberry.enum(description="What a `PaymentEvent` is about.")
class PaymentEventKind(enum.Enum):
    PAYMENT = strawberry.enum_value(
        "payment", description="A payment was created or its status changed."
    )
    REFUND = strawberry.enum_value(
        "refund", description="A refund was requested or its status changed."
    )


@strawberry.type(
    description="A payment or refund was created or changed status (sent after the change "
    "was committed)."
)
class PaymentEvent:
    kind: PaymentEventKind = strawberry.field(description="Payment or refund.")
    status: str = strawberry.field(
        description="The status it changed to: a `PaymentStatus` value for PAYMENT, a "
        "`RefundStatus` value for REFUND (e.g. `SUCCEEDED`)."
    )
    occurred_at: datetime = strawberry.field(description="When the change was written (UTC).")
    customer_id: strawberry.ID = strawberry.field(description="The customer it belongs to.")
    payment: Payment = strawberry.field(
        description="The payment (for REFUND: the refunded payment), loaded when the event is "
        "sent, so it may already show a later change."
    )
    refund: Refund | None = strawberry.field(
        description="The refund, loaded when the event is sent; null for PAYMENT."
    )


@strawberry.type(
    description="Live event streams over WebSocket (`graphql-transport-ws` at `/graphql`; send "
    'the token in `connection_init` as `{"authorization": "Bearer <token>"}`). A connection '
    "may run a limited number of subscriptions at once (`WS_MAX_SUBSCRIPTIONS_PER_CONNECTION`, "
    "default 10); past it a new one gets an error naming the limit."
)
class Live:
    @strawberry.subscription(
        description="Server time every `intervalSeconds` (1-60): a liveness signal for clients.",
        permission_classes=[AnyRole],
    )
    async def heartbeat(
        self,
        info: Info,
        interval_seconds: Annotated[
            int, strawberry.argument(description="Seconds between beats, clamped to 1-60.")
        ] = 15,
    ) -> AsyncGenerator[datetime, None]:
        interval = min(max(interval_seconds, 1), 60)
        while True:
            yield datetime.now(UTC)
            await asyncio.sleep(interval)

    @strawberry.subscription(
        description="Admin only. The organization's revenue per currency (today, this month, "
        "all time, MRR, the last 30 days), sent at once and again after every payment, refund "
        "or subscription change of the organization, once committed. Changes that arrive "
        "while a snapshot is being computed are merged into one more snapshot. A fresh "
        "snapshot is also sent when the server may have missed changes (its event listener "
        "reconnected).",
        permission_classes=[AdminOnly],
    )
    async def revenue(
        self,
        info: Info,
        currency: Annotated[
            str | None,
            strawberry.argument(description="Only this ISO 4217 currency; omitted: all."),
        ] = None,
    ) -> AsyncGenerator[RevenueSnapshot, None]:
        async for snapshot in _guarded("revenue", resolve.revenue(info.context, currency)):
            # The domain snapshot is served as the schema type (same fields); strawberry has
            # no graphql_type= for subscription items, so the generator's type can't say so.
            yield snapshot  # type: ignore[misc]

    @strawberry.subscription(
        description="Each payment and refund change of your organization, once committed, "
        "from now on (nothing is replayed: load `payments` first, and again after a "
        "reconnect). A customer token receives its own customer's only (another "
        "`customerId` is FORBIDDEN); admins and services receive every customer's, or one "
        "customer's with `customerId` (NOT_FOUND if it is not a customer of theirs).",
        permission_classes=[AnyRole],
    )
    async def payment_events(
        self,
        info: Info,
        customer_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only this customer's (`cus_…`); omitted: all."),
        ] = None,
    ) -> AsyncGenerator[PaymentEvent, None]:
        changes = resolve.payment_events(info.context, customer_id)
        async for change in _guarded("paymentEvents", changes):
            yield PaymentEvent(
                kind=PaymentEventKind(change.kind),
                status=change.status,
                occurred_at=change.occurred_at,
                customer_id=strawberry.ID(change.customer_id),
                # Domain objects served as the schema types (their fields resolve from them);
                # the event type is a plain strawberry type whose fields declare schema types.
                payment=change.payment,  # type: ignore[arg-type]
                refund=change.refund,  # type: ignore[arg-type]
            )

    @strawberry.subscription(
        description="The customer's entitlements (as `Query.entitlements`), sent at once and "
        "again after every change that may alter them, once committed: its subscriptions' "
        "changes (created, plan or quantity changed, trial ended, paused, resumed, canceled), "
        "updates of plans, and usage (which uses included credits); bursts are merged into one "
        "message. A customer token watches its own only (another is FORBIDDEN).",
        permission_classes=[AnyRole],
    )
    async def entitlements(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="`cus_…`.")],
    ) -> AsyncGenerator[Entitlements, None]:
        stream = resolve_entitlements.watch(info.context, customer_id)
        async for value in _guarded("entitlements", stream):
            yield Entitlements.of(value)
