"""Statistics (admin only): revenue per currency and period, subscription figures with MRR, and
the overall `stats`. Definitions in full: docs/statistics.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.catalog import Tier
from app.statistics import CurrencyRevenue as DomainCurrencyRevenue
from app.statistics import Overview, StatsInterval
from app.statistics import SubscriptionStats as DomainSubscriptionStats
from resolvers import statistics as resolve
from schema.base import Info
from schema.enums import expose
from schema.money import Money
from schema.permissions import AdminOnly
from schema.scalars import BigInt

__all__ = ["StatisticsQueries"]

expose(
    StatsInterval,
    "StatsInterval",
    "The calendar period of revenue buckets, in the requested time zone.",
    {
        StatsInterval.DAY: "Local calendar days (midnight to midnight; 23 or 25 hours at DST).",
        StatsInterval.WEEK: "ISO weeks, Monday 00:00 to the next Monday 00:00, local time.",
        StatsInterval.MONTH: "Calendar months, from the 1st at 00:00 local time.",
    },
)

MRR_DEFINITION = (
    "MRR (monthly recurring revenue) of a subscription: 0 unless it is ACTIVE or PAST_DUE "
    "(trials, paused, incomplete, unpaid and canceled subscriptions and one-time prices count "
    "0); otherwise unit price x quantity, less the coupon redeemed for its current period "
    "(percent off rounded half away from zero, or amount off capped at the price, as on the "
    "invoice), normalised to a month: monthly price / intervalCount, yearly / (12 x count), "
    "quarterly (MONTH x 3) / 3, weekly x 52 / (12 x count), daily x 365 / (12 x count), "
    "rounded half-even to a minor unit per subscription; a currency's MRR is the exact sum. "
    "ARR = 12 x MRR."
)


@strawberry.type(
    description="An exact ratio: `numerator / denominator` (the denominator is positive). "
    "Null where the ratio is undefined (nothing to divide by), never a fake zero."
)
class Ratio:
    numerator: BigInt = strawberry.field(description="What is counted (may be negative).")
    denominator: BigInt = strawberry.field(description="What it is counted against, > 0.")
    percent: str = strawberry.field(
        description="The ratio x 100 as a decimal string with two places, rounded half-even, "
        'e.g. "12.50".'
    )


@strawberry.type(
    description="Revenue of one currency over `[start, end)`: payments are counted when they "
    "succeeded, refunds when they succeeded and declined charge attempts when they were "
    "declined, by the organization's clock (see docs/statistics.md). All amounts in the "
    "currency's minor units."
)
class RevenueFigures:
    start: datetime = strawberry.field(
        description="Start (inclusive), in the requested time zone's offset."
    )
    end: datetime = strawberry.field(description="End (exclusive).")
    gross: Money = strawberry.field(
        description="Captured by payments that succeeded in the period."
    )
    refunds: Money = strawberry.field(
        description="Refunds that succeeded in the period, whenever their payment was made "
        "(a refund the bank later returned is not counted)."
    )
    net: Money = strawberry.field(
        description="gross - refunds; negative when refunds exceed takings."
    )
    payment_count: int = strawberry.field(description="Payments that succeeded in the period.")
    failed_payment_count: int = strawberry.field(
        description="Declined charge attempts in the period: each time a payment became FAILED "
        "(a card declined at confirmation, a failed 3-D Secure, a decline picked up by "
        "`paymentRefresh` or a webhook), counted once at the moment it was recorded, by the "
        "organization's clock. A declined payment that is later canceled, retried or paid "
        "still counts, so a renewal declined and retried three times by dunning counts 4; "
        "replays and retries of the same request never count twice."
    )
    refund_count: int = strawberry.field(description="Refunds that succeeded in the period.")
    average_payment: Money | None = strawberry.field(
        description="gross / paymentCount rounded half-even to a minor unit; null without payments."
    )
    usage_billed: Money = strawberry.field(
        description="Usage-based charges billed in the period (at each period's end, by the "
        "organization's clock): metered charges minus included credits plus late-usage "
        "adjustments, before discounts and tax, except on invoices voided since. Billed, not "
        "collected: the cash is in `gross` when it is paid (docs/usage.md)."
    )


@strawberry.type(description="Revenue of one currency: per period and in total.")
class CurrencyRevenue:
    currency: str = strawberry.field(description="ISO 4217 code.")
    buckets: list[RevenueFigures] = strawberry.field(
        description="Every period of the interval that meets the range, oldest first, empty "
        "ones included; the first and last are clipped to the range."
    )
    total: RevenueFigures = strawberry.field(
        description="The whole range (the exact sum of the buckets)."
    )


@strawberry.type(description="The overall figures of one currency.")
class CurrencyStats:
    currency: str = strawberry.field(description="ISO 4217 code.")
    today: RevenueFigures = strawberry.field(
        description="Today so far (local day in `timeZone`, by the organization's clock)."
    )
    this_month: RevenueFigures = strawberry.field(description="This local calendar month.")
    payment_count: int = strawberry.field(
        description="Payments that succeeded, all time, in this currency."
    )
    mrr: Money = strawberry.field(description="MRR now. " + MRR_DEFINITION)


@strawberry.type(description="Overall figures of the organization, now.")
class Stats:
    at: datetime = strawberry.field(description="The organization's clock when computed.")
    time_zone: str = strawberry.field(description="The zone of `today` and `thisMonth`.")
    payment_count: int = strawberry.field(
        description="Payments that succeeded, all time, all currencies (a count, so it adds up)."
    )
    failed_payments_today: int = strawberry.field(
        description="Declined charge attempts today (local day in `timeZone`), all currencies: "
        "the sum of `currencies.today.failedPaymentCount`."
    )
    active_subscriptions: int = strawberry.field(description="Subscriptions ACTIVE now.")
    trialing_subscriptions: int = strawberry.field(description="Subscriptions TRIALING now.")
    currencies: list[CurrencyStats] = strawberry.field(
        description="Per currency with any revenue or MRR, alphabetical; amounts are never "
        "summed across currencies."
    )


@strawberry.type(description="Subscriptions per status.")
class StatusCounts:
    active: int = strawberry.field(description="ACTIVE.")
    trialing: int = strawberry.field(description="TRIALING.")
    past_due: int = strawberry.field(description="PAST_DUE (a renewal failed; being retried).")
    paused: int = strawberry.field(description="PAUSED.")
    canceled: int = strawberry.field(description="CANCELED (ended).")
    unpaid: int = strawberry.field(description="UNPAID (retries exhausted, kept open).")
    incomplete: int = strawberry.field(description="INCOMPLETE (first payment pending).")
    incomplete_expired: int = strawberry.field(description="INCOMPLETE_EXPIRED.")
    total: int = strawberry.field(description="All of them.")


@strawberry.type(description="Subscriptions of one plan.")
class PlanSubscriptionStats:
    plan_id: strawberry.ID = strawberry.field(description="The plan, `plan_…`.")
    name: str | None = strawberry.field(description="The plan's name now.")
    tier: Tier | None = strawberry.field(description="The plan's tier now.")
    counts: StatusCounts = strawberry.field(description="Its subscriptions per status.")
    mrr: Money = strawberry.field(description="Their MRR, in the plan's currency.")


@strawberry.type(description="Subscriptions of the plans of one tier (by the plans' tier now).")
class TierSubscriptionStats:
    tier: Tier | None = strawberry.field(description="The tier; null for an unknown plan.")
    counts: StatusCounts = strawberry.field(description="Subscriptions per status.")
    mrr: list[Money] = strawberry.field(description="MRR per currency.")


@strawberry.type(
    description="MRR movements over a range, classified per customer and currency: a "
    "customer's MRR going from none to some is NEW (the first time) or REACTIVATION (after "
    "churning), from some to none is CHURN, and up or down between is EXPANSION or "
    "CONTRACTION. Amounts are positive."
)
class MrrMovements:
    new: Money = strawberry.field(description="MRR of customers who started paying.")
    expansion: Money = strawberry.field(description="Increases of paying customers' MRR.")
    contraction: Money = strawberry.field(
        description="Decreases of MRR of customers who still pay."
    )
    churned: Money = strawberry.field(description="MRR of customers who stopped paying.")
    reactivation: Money = strawberry.field(
        description="MRR of customers who came back after churning."
    )
    net: Money = strawberry.field(
        description="new + expansion + reactivation - contraction - churned: the change of "
        "MRR over the range."
    )


@strawberry.type(description="Subscription revenue figures of one currency.")
class CurrencySubscriptionStats:
    currency: str = strawberry.field(description="ISO 4217 code.")
    mrr: Money = strawberry.field(description="MRR at `at`. " + MRR_DEFINITION)
    arr: Money = strawberry.field(description="ARR at `at`: 12 x MRR.")
    paying_customers: int = strawberry.field(
        description="Customers with MRR in this currency at `at`."
    )
    arpu: Money | None = strawberry.field(
        description="Average revenue per paying customer at `at`: MRR / payingCustomers, "
        "rounded half-even; null without paying customers."
    )
    mrr_at_start: Money = strawberry.field(description="MRR just before `from`.")
    paying_customers_at_start: int = strawberry.field(
        description="Paying customers just before `from`."
    )
    movements: MrrMovements = strawberry.field(description="MRR movements over `[from, to)`.")
    new_customers: int = strawberry.field(description="Customers who started paying.")
    reactivated_customers: int = strawberry.field(description="Customers who came back.")
    churned_customers: int = strawberry.field(description="Customers who stopped paying.")
    customer_churn: Ratio | None = strawberry.field(
        description="Customer churn rate: churnedCustomers / payingCustomersAtStart."
    )
    revenue_churn: Ratio | None = strawberry.field(
        description="Gross revenue churn rate: (churned + contraction) / mrrAtStart."
    )
    net_revenue_churn: Ratio | None = strawberry.field(
        description="Net revenue churn rate: (churned + contraction - expansion - "
        "reactivation) / mrrAtStart; negative when existing customers grew."
    )


@strawberry.type(
    description="Subscription figures: counts and MRR as of `at`, movements over `[from, to)`."
)
class SubscriptionStats:
    at: datetime = strawberry.field(
        description="The instant of the counts and MRR (every change recorded at or before it)."
    )
    start: datetime = strawberry.field(
        name="from", description="Start of the movements' range (inclusive)."
    )
    end: datetime = strawberry.field(name="to", description="End of the range (exclusive).")
    counts: StatusCounts = strawberry.field(description="All subscriptions per status.")
    by_plan: list[PlanSubscriptionStats] = strawberry.field(
        description="Per plan with subscriptions, by plan id."
    )
    by_tier: list[TierSubscriptionStats] = strawberry.field(
        description="Per tier (FREE to CUSTOM order)."
    )
    currencies: list[CurrencySubscriptionStats] = strawberry.field(
        description="MRR, ARR, ARPU, movements and churn per currency, alphabetical; never "
        "summed across currencies."
    )
    trials_started: int = strawberry.field(description="Trials started in the range.")
    trials_ended: int = strawberry.field(
        description="Trials that ended in the range (the subscription left TRIALING)."
    )
    trials_converted: int = strawberry.field(
        description="Of those, trials that became ACTIVE (first period paid)."
    )
    trial_conversion: Ratio | None = strawberry.field(
        description="Trial conversion rate: trialsConverted / trialsEnded."
    )


FROM = "Start of the range, inclusive (ISO 8601; UTC when no offset is given)."
TO = "End of the range, exclusive; at most 3 years after `from`."


@strawberry.type
class StatisticsQueries:
    @strawberry.field(
        description="Revenue per currency (never summed across currencies) in buckets of "
        "`interval` in `timeZone`, and in total, over `[from, to)`: gross (succeeded payments), "
        "refunds, net, payment and failed-payment counts, average payment. Admin only. A bad "
        "range, zone or currency is a BAD_USER_INPUT error saying why.",
        permission_classes=[AdminOnly],
        graphql_type=list[CurrencyRevenue],
    )
    async def revenue_stats(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from", description=FROM)],
        to: Annotated[datetime, strawberry.argument(description=TO)],
        interval: Annotated[
            StatsInterval, strawberry.argument(description="Bucket size (default DAY).")
        ] = StatsInterval.DAY,
        currency: Annotated[
            str | None,
            strawberry.argument(
                description="Only this ISO 4217 currency (listed even with no data)."
            ),
        ] = None,
        time_zone: Annotated[
            str,
            strawberry.argument(
                description="IANA time zone of the buckets, e.g. `Europe/Paris` (default UTC)."
            ),
        ] = "UTC",
    ) -> list[DomainCurrencyRevenue]:
        return await resolve.revenue(
            info.context,
            start=from_,
            end=to,
            interval=interval,
            currency=currency,
            time_zone=time_zone,
        )

    @strawberry.field(
        description="Subscriptions per status, plan and tier, and MRR, ARR, paying customers "
        "and ARPU per currency, as of `at`; MRR movements, customer and revenue churn and "
        "trial conversion over `[from, to)`. " + MRR_DEFINITION + " Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=SubscriptionStats,
    )
    async def subscription_stats(
        self,
        info: Info,
        at: Annotated[
            datetime | None,
            strawberry.argument(
                description="The instant of the counts (default: now by the organization's clock)."
            ),
        ] = None,
        from_: Annotated[
            datetime | None,
            strawberry.argument(
                name="from", description="Start of the movements' range (default: `to` - 30 days)."
            ),
        ] = None,
        to: Annotated[
            datetime | None,
            strawberry.argument(
                description="End of the range, exclusive (default: just after `at`, so the "
                "range includes it); at most 3 years after `from`."
            ),
        ] = None,
    ) -> DomainSubscriptionStats:
        return await resolve.subscription_stats(info.context, at=at, start=from_, end=to)

    @strawberry.field(
        description="The overall figures: succeeded payments, active subscriptions, revenue "
        "today and this month per currency, failed payments and refunds today — computed, "
        "never placeholders. Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Stats,
    )
    async def stats(
        self,
        info: Info,
        time_zone: Annotated[
            str,
            strawberry.argument(description="IANA zone of `today` and `thisMonth` (default UTC)."),
        ] = "UTC",
    ) -> Overview:
        return await resolve.overview(info.context, time_zone=time_zone)
