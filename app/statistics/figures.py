"""The figures statistics answer with (revenue, snapshots, overviews, subscription stats) and
the pure arithmetic that builds them from rollup rows; ``StatisticsService`` in ``service.py``
reads the rollups and calls it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.catalog import Tier
from app.core.money import Money
from app.rollups import (
    Movement,
    Ratio,
    div_half_even,
    movement_numbers,
)
from app.subscriptions import Status
from db.connection import Row

__all__ = [
    "CurrencyOverview",
    "CurrencyRevenue",
    "CurrencySnapshot",
    "CurrencySubscriptionStats",
    "DayRevenue",
    "MrrMovements",
    "Overview",
    "PlanStats",
    "RevenueFigures",
    "RevenueSnapshot",
    "StatusCounts",
    "SubscriptionStats",
    "TierStats",
]


# -- revenue ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevenueFigures:
    """Revenue of one currency over ``[start, end)``."""

    start: datetime  # in the requested time zone
    end: datetime
    gross: Money  # captured by payments that succeeded in the range
    refunds: Money  # refunds that succeeded in the range (of payments from any time)
    net: Money  # gross - refunds; negative when refunds exceed takings
    payment_count: int  # payments that succeeded in the range
    failed_payment_count: int  # declined charge attempts recorded in the range
    refund_count: int
    average_payment: Money | None  # gross / payment_count, half-even; None without payments
    usage_billed: Money  # usage lines of the invoices finalized in the range (not voided)


@dataclass(frozen=True)
class CurrencyRevenue:
    currency: str
    buckets: list[RevenueFigures]  # the local periods meeting the range, clipped to it
    total: RevenueFigures


@dataclass(frozen=True)
class DayRevenue:
    day: date
    net: Money


@dataclass(frozen=True)
class CurrencySnapshot:
    currency: str
    today: Money  # net, the current UTC day
    this_month: Money  # net, the current UTC month
    net_total: Money  # net, all time
    mrr: Money
    payments_today: int  # payments that succeeded today (UTC)
    days: list[DayRevenue]  # last 30 days, oldest first


@dataclass(frozen=True)
class RevenueSnapshot:
    at: datetime
    currencies: list[CurrencySnapshot]


@dataclass(frozen=True)
class CurrencyOverview:
    currency: str
    today: RevenueFigures
    this_month: RevenueFigures
    payment_count: int  # succeeded payments, all time
    mrr: Money


@dataclass(frozen=True)
class Overview:
    at: datetime
    time_zone: str
    payment_count: int  # succeeded payments, all time, all currencies (a count adds up)
    failed_payments_today: int
    active_subscriptions: int
    trialing_subscriptions: int
    currencies: list[CurrencyOverview]


# -- subscriptions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCounts:
    active: int = 0
    trialing: int = 0
    past_due: int = 0
    paused: int = 0
    canceled: int = 0
    unpaid: int = 0
    incomplete: int = 0
    incomplete_expired: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, s.value) for s in Status)

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> StatusCounts:
        return cls(**{s.value: int(counts.get(s.value, 0)) for s in Status})


@dataclass(frozen=True)
class PlanStats:
    plan_id: str
    name: str | None
    tier: Tier | None
    counts: StatusCounts
    mrr: Money


@dataclass(frozen=True)
class TierStats:
    tier: Tier | None
    counts: StatusCounts
    mrr: list[Money]  # per currency


@dataclass(frozen=True)
class MrrMovements:
    new: Money
    expansion: Money
    contraction: Money
    churned: Money
    reactivation: Money

    @property
    def net(self) -> Money:
        return self.new + self.expansion + self.reactivation - self.contraction - self.churned


@dataclass(frozen=True)
class CurrencySubscriptionStats:
    currency: str
    mrr: Money  # at `at`
    arr: Money  # 12 x mrr
    paying_customers: int  # customers with MRR in this currency at `at`
    arpu: Money | None  # mrr / paying_customers, half-even
    mrr_at_start: Money  # just before `start`
    paying_customers_at_start: int
    movements: MrrMovements  # over [start, end)
    new_customers: int
    reactivated_customers: int
    churned_customers: int
    customer_churn: Ratio | None  # churned_customers / paying_customers_at_start
    revenue_churn: Ratio | None  # (churned + contraction) / mrr_at_start
    net_revenue_churn: Ratio | None  # (churned + contraction - expansion - reactivation) / same


@dataclass(frozen=True)
class SubscriptionStats:
    at: datetime
    start: datetime
    end: datetime
    counts: StatusCounts
    by_plan: list[PlanStats]
    by_tier: list[TierStats]
    currencies: list[CurrencySubscriptionStats]
    trials_started: int  # over [start, end)
    trials_ended: int
    trials_converted: int
    trial_conversion: Ratio | None  # trials_converted / trials_ended


# -- accumulation helpers -----------------------------------------------------------------------


@dataclass
class _Sums:
    numbers: dict[str, int] = field(default_factory=dict)

    def add(self, values: Mapping[str, Any], sign: int = 1) -> None:
        for name, value in values.items():
            self.numbers[name] = self.numbers.get(name, 0) + sign * int(value)

    def __getitem__(self, name: str) -> int:
        return self.numbers.get(name, 0)

    def any(self) -> bool:
        return any(self.numbers.values())


def _figures(currency: str, start: datetime, end: datetime, sums: _Sums) -> RevenueFigures:
    gross, count = sums["gross"], sums["payments"]
    return RevenueFigures(
        start=start,
        end=end,
        gross=Money(gross, currency),
        refunds=Money(sums["refunded"], currency),
        net=Money(gross - sums["refunded"], currency),
        payment_count=count,
        failed_payment_count=sums["failed"],
        refund_count=sums["refunds"],
        average_payment=Money(div_half_even(gross, count), currency) if count else None,
        usage_billed=Money(sums["usage_billed"], currency),
    )


def _event_counts(event: Row) -> list[tuple[tuple[str, str, str], int, int]]:
    """A ledger row as (currency, plan, status) -> (subscriptions, MRR) changes."""
    currency = event["currency"]
    changes = [((currency, event["plan_after"], event["status_after"]), 1, event["mrr_after"])]
    if event["status_before"] is not None:
        key = (currency, event["plan_before"], event["status_before"])
        changes.append((key, -1, -event["mrr_before"]))
    return changes


def _event_movement(event: Row) -> dict[str, int]:
    movement = Movement(event["movement"]) if event["movement"] is not None else None
    return movement_numbers(
        event["status_before"],
        event["status_after"],
        int(event["mrr_before"]),
        int(event["mrr_after"]),
        movement,
    )


def _within(events: Iterable[Row], start: datetime, end: datetime) -> list[Row]:
    return [e for e in events if start <= e["occurred_at"] < end]


def _today(currency: str, now: datetime, tz: ZoneInfo) -> RevenueFigures:
    """Zero figures for the local day of ``now``."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC).astimezone(tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return _figures(currency, start, end.astimezone(tz), _Sums())


def _mrr_by_currency(rows: Sequence[Row]) -> dict[str, int]:
    mrr: dict[str, int] = {}
    for row in rows:
        mrr[row["currency"]] = mrr.get(row["currency"], 0) + int(row["mrr"])
    return mrr


def _position(sums: _Sums | None) -> tuple[int, int]:
    """(MRR, paying customers) from movement sums since the beginning."""
    if sums is None:
        return 0, 0
    mrr = (
        sums["new_mrr"]
        + sums["expansion_mrr"]
        + sums["reactivation_mrr"]
        - sums["contraction_mrr"]
        - sums["churned_mrr"]
    )
    customers = sums["new_customers"] + sums["reactivated_customers"] - sums["churned_customers"]
    return mrr, customers


def _subscription_stats(
    at: datetime,
    start: datetime,
    end: datetime,
    counts: Mapping[tuple[str, str, str], list[int]],
    windows: Mapping[str, Mapping[str, _Sums]],
    plans: Mapping[str, Row],
) -> SubscriptionStats:
    overall: dict[str, int] = {}
    per_plan: dict[str, dict[str, int]] = {}
    plan_mrr: dict[str, tuple[str, int]] = {}
    per_tier: dict[Tier | None, dict[str, int]] = {}
    tier_mrr: dict[Tier | None, dict[str, int]] = {}
    mrr: dict[str, int] = {}
    for (currency, plan_id, status), (subscriptions, amount) in sorted(counts.items()):
        if not subscriptions and not amount:
            continue
        plan = plans.get(plan_id)
        tier = Tier(plan["tier"]) if plan is not None else None
        for into in (overall, per_plan.setdefault(plan_id, {}), per_tier.setdefault(tier, {})):
            into[status] = into.get(status, 0) + subscriptions
        previous = plan_mrr.get(plan_id, (currency, 0))[1]
        plan_mrr[plan_id] = (currency, previous + amount)
        by_currency = tier_mrr.setdefault(tier, {})
        by_currency[currency] = by_currency.get(currency, 0) + amount
        mrr[currency] = mrr.get(currency, 0) + amount

    currencies = []
    names = sorted(set(mrr) | set(windows["range"]) | set(windows["start"]) | set(windows["at"]))
    trials = _Sums()
    for name in names:
        moved = windows["range"].get(name) or _Sums()
        trials.add({k: moved[k] for k in ("trials_started", "trials_ended", "trials_converted")})
        mrr_start, customers_start = _position(windows["start"].get(name))
        _, customers_at = _position(windows["at"].get(name))
        amount = mrr.get(name, 0)
        if not (amount or customers_at or mrr_start or customers_start or moved.any()):
            continue

        def money(value: int, name: str = name) -> Money:
            return Money(value, name)

        lost = moved["churned_mrr"] + moved["contraction_mrr"]
        gained = moved["expansion_mrr"] + moved["reactivation_mrr"]
        currencies.append(
            CurrencySubscriptionStats(
                currency=name,
                mrr=money(amount),
                arr=money(12 * amount),
                paying_customers=customers_at,
                arpu=money(div_half_even(amount, customers_at)) if customers_at > 0 else None,
                mrr_at_start=money(mrr_start),
                paying_customers_at_start=customers_start,
                movements=MrrMovements(
                    new=money(moved["new_mrr"]),
                    expansion=money(moved["expansion_mrr"]),
                    contraction=money(moved["contraction_mrr"]),
                    churned=money(moved["churned_mrr"]),
                    reactivation=money(moved["reactivation_mrr"]),
                ),
                new_customers=moved["new_customers"],
                reactivated_customers=moved["reactivated_customers"],
                churned_customers=moved["churned_customers"],
                customer_churn=Ratio.of(moved["churned_customers"], customers_start),
                revenue_churn=Ratio.of(lost, mrr_start),
                net_revenue_churn=Ratio.of(lost - gained, mrr_start),
            )
        )
    return SubscriptionStats(
        at=at,
        start=start,
        end=end,
        counts=StatusCounts.of(overall),
        by_plan=[
            PlanStats(
                plan_id=plan_id,
                name=plans[plan_id]["name"] if plan_id in plans else None,
                tier=Tier(plans[plan_id]["tier"]) if plan_id in plans else None,
                counts=StatusCounts.of(numbers),
                mrr=Money(plan_mrr[plan_id][1], plan_mrr[plan_id][0]),
            )
            for plan_id, numbers in sorted(per_plan.items())
        ],
        by_tier=[
            TierStats(
                tier=tier,
                counts=StatusCounts.of(numbers),
                mrr=[Money(v, c) for c, v in sorted(tier_mrr.get(tier, {}).items())],
            )
            for tier, numbers in sorted(per_tier.items(), key=lambda item: _tier_order(item[0]))
        ],
        currencies=currencies,
        trials_started=trials["trials_started"],
        trials_ended=trials["trials_ended"],
        trials_converted=trials["trials_converted"],
        trial_conversion=Ratio.of(trials["trials_converted"], trials["trials_ended"]),
    )


def _tier_order(tier: Tier | None) -> int:
    order = list(Tier)
    return order.index(tier) if tier is not None else len(order)
