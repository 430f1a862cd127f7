"""Usage-based billing: billable metrics, metered prices, usage events, usage queries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.core.money import Money as DomainMoney
from app.core.money import exponent
from app.usage import (
    Aggregation,
    EventResult,
    EventStatus,
    Granularity,
    MeteredPriceDraft,
    MeteredPriceRecord,
    MetricDraft,
    PriceModel,
    PriceTierDraft,
    RatedLine,
)
from app.usage import (
    BillableMetric as DomainMetric,
)
from app.usage import (
    MetricUsage as DomainMetricUsage,
)
from app.usage import (
    UsageEventInput as DomainEventInput,
)
from resolvers import usage as resolve
from schema.base import INPUT, Info
from schema.enums import expose
from schema.errors import UserError, attempt
from schema.money import Money
from schema.node import Node, converted
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    Connection,
    ListOrder,
    ordered,
    to_connection,
    window,
)
from schema.permissions import AdminOnly, AdminOrService, AnyRole
from schema.scalars import BigInt

__all__ = [
    "BillableMetric",
    "MeteredPrice",
    "MeteredPriceInput",
    "MetricUsage",
    "UsageMutations",
    "UsageQueries",
    "metered_prices_of",
    "to_drafts",
]

expose(
    Aggregation,
    "Aggregation",
    "How a billable metric turns a period's events into one quantity.",
    {
        Aggregation.COUNT: "The number of events.",
        Aggregation.SUM: "The sum of the values (negative values correct earlier events).",
        Aggregation.MAX: "The largest value.",
        Aggregation.UNIQUE_COUNT: "The number of distinct values of the metric's property.",
        Aggregation.LATEST: "The value of the latest event (by timestamp; ties: the largest).",
    },
)
expose(
    PriceModel,
    "PriceModel",
    "How a metered price turns a quantity into an amount (docs/usage.md has examples).",
    {
        PriceModel.PER_UNIT: "Every unit at `unitPrice`.",
        PriceModel.PACKAGE: "Blocks of `packageSize` units at `unitPrice` each; a started "
        "block counts whole.",
        PriceModel.GRADUATED: "Each tier prices the units that fall in it, plus its flat "
        "amount once reached; one invoice line per tier.",
        PriceModel.VOLUME: "The tier the whole quantity falls in prices every unit, plus its "
        "flat amount.",
    },
)
expose(
    EventStatus,
    "UsageEventStatus",
    "What became of one usage event.",
    {
        EventStatus.ACCEPTED: "Recorded and counted.",
        EventStatus.DUPLICATE: "Its idempotency key was recorded before (or earlier in this "
        "batch): counted once, nothing changed.",
        EventStatus.REFUSED: "Not recorded; `errors` says why.",
    },
)
expose(
    Granularity,
    "UsageGranularity",
    "The buckets of a usage series: UTC hours or days.",
    {Granularity.HOUR: "One bucket per UTC hour.", Granularity.DAY: "One bucket per UTC day."},
)


def _text(value: Decimal) -> str:
    """A decimal as plain text, without exponent or trailing zeros ("12", "0.0004")."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


def _major(minor: Decimal, currency: str) -> str:
    return _text(minor.scaleb(-exponent(currency)))


@strawberry.type(description="A property filter of a metric: only matching events count.")
class MetricFilter:
    property: str = strawberry.field(description="The event property.")
    values: list[str] = strawberry.field(description="Its allowed values (as text).")


@strawberry.type(description="Something metered: what events count and how they aggregate.")
class BillableMetric(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `bm_…`.")
    code: str = strawberry.field(description="Your code; usage events name the metric by it.")
    name: str = strawberry.field(description="Printed on invoice lines.")
    aggregation: Aggregation = strawberry.field(description="How events aggregate.")
    property: str | None = strawberry.field(
        description="The event property aggregated (null: the event's `value`; a unique "
        "count's property)."
    )
    filters: list[MetricFilter] = strawberry.field(
        description="Only events whose properties match every filter count."
    )
    active: bool = strawberry.field(description="False once archived: new events are refused.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    archived_at: datetime | None = strawberry.field(description="When it was archived, if so.")

    @classmethod
    def of(cls, metric: DomainMetric) -> BillableMetric:
        return cls(
            id=strawberry.ID(metric.id),
            code=metric.code,
            name=metric.name,
            aggregation=metric.aggregation,
            property=metric.property,
            filters=[MetricFilter(property=k, values=list(v)) for k, v in metric.filters.items()],
            active=metric.archived_at is None,
            created_at=metric.created_at,
            archived_at=metric.archived_at,
        )


converted(DomainMetric, BillableMetric.of)


@strawberry.type(description="A tier of a GRADUATED or VOLUME price.")
class MeteredPriceTier:
    up_to: str | None = strawberry.field(
        description="Inclusive upper bound in units; null for the last tier (no bound)."
    )
    unit_price: str = strawberry.field(
        description="Price per unit, a decimal in the currency's major units (may be a "
        'fraction of the minor unit: "0.0004").'
    )
    flat_amount: Money = strawberry.field(description="Added once when the tier is reached.")


@strawberry.type(description="A metered component of a plan: a metric and its price.")
class MeteredPrice(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `mp_…`.")
    metric: BillableMetric = strawberry.field(description="What is metered.")
    model: PriceModel = strawberry.field(description="How the quantity is priced.")
    unit_price: str | None = strawberry.field(
        description="PER_UNIT: per unit; PACKAGE: per block. A decimal in major units."
    )
    package_size: BigInt | None = strawberry.field(description="PACKAGE: units per block.")
    tiers: list[MeteredPriceTier] = strawberry.field(description="GRADUATED and VOLUME tiers.")
    free_units: str = strawberry.field(
        description="Units free each period, taken off the quantity before pricing."
    )

    @classmethod
    def of(cls, record: MeteredPriceRecord, currency: str) -> MeteredPrice:
        price = record.price
        return cls(
            id=strawberry.ID(record.id),
            metric=BillableMetric.of(record.metric),
            model=price.model,
            unit_price=None if price.unit_price is None else _major(price.unit_price, currency),
            package_size=price.package_size,  # type: ignore[arg-type]
            tiers=[
                MeteredPriceTier(
                    up_to=None if t.up_to is None else _text(t.up_to),
                    unit_price=_major(t.unit_price, currency),
                    flat_amount=DomainMoney(t.flat_amount, currency),  # type: ignore[arg-type]
                )
                for t in price.tiers
            ],
            free_units=_text(price.free_units),
        )


converted(MeteredPriceRecord, lambda record: MeteredPrice.of(record, record.currency))


async def metered_prices_of(info: Info, plan_id: str, currency: str) -> list[MeteredPrice]:
    found = await info.context.loaders.metered_prices_by_plan.load((plan_id, currency))
    return [MeteredPrice.of(record, currency) for record in found]


@strawberry.input(description="A tier of a GRADUATED or VOLUME price.")
class MeteredPriceTierInput:
    up_to: str | None = strawberry.field(
        default=None,
        description="Inclusive upper bound in units (ascending); omit for the last tier.",
    )
    unit_price: str = strawberry.field(
        description='Price per unit, a decimal in major units ("0.0004"), ≤ 12 decimals.'
    )
    flat_amount: BigInt = strawberry.field(
        default=0, description="Minor units added once when the tier is reached, ≥ 0."
    )


@strawberry.input(description="A metered component of a new plan.")
class MeteredPriceInput:
    metric: str = strawberry.field(description="The billable metric's code.")
    model: PriceModel = strawberry.field(description="How the quantity is priced.")
    unit_price: str | None = strawberry.field(
        default=None,
        description="PER_UNIT: per unit; PACKAGE: per block. A decimal in major units.",
    )
    package_size: BigInt | None = strawberry.field(
        default=None, description="PACKAGE: units per block (a started block counts whole)."
    )
    tiers: list[MeteredPriceTierInput] | None = strawberry.field(
        default=None, description="GRADUATED and VOLUME: 1-20 tiers, the last without upTo."
    )
    free_units: str = strawberry.field(
        default="0", description="Units free each period (a decimal), ≥ 0."
    )


def to_drafts(inputs: list[MeteredPriceInput] | None) -> list[MeteredPriceDraft]:
    return [
        MeteredPriceDraft(
            metric=i.metric,
            model=i.model,
            unit_price=i.unit_price,
            package_size=None if i.package_size is None else int(i.package_size),
            tiers=[
                PriceTierDraft(
                    up_to=t.up_to, unit_price=t.unit_price, flat_amount=int(t.flat_amount)
                )
                for t in i.tiers or []
            ],
            free_units=i.free_units,
        )
        for i in inputs or []
    ]


@strawberry.type(description="One line of a rated quantity (one per tier reached).")
class UsageTier:
    tier: int = strawberry.field(description="The tier, from 1; 0 for untiered prices.")
    first_unit: str = strawberry.field(description="The tier covers units above this.")
    last_unit: str | None = strawberry.field(description="…up to this one; null: no bound.")
    units: str = strawberry.field(description="Units priced in this tier (blocks: PACKAGE).")
    unit_price: str = strawberry.field(description="Price per unit, decimal, major units.")
    flat_amount: Money = strawberry.field(description="The tier's flat amount, if reached.")
    amount: Money = strawberry.field(description="This line's amount, rounded half to even.")

    @classmethod
    def of(cls, line: RatedLine, currency: str) -> UsageTier:
        return cls(
            tier=line.tier,
            first_unit=_text(line.first_unit),
            last_unit=None if line.last_unit is None else _text(line.last_unit),
            units=_text(line.units),
            unit_price=_major(line.unit_price, currency),
            flat_amount=DomainMoney(line.flat_amount, currency),  # type: ignore[arg-type]
            amount=DomainMoney(line.amount, currency),  # type: ignore[arg-type]
        )


@strawberry.type(description="A metric's usage in the current period and what it bills so far.")
class MetricUsage:
    metric: BillableMetric = strawberry.field(description="The metric.")
    quantity: str = strawberry.field(description="The aggregate so far (a decimal).")
    amount: Money = strawberry.field(
        description="What it bills so far, before included credits (zero during a trial: "
        "trial usage is not billed)."
    )
    tiers: list[UsageTier] = strawberry.field(description="The breakdown of `amount`.")
    period_start: datetime = strawberry.field(description="The period's start.")
    as_of: datetime = strawberry.field(description="Measured up to this time (the clock's now).")

    @classmethod
    def of(cls, usage: DomainMetricUsage) -> MetricUsage:
        return cls(
            metric=BillableMetric.of(usage.metric),
            quantity=_text(usage.quantity),
            amount=DomainMoney(usage.amount, usage.currency),  # type: ignore[arg-type]
            tiers=[UsageTier.of(t, usage.currency) for t in usage.tiers],
            period_start=usage.period_start,
            as_of=usage.period_end,
        )


@strawberry.type(description="A bucket of a usage series.")
class UsageBucket:
    start: datetime = strawberry.field(
        description="The bucket's UTC hour or day (the first may begin before `from`)."
    )
    quantity: str = strawberry.field(description="The metric's aggregate in the bucket.")
    events: int | None = strawberry.field(description="Events counted (null for a unique count).")


@strawberry.type(description="A metric's usage over a window, in buckets.")
class UsageSeries:
    subscription_id: strawberry.ID = strawberry.field(description="`sub_…`.")
    metric: BillableMetric = strawberry.field(description="The metric.")
    total: str = strawberry.field(
        description="The aggregate over the whole window (a max of maxima, not a sum, for MAX)."
    )
    buckets: list[UsageBucket] = strawberry.field(description="Buckets with events, in order.")


@strawberry.input(description="A usage event.")
class UsageEventInput:
    subscription_id: strawberry.ID | None = strawberry.field(
        default=None, description="The subscription it is billed to, `sub_…`."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Or the customer: its one live subscription whose plan prices the metric.",
    )
    metric: str = strawberry.field(description="The billable metric's code.")
    value: str | None = strawberry.field(
        default=None,
        description='The number aggregated (a decimal, e.g. "12.5"; negative only for a '
        "SUM), unless the metric names a property; not needed for COUNT.",
    )
    properties: JSON | None = strawberry.field(
        default=None, description="A JSON object (≤ 4 KB): filters and unique counts read it."
    )
    timestamp: datetime | None = strawberry.field(
        default=None, description="When it happened (default: now, by the organization's clock)."
    )
    idempotency_key: str = strawberry.field(
        description="1-255 characters, unique per event: a replay is counted once."
    )

    def to_domain(self) -> DomainEventInput:
        return DomainEventInput(
            metric=self.metric,
            idempotency_key=self.idempotency_key,
            subscription_id=self.subscription_id,
            customer_id=self.customer_id,
            value=self.value,
            properties=self.properties,  # type: ignore[arg-type]
            timestamp=self.timestamp,
        )


@strawberry.input(description="Up to 1,000 usage events, recorded in one transaction.")
class UsageRecordBatchInput:
    events: list[UsageEventInput] = strawberry.field(description="The events, 1-1,000.")


@strawberry.type(description="What became of one usage event.")
class UsageEventResult:
    index: int = strawberry.field(description="The event's position in the input.")
    idempotency_key: str = strawberry.field(description="The event's key.")
    status: EventStatus = strawberry.field(description="Accepted, duplicate or refused.")
    event_id: strawberry.ID | None = strawberry.field(description="`use_…` when accepted.")
    subscription_id: strawberry.ID | None = strawberry.field(
        description="The subscription it counts for."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused, if so.")

    @classmethod
    def of(cls, result: EventResult) -> UsageEventResult:
        return cls(
            index=result.index,
            idempotency_key=result.idempotency_key,
            status=result.status,
            event_id=None if result.event_id is None else strawberry.ID(result.event_id),
            subscription_id=(
                None if result.subscription_id is None else strawberry.ID(result.subscription_id)
            ),
            errors=[] if result.error is None else [UserError.from_domain(result.error)],
        )


@strawberry.type(description="Result of `usageRecord`.")
class UsageRecordPayload:
    result: UsageEventResult | None = strawberry.field(description="The event's outcome.")
    errors: list[UserError] = strawberry.field(
        description="Why the event was refused (the same as `result.errors`)."
    )


@strawberry.type(description="Result of `usageRecordBatch`: one result per event, in order.")
class UsageRecordBatchPayload:
    results: list[UsageEventResult] = strawberry.field(description="Per event, in order.")
    accepted_count: int = strawberry.field(description="Events recorded.")
    duplicate_count: int = strawberry.field(description="Events recorded before.")
    refused_count: int = strawberry.field(description="Events refused.")
    errors: list[UserError] = strawberry.field(
        description="A problem with the batch as a whole (too many events); per-event "
        "problems are in `results`."
    )


@strawberry.input(description="A property filter: only events with one of these values count.")
class MetricFilterInput:
    property: str = strawberry.field(description="The event property.")
    values: list[str] = strawberry.field(description="1-100 allowed values (compared as text).")


@strawberry.input(description="A new billable metric.")
class BillableMetricCreateInput:
    code: str = strawberry.field(description="Unique per organization, 1-64 characters.")
    name: str = strawberry.field(description="Printed on invoice lines, 1-200 characters.")
    aggregation: Aggregation = strawberry.field(description="How events aggregate.")
    property: str | None = strawberry.field(
        default=None,
        description="SUM, MAX, LATEST: aggregate this numeric property instead of `value`; "
        "UNIQUE_COUNT: the property whose distinct values count (required).",
    )
    filters: list[MetricFilterInput] | None = strawberry.field(
        default=None, description="Only matching events count (at most 10 properties)."
    )

    def to_draft(self) -> MetricDraft:
        return MetricDraft(
            code=self.code,
            name=self.name,
            aggregation=self.aggregation,
            property=self.property,
            filters={f.property: f.values for f in self.filters or []},
        )


@strawberry.input(description="Archive a metric: new events for it are refused.")
class BillableMetricArchiveInput:
    id: strawberry.ID = strawberry.field(description="`bm_…`.")


@strawberry.type(description="Result of `billableMetricCreate` and `billableMetricArchive`.")
class BillableMetricPayload:
    billable_metric: BillableMetric | None = strawberry.field(
        description="The metric; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class UsageQueries:
    @strawberry.field(
        description="This organization's billable metrics, oldest first. Admin or service.",
        permission_classes=[AdminOrService],
        graphql_type=Connection[BillableMetric],
    )
    async def billable_metrics(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        active: Annotated[
            bool | None, strawberry.argument(description="Only active or archived metrics.")
        ] = None,
    ) -> Connection[BillableMetric]:
        page = window(first, after, last, before)
        nodes, has_next, count = await resolve.metrics_page(
            info.context,
            ordered({"active": active}, ListOrder.OLDEST_FIRST, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection([BillableMetric.of(n) for n in nodes], has_next, count, page)

    @strawberry.field(
        description="A metric's usage on a subscription over [from, to), per UTC hour (at "
        "most 31 days) or day (at most 1,100 days), with the total. Customers: their own "
        "subscriptions.",
        permission_classes=[AnyRole],
    )
    async def usage(
        self,
        info: Info,
        subscription_id: Annotated[strawberry.ID, strawberry.argument(description="`sub_…`.")],
        metric: Annotated[str, strawberry.argument(description="The metric's code.")],
        from_: Annotated[
            datetime, strawberry.argument(name="from", description="Window start (inclusive).")
        ],
        to: Annotated[datetime, strawberry.argument(description="Window end (exclusive).")],
        group_by: Annotated[
            Granularity, strawberry.argument(description="Bucket size.")
        ] = Granularity.DAY,
    ) -> UsageSeries | None:
        found = await resolve.series(info.context, subscription_id, metric, from_, to, group_by)
        if found is None:
            return None
        domain_metric, total, buckets = found
        return UsageSeries(
            subscription_id=subscription_id,
            metric=BillableMetric.of(domain_metric),
            total=_text(total),
            buckets=[
                UsageBucket(start=b.start, quantity=_text(b.quantity), events=b.events)
                for b in buckets
            ],
        )


async def current_usage_of(info: Info, subscription: object) -> list[MetricUsage]:
    return [MetricUsage.of(u) for u in await resolve.current_usage(info.context, subscription)]


@strawberry.type
class UsageMutations:
    @strawberry.mutation(
        description="Create a billable metric. Admin only.", permission_classes=[AdminOnly]
    )
    async def billable_metric_create(
        self,
        info: Info,
        input: Annotated[BillableMetricCreateInput, strawberry.argument(description=INPUT)],
    ) -> BillableMetricPayload:
        metric, errors = await attempt(resolve.create_metric(info.context, input.to_draft()))
        return BillableMetricPayload(
            billable_metric=None if metric is None else BillableMetric.of(metric), errors=errors
        )

    @strawberry.mutation(
        description="Archive a billable metric: its new events are refused; plans that "
        "price it keep billing what it recorded. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def billable_metric_archive(
        self,
        info: Info,
        input: Annotated[BillableMetricArchiveInput, strawberry.argument(description=INPUT)],
    ) -> BillableMetricPayload:
        metric, errors = await attempt(resolve.archive_metric(info.context, input.id))
        return BillableMetricPayload(
            billable_metric=None if metric is None else BillableMetric.of(metric), errors=errors
        )

    @strawberry.mutation(
        description="Record one usage event (idempotent per idempotency key). Late events "
        "follow the organization's `lateUsage`. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def usage_record(
        self, info: Info, input: Annotated[UsageEventInput, strawberry.argument(description=INPUT)]
    ) -> UsageRecordPayload:
        (result,) = await resolve.record(info.context, [input.to_domain()])
        shown = UsageEventResult.of(result)
        return UsageRecordPayload(result=shown, errors=shown.errors)

    @strawberry.mutation(
        description="Record up to 1,000 usage events in one transaction, each idempotent per "
        "its key (a replayed event is DUPLICATE, counted once, even under concurrent "
        "batches). Bad events are refused one by one; the good ones are kept. High-rate "
        "producers can also POST JSON to /usage/events. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def usage_record_batch(
        self,
        info: Info,
        input: Annotated[UsageRecordBatchInput, strawberry.argument(description=INPUT)],
    ) -> UsageRecordBatchPayload:
        results, errors = await attempt(
            resolve.record(info.context, [e.to_domain() for e in input.events])
        )
        shown = [UsageEventResult.of(r) for r in results or []]
        counts = {status: 0 for status in EventStatus}
        for result in results or []:
            counts[result.status] += 1
        return UsageRecordBatchPayload(
            results=shown,
            accepted_count=counts[EventStatus.ACCEPTED],
            duplicate_count=counts[EventStatus.DUPLICATE],
            refused_count=counts[EventStatus.REFUSED],
            errors=errors,
        )
