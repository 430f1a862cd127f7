"""Subscriptions: type, inputs, payloads, queries and mutations, and the test clock."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.catalog import Plan as DomainPlan
from app.customers import Customer as DomainCustomer
from app.invoicing import Invoice as DomainInvoice
from app.organizations import ProrationBehavior
from app.subscriptions import Status, SubscriptionDraft
from app.subscriptions import Subscription as DomainSubscription
from resolvers import subscriptions as resolve
from schema.base import INPUT, Info
from schema.enums import IntervalUnit
from schema.errors import UserError, attempt
from schema.money import Money
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    ORDER_BY,
    Connection,
    ListOrder,
    ordered,
    to_connection,
    window,
)
from schema.permissions import AdminOnly, AnyRole
from schema.usage import MetricUsage, current_usage_of

if TYPE_CHECKING:
    from schema.catalog.plans import Plan
    from schema.customers import Customer
    from schema.invoicing.invoices import Invoice

__all__ = [
    "Subscription",
    "SubscriptionCancelInput",
    "SubscriptionChangePlanInput",
    "SubscriptionCreateInput",
    "SubscriptionMutations",
    "SubscriptionQueries",
]

IDEMPOTENCY = (
    "Unique per request (a UUID); a retry with the same key and input returns the first "
    "result instead of acting twice. Kept 24 hours."
)


@strawberry.type(description="A customer's subscription to a plan, billed per period in advance.")
class Subscription(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `sub_…`.")

    is_type_of = serves(DomainSubscription)

    quantity: int = strawberry.field(description="Units (seats) billed per period.")
    status: Status = strawberry.field(description="Lifecycle state.")
    price: Money = strawberry.field(description="Unit price per period (from the plan).")
    interval: IntervalUnit = strawberry.field(description="Billing period unit.")
    interval_count: int = strawberry.field(description="Units per billing period.")
    current_period_start: datetime = strawberry.field(
        description="Start of the current period (of the trial while trialing)."
    )
    current_period_end: datetime = strawberry.field(
        description="End of the current period; renewal happens then."
    )
    trial_start: datetime | None = strawberry.field(description="Trial start, if any.")
    trial_end: datetime | None = strawberry.field(description="Trial end, if any.")
    cancel_at_period_end: bool = strawberry.field(
        description="True when it ends at `currentPeriodEnd` (undo with `subscriptionResume`)."
    )
    canceled_at: datetime | None = strawberry.field(description="When cancellation was asked.")
    ended_at: datetime | None = strawberry.field(description="When it stopped, if it has.")
    cancel_reason: str | None = strawberry.field(description="Why it was canceled.")
    cancel_feedback: str | None = strawberry.field(description="The customer's feedback.")
    paused_at: datetime | None = strawberry.field(description="When it was paused.")
    resumes_at: datetime | None = strawberry.field(description="Automatic resume time, if any.")
    dunning_attempts: int = strawberry.field(
        description="Failed retries of the latest invoice since it went past due."
    )
    next_retry_at: datetime | None = strawberry.field(description="Next dunning retry, if any.")
    latest_invoice_id: str | None = strawberry.field(description="The last invoice billed.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")

    period_amount: Money = strawberry.field(
        description="Price times quantity: what one period costs."
    )

    @strawberry.field(
        description="The subscribed customer.",
        graphql_type=Annotated["Customer", strawberry.lazy("schema.customers")] | None,
    )
    async def customer(
        self, info: Info, root: strawberry.Parent[DomainSubscription]
    ) -> DomainCustomer | None:
        return await info.context.loaders.customer_by_id.load(root.customer_id)

    @strawberry.field(
        description="Every invoice this subscription billed, oldest first.",
        graphql_type=list[Annotated["Invoice", strawberry.lazy("schema.invoicing.invoices")]],
    )
    async def invoices(
        self, info: Info, root: strawberry.Parent[DomainSubscription]
    ) -> list[DomainInvoice]:
        return await info.context.loaders.invoices_by_subscription_id.load(root.id)

    @strawberry.field(
        description="The current plan.",
        graphql_type=Annotated["Plan", strawberry.lazy("schema.catalog.plans")] | None,
    )
    async def plan(
        self, info: Info, root: strawberry.Parent[DomainSubscription]
    ) -> DomainPlan | None:
        return await info.context.loaders.plan_by_id.load(root.plan_id)

    @strawberry.field(
        description="Each metered component's usage in the current period and what it bills "
        "so far, with the tier breakdown (docs/usage.md). Empty once the subscription ended."
    )
    async def current_usage(
        self, info: Info, root: strawberry.Parent[DomainSubscription]
    ) -> list[MetricUsage]:
        return await current_usage_of(info, root)


@strawberry.input(description="Filters for `subscriptions`; omitted fields do not filter.")
class SubscriptionFilter:
    customer_id: strawberry.ID | None = strawberry.field(default=None, description="`cus_…`")
    status: Status | None = strawberry.field(default=None, description="Only this status.")
    plan_id: strawberry.ID | None = strawberry.field(default=None, description="`plan_…`")


@strawberry.input(description="Subscribe a customer to a recurring plan.")
class SubscriptionCreateInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer (`cus_…`).")
    plan_id: strawberry.ID = strawberry.field(
        description="An active, recurring plan (a customer token: not of tier `CUSTOM`)."
    )
    quantity: int = strawberry.field(
        default=1,
        description="Units per period, 1-1,000,000. A customer token: at most the "
        "organization's `customerMaxQuantity` (default 1), else `NOT_PERMITTED`.",
    )
    trial_days: int | None = strawberry.field(
        default=None,
        description="Trial length in days, 0-730; null takes the plan's, 0 switches the trial "
        "off. Without a trial the first period is invoiced and charged at once. A customer "
        "token may only send null or 0: null gives the plan's own trial, and only if the "
        "customer never had a subscription (any status) on a plan of the same `family`; any "
        "other value is `NOT_PERMITTED`.",
    )
    start_at: datetime | None = strawberry.field(
        default=None,
        description="Start (default now); may be back-dated up to a year. Periods are anchored "
        "to it (a month-end start renews on each month's last day). Admin and service only: "
        "from a customer token, `NOT_PERMITTED`.",
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY)

    def to_draft(self) -> SubscriptionDraft:
        return SubscriptionDraft(
            customer_id=self.customer_id,
            plan_id=self.plan_id,
            quantity=self.quantity,
            trial_days=self.trial_days,
            start_at=self.start_at,
        )


@strawberry.input(description="Move a subscription to another plan or quantity mid-period.")
class SubscriptionChangePlanInput:
    id: strawberry.ID = strawberry.field(description="The subscription (active or trialing).")
    plan_id: strawberry.ID = strawberry.field(
        description="The new plan: same currency and billing interval (a customer token: not "
        "of tier `CUSTOM` unless already on it)."
    )
    quantity: int | None = strawberry.field(
        default=None,
        description="New quantity, 1-1,000,000; null keeps it. A customer token: at most the "
        "organization's `customerMaxQuantity` or the current quantity, whichever is larger, "
        "else `NOT_PERMITTED`.",
    )
    proration_behavior: ProrationBehavior | None = strawberry.field(
        default=None,
        description="How the unused and remaining parts of the period are billed: a credit "
        "for the unused time worth what was paid for it (the paid invoice lines of the rest of "
        "the period, after their discount, net of credits already given, never more; not "
        "discounted again) and a charge for the rest of the period at the new price and "
        "quantity (discounted by the coupon in force). Pending charges of the plan left are "
        "cut to end now. Null: `CREATE_PRORATIONS` for admin and service tokens; the "
        "organization's `customerProrationBehavior` (default `ALWAYS_INVOICE`) for a customer "
        "token, which may also ask for `ALWAYS_INVOICE` but never `NONE` (nor "
        "`CREATE_PRORATIONS` unless that is the organization's choice): `NOT_PERMITTED`. A "
        "change invoiced at once (`ALWAYS_INVOICE`) whose invoice is not paid (card declined, "
        "no payment method, no answer from the processor) still stands, for any caller, and "
        "puts the subscription "
        "`PAST_DUE`: that invoice is retried on the dunning schedule like a failed renewal "
        "(paid: `ACTIVE` again; retries exhausted: `DUNNING_FINAL_STATE`). A net credit (a "
        "downgrade) goes to the customer's credit balance.",
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY)


@strawberry.input(description="Cancel a subscription now or at the end of its period.")
class SubscriptionCancelInput:
    id: strawberry.ID = strawberry.field(description="The subscription.")
    at_period_end: bool = strawberry.field(
        description="True: keep access until `currentPeriodEnd` (undo with "
        "`subscriptionResume`); then plan-change lines still pending (`CREATE_PRORATIONS`) "
        "are billed on a final invoice. False: end now, and bill a final invoice at once with "
        "the pending lines (credits in full, charges only up to now) and, unless `prorate` is "
        "false, the credit for the unused time."
    )
    prorate: bool = strawberry.field(
        default=True,
        description="Only with `atPeriodEnd: false`. True (default): the final invoice credits "
        "the unused rest of the period, worth what was paid for it (the paid invoice lines "
        "after their discount, net of credits already given; nothing for a trial or an unpaid "
        "period). The final invoice is charged to the default payment method if it nets a "
        "charge; a net credit goes to the customer's credit balance (spent by its next "
        "invoices in that currency). False: no credit for unused time; pending lines are "
        "settled all the same. Ignored with `atPeriodEnd: true`.",
    )
    reason: str | None = strawberry.field(default=None, description="Why (≤ 200 chars).")
    feedback: str | None = strawberry.field(
        default=None, description="The customer's words (≤ 2,000 chars), stored."
    )


@strawberry.input(description="Pause billing: no invoices until resumed.")
class SubscriptionPauseInput:
    id: strawberry.ID = strawberry.field(description="An active or trialing subscription.")
    resumes_at: datetime | None = strawberry.field(
        default=None,
        description="Resume automatically then (in the future); null pauses until resumed. "
        "Admin and service only: from a customer token, `NOT_PERMITTED`.",
    )


@strawberry.input(description="Resume a paused subscription or undo a period-end cancellation.")
class SubscriptionResumeInput:
    id: strawberry.ID = strawberry.field(description="The subscription.")


@strawberry.input(description="Move this organization's test clock (test mode only).")
class TestClockAdvanceInput:
    to: datetime = strawberry.field(
        description="The new time, with a zone; later than the clock's current time. Every "
        "renewal, trial end and retry that falls due on the way runs at its own time."
    )


@strawberry.type(description="Result of the subscription mutations.")
class SubscriptionPayload:
    subscription: DomainSubscription | None = strawberry.field(
        graphql_type=Subscription | None,
        description="The subscription; null when `errors` is not empty.",
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type(description="Result of `testClockAdvance`.")
class TestClockAdvancePayload:
    now: datetime | None = strawberry.field(description="The organization's time now.")
    steps: int = strawberry.field(description="Billing steps run on the way.")
    errors: list[UserError] = strawberry.field(description="Why the clock did not move, if so.")


@strawberry.type
class SubscriptionQueries:
    @strawberry.field(
        description="One subscription; null if missing or not yours.",
        permission_classes=[AnyRole],
        graphql_type=Subscription | None,
    )
    async def subscription(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="`sub_…`")]
    ) -> DomainSubscription | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="Subscriptions, oldest first. A customer token sees only its own.",
        permission_classes=[AnyRole],
        graphql_type=Connection[Subscription],
    )
    async def subscriptions(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[
            SubscriptionFilter | None, strawberry.argument(description="Filters.")
        ] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> Connection[DomainSubscription]:
        page = window(first, after, last, before)
        filters = {}
        if filter is not None:
            filters = {
                "customer_id": filter.customer_id,
                "status": filter.status.value if filter.status else None,
                "plan_id": filter.plan_id,
            }
        nodes, has_next, count = await resolve.list_page(
            info.context,
            ordered(filters, order_by, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


def _payload(result: tuple[DomainSubscription | None, list[UserError]]) -> SubscriptionPayload:
    subscription, errors = result
    return SubscriptionPayload(subscription=subscription, errors=errors)


@strawberry.type
class SubscriptionMutations:
    @strawberry.mutation(
        description="Subscribe a customer. With a trial: `trialing`, billed at trial end. "
        "Without: the first period is invoiced and charged now; `active` on success, "
        "`incomplete` when the charge fails (it expires after 23 hours unless paid). A customer "
        "token may subscribe itself, within the organization's customer policy (see the input "
        "fields; refusals are `NOT_PERMITTED` errors).",
        permission_classes=[AnyRole],
    )
    async def subscription_create(
        self,
        info: Info,
        input: Annotated[SubscriptionCreateInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPayload:
        return _payload(
            await attempt(resolve.create(info.context, input.to_draft(), input.idempotency_key))
        )

    @strawberry.mutation(
        description="Change plan or quantity with proration to the second: a credit for the "
        "unused part of the old price and a charge for the rest of the period at the new one "
        "(on the next invoice, on an invoice now, or not at all). A customer token changing "
        "during a trial keeps no more trial than the new plan offers: it ends at the earlier "
        "of its current end and its start plus the new plan's `trialDays` (at its start if the "
        "customer already used the new plan's family on another subscription); a trial so "
        "ended ends now and the first period is invoiced and charged at once.",
        permission_classes=[AnyRole],
    )
    async def subscription_change_plan(
        self,
        info: Info,
        input: Annotated[SubscriptionChangePlanInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPayload:
        return _payload(
            await attempt(
                resolve.change_plan(
                    info.context,
                    input.id,
                    plan_id=input.plan_id,
                    quantity=input.quantity,
                    behavior=input.proration_behavior,
                    key=input.idempotency_key,
                )
            )
        )

    @strawberry.mutation(
        description="Cancel now (access ends, status `canceled`, and a final invoice settles "
        "pending plan-change lines and, by default, credits the unused time) or at period end "
        "(pending lines are settled on a final invoice then). Canceling an `INCOMPLETE` "
        "subscription now voids its unpaid first invoice. Other open invoices stay open "
        "(they are still owed; void them with `invoiceVoid`).",
        permission_classes=[AnyRole],
    )
    async def subscription_cancel(
        self,
        info: Info,
        input: Annotated[SubscriptionCancelInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPayload:
        return _payload(
            await attempt(
                resolve.cancel(
                    info.context,
                    input.id,
                    at_period_end=input.at_period_end,
                    reason=input.reason,
                    feedback=input.feedback,
                    prorate=input.prorate,
                )
            )
        )

    @strawberry.mutation(
        description="Pause: periods pass without invoices until resumed. A customer token may "
        "pause only if the organization's `customerCanPause` is true, and without `resumesAt`; "
        "otherwise `NOT_PERMITTED`.",
        permission_classes=[AnyRole],
    )
    async def subscription_pause(
        self,
        info: Info,
        input: Annotated[SubscriptionPauseInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPayload:
        return _payload(await attempt(resolve.pause(info.context, input.id, input.resumes_at)))

    @strawberry.mutation(
        description="Resume a paused subscription, or undo a cancellation at period end. A "
        "customer token may resume a paused one only if the organization's `customerCanPause` "
        "is true (else `NOT_PERMITTED`); if the current period began while paused, the rest of "
        "it is invoiced and charged first, prorated to the second (`PAST_DUE` if unpaid).",
        permission_classes=[AnyRole],
    )
    async def subscription_resume(
        self,
        info: Info,
        input: Annotated[SubscriptionResumeInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPayload:
        return _payload(await attempt(resolve.resume(info.context, input.id)))

    @strawberry.mutation(
        description="Test mode only: move this organization's clock forward and run the billing "
        "worker up to that time, so months of billing can be simulated. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def test_clock_advance(
        self,
        info: Info,
        input: Annotated[TestClockAdvanceInput, strawberry.argument(description=INPUT)],
    ) -> TestClockAdvancePayload:
        result, errors = await attempt(resolve.advance_clock(info.context, input.to))
        now, steps = result if result is not None else (None, 0)
        return TestClockAdvancePayload(now=now, steps=steps, errors=errors)
