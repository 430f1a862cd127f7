"""Rating: a period's usage turned into invoice lines, once, and late usage into adjustments.

``invoice_lines`` is what the subscription engine calls when it invoices the end of a period
(renewal, end of the subscription). Under the subscription's exclusive usage lock it reads each
priced metric's aggregate for the period, rates it (``pricing.rate``), takes the plan's
included credits off, and re-rates the billed periods that late events reopened, billing the
difference. The lines are written to ``usage_charges`` under the invoice's key before they are
returned, so a retry of the same invoice gets the same lines and a period is rated once.

``current`` is the same arithmetic, read-only, for the period in progress
(``Subscription.currentUsage``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core.ids import new_id
from app.core.money import exponent
from app.usage.metrics import Aggregation, BillableMetric, MeteredPriceRecord, MetricService
from app.usage.pricing import RatedLine, rate
from db.connection import Database, Row
from db.repositories.usage.charges import UsageChargeRepository
from db.repositories.usage.events import UsageEventRepository, Window

__all__ = ["MetricUsage", "UsageLine", "UsageRating", "quantity_of"]

_ZERO = Decimal(0)
UNIQUE = Aggregation.UNIQUE_COUNT


@dataclass(frozen=True, slots=True)
class UsageLine:
    """An invoice line usage bills: ``amount`` minor units for ``period`` (credits
    negative)."""

    description: str
    amount: int
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True, slots=True)
class MetricUsage:
    """One metric's usage over a window and what it bills."""

    metric: BillableMetric
    quantity: Decimal
    amount: int
    tiers: list[RatedLine]
    period_start: datetime
    period_end: datetime
    currency: str


def quantity_of(metric: BillableMetric, found: Mapping[str, Any] | None) -> Decimal:
    """The aggregate of a metric from a row of ``UsageEventRepository.aggregates``."""
    if not found:
        return _ZERO
    aggregation = metric.aggregation
    if aggregation is Aggregation.COUNT:
        return Decimal(found.get("events") or 0)
    if aggregation is Aggregation.SUM:
        return Decimal(found.get("total") or 0)
    if aggregation is Aggregation.MAX:
        return Decimal(found.get("maximum") or 0)
    if aggregation is Aggregation.LATEST:
        return Decimal(found.get("latest") or 0)
    return Decimal(found.get("uniques") or 0)


def _number(value: Decimal) -> str:
    """12,345.5 — grouped, without trailing zeros."""
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def _unit_price(minor: Decimal, currency: str) -> str:
    value = minor.scaleb(-exponent(currency)).normalize()
    return f"{value:f}" if value else "0"


def _period(start: datetime, end: datetime) -> str:
    return f"{start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC"


def _tier_text(line: RatedLine, currency: str) -> str:
    text = f"{_number(line.units)} x {_unit_price(line.unit_price, currency)} {currency}"
    if line.tier:
        upper = "and above" if line.last_unit is None else f"to {_number(line.last_unit)}"
        text = f"tier {line.tier} (above {_number(line.first_unit)} {upper}): {text}"
    if line.flat_amount:
        flat = _unit_price(Decimal(line.flat_amount), currency)
        text += f" + {flat} {currency} flat"
    return text


def _tiers_json(lines: Sequence[RatedLine]) -> list[dict[str, Any]]:
    return [
        {
            "tier": t.tier,
            "from": str(t.first_unit),
            "to": None if t.last_unit is None else str(t.last_unit),
            "units": str(t.units),
            "unit_price": str(t.unit_price),
            "flat_amount": t.flat_amount,
            "amount": t.amount,
        }
        for t in lines
    ]


def tiers_from_json(tiers: Sequence[Mapping[str, Any]]) -> list[RatedLine]:
    return [
        RatedLine(
            tier=int(t["tier"]),
            first_unit=Decimal(t["from"]),
            last_unit=None if t["to"] is None else Decimal(t["to"]),
            units=Decimal(t["units"]),
            unit_price=Decimal(t["unit_price"]),
            flat_amount=int(t["flat_amount"]),
            amount=int(t["amount"]),
        )
        for t in tiers
    ]


class UsageRating:
    def __init__(self, db: Database, metrics: MetricService) -> None:
        self._db = db
        self._metrics = metrics
        self._events = UsageEventRepository(db)
        self._charges = UsageChargeRepository(db)

    async def prices(self, org: str, plan_id: str, currency: str) -> list[MeteredPriceRecord]:
        (found,) = await self._metrics.prices_of_plans(
            org, [plan_id], {plan_id: exponent(currency)}
        )
        return found

    async def measure(
        self,
        org: str,
        windows: Sequence[tuple[str, Sequence[BillableMetric], datetime, datetime]],
    ) -> list[dict[str, Decimal]]:
        """Per (subscription, metrics, start, end): each metric's aggregate over [start, end),
        by metric id. Two statements at most, whatever the number of windows."""
        targets = []
        unique_targets = []
        for subscription_id, metrics, start, end in windows:
            window = Window.of(start, end)
            for metric in metrics:
                target = (subscription_id, metric.id, window)
                if metric.aggregation is Aggregation.UNIQUE_COUNT:
                    unique_targets.append(target)
                else:
                    targets.append(target)
        found = await self._events.aggregates(org, targets)
        if unique_targets:
            found.update(await self._events.aggregates(org, unique_targets, unique=True))
        return [
            {m.id: quantity_of(m, found.get((sub, m.id))) for m in metrics}
            for sub, metrics, _, _ in windows
        ]

    async def current(
        self,
        org: str,
        subscriptions: Sequence[tuple[str, str, str, datetime, datetime, bool]],
    ) -> list[list[MetricUsage]]:
        """Per (subscription, plan, currency, period start, now, billable): each priced
        metric's usage so far and what it bills (nothing while ``billable`` is false: a
        trial's usage is not billed)."""
        plans = sorted({plan for _, plan, *_ in subscriptions})
        currencies = {plan: currency for _, plan, currency, *_ in subscriptions}
        prices_of = dict(
            zip(
                plans,
                await self._metrics.prices_of_plans(
                    org, plans, {p: exponent(currencies[p]) for p in plans}
                ),
                strict=True,
            )
        )
        # Unique counts of a current period come from its distinct values (one row each); the
        # other aggregates from the hourly pre-aggregates.
        windows = [
            (
                sub,
                [p.metric for p in prices_of[plan] if p.metric.aggregation is not UNIQUE],
                start,
                end,
            )
            for sub, plan, _, start, end, _ in subscriptions
        ]
        quantities = await self.measure(org, windows) if plans else []
        uniques = await self._events.period_uniques(
            org,
            [
                (sub, p.metric.id, start)
                for sub, plan, _, start, _, _ in subscriptions
                for p in prices_of[plan]
                if p.metric.aggregation is UNIQUE
            ],
        )
        for (sub, plan, *_), measured in zip(subscriptions, quantities, strict=True):
            for p in prices_of[plan]:
                if p.metric.aggregation is UNIQUE:
                    measured[p.metric.id] = Decimal(uniques.get((sub, p.metric.id), 0))
        found: list[list[MetricUsage]] = []
        for (_, plan, currency, start, end, billable), measured in zip(
            subscriptions, quantities, strict=True
        ):
            usages = []
            for price in prices_of[plan]:
                quantity = measured[price.metric.id]
                tiers = rate(quantity, price.price) if billable else []
                usages.append(
                    MetricUsage(
                        metric=price.metric,
                        quantity=quantity,
                        amount=sum(t.amount for t in tiers),
                        tiers=tiers,
                        period_start=start,
                        period_end=end,
                        currency=currency,
                    )
                )
            found.append(usages)
        return found

    async def invoice_lines(
        self,
        org: str,
        *,
        subscription_id: str,
        plan_id: str,
        currency: str,
        credits_included: int,
        key: str,
        period_start: datetime,
        period_end: datetime,
    ) -> list[UsageLine]:
        """The usage lines of the invoice made under ``key`` for the period [period_start,
        period_end), with the adjustments of reopened periods: rated and reserved the first
        time, the same lines for every later call with ``key``."""
        async with self._db.transaction():
            await self._charges.lock_subscription(org, subscription_id)
            reserved = await self._charges.reserved_by(org, subscription_id, key)
            if reserved:
                return await self._lines(org, reserved, currency)
            prices = await self.prices(org, plan_id, currency)
            rows: list[dict[str, Any]] = []
            base = {
                "organization_id": org,
                "subscription_id": subscription_id,
                "invoice_key": key,
                "billed_at": period_end,
            }
            if prices and period_end > period_start:
                metrics = [p.metric for p in prices]
                (measured,) = await self.measure(
                    org, [(subscription_id, metrics, period_start, period_end)]
                )
                rated = self._rate(prices, measured)
                usage_total = 0
                for price, quantity, tiers in rated:
                    amount = sum(t.amount for t in tiers)
                    usage_total += amount
                    rows.append(
                        {
                            **base,
                            "id": new_id("uc"),
                            "metric_id": price.metric.id,
                            "kind": "usage",
                            "period_start": period_start,
                            "period_end": period_end,
                            "quantity": quantity,
                            "amount": amount,
                            "tiers": _tiers_json(tiers),
                        }
                    )
                credit = min(credits_included, usage_total)
                if credit > 0:
                    rows.append(
                        {
                            **base,
                            "id": new_id("uc"),
                            "metric_id": None,
                            "kind": "credit",
                            "period_start": period_start,
                            "period_end": period_end,
                            "quantity": _ZERO,
                            "amount": -credit,
                            "tiers": [],
                        }
                    )
            rows += await self._adjustments(
                org, subscription_id, prices, credits_included, base, before=period_start
            )
            await self._charges.insert(rows)
            return await self._lines(org, rows, currency)

    async def applies(self, org: str, plan_id: str, subscription_id: str, key: str) -> bool:
        """Whether the plan meters anything, or lines were reserved under ``key`` already
        (``invoice_lines`` has something to say): one statement."""
        return await self._charges.applies(org, plan_id, subscription_id, key)

    async def invoiced(self, org: str, subscription_id: str, key: str, invoice_id: str) -> None:
        """The invoice made under ``key`` exists: link the usage lines it carries to it."""
        await self._charges.link_invoice(org, subscription_id, key, invoice_id)

    @staticmethod
    def _rate(
        prices: Sequence[MeteredPriceRecord], measured: Mapping[str, Decimal]
    ) -> list[tuple[MeteredPriceRecord, Decimal, list[RatedLine]]]:
        return [(p, measured[p.metric.id], rate(measured[p.metric.id], p.price)) for p in prices]

    async def _adjustments(
        self,
        org: str,
        subscription_id: str,
        prices: Sequence[MeteredPriceRecord],
        credits_included: int,
        base: Mapping[str, Any],
        *,
        before: datetime,
    ) -> list[dict[str, Any]]:
        """Re-rate the billed periods late events reopened (those before ``before``) with the
        plan's prices now, and bill the difference per metric and for the included credits."""
        if not prices:
            return []  # nothing prices usage now: the reopened periods wait
        reopened = [
            r for r in await self._charges.take_reopened(org, subscription_id, before=before)
        ]
        if not reopened:
            return []
        metrics = [p.metric for p in prices]
        measured = await self.measure(
            org, [(subscription_id, metrics, r["period_start"], r["period_end"]) for r in reopened]
        )
        billed = await self._charges.billed_in(
            org, subscription_id, [r["period_start"] for r in reopened]
        )
        rows: list[dict[str, Any]] = []
        for period, quantities in zip(reopened, measured, strict=True):
            start, end = period["period_start"], period["period_end"]
            mine = [b for b in billed if b["period_start"] == start]
            new_total = 0
            for price, quantity, tiers in self._rate(prices, quantities):
                amount = sum(t.amount for t in tiers)
                new_total += amount
                was = [b for b in mine if b["metric_id"] == price.metric.id]
                difference = amount - sum(b["amount"] for b in was)
                if difference:
                    before_quantity = sum((Decimal(b["quantity"]) for b in was), _ZERO)
                    rows.append(
                        {
                            **base,
                            "id": new_id("uc"),
                            "metric_id": price.metric.id,
                            "kind": "adjustment",
                            "period_start": start,
                            "period_end": end,
                            "quantity": quantity - before_quantity,
                            "amount": difference,
                            "tiers": _tiers_json(tiers),
                        }
                    )
            credit_was = sum(b["amount"] for b in mine if b["metric_id"] is None)
            credit_now = -min(credits_included, new_total) if credits_included else 0
            if credit_now != credit_was:
                rows.append(
                    {
                        **base,
                        "id": new_id("uc"),
                        "metric_id": None,
                        "kind": "adjustment",
                        "period_start": start,
                        "period_end": end,
                        "quantity": _ZERO,
                        "amount": credit_now - credit_was,
                        "tiers": [],
                    }
                )
        return rows

    async def _lines(self, org: str, rows: Sequence[Row], currency: str) -> list[UsageLine]:
        """Invoice lines of reserved rows: one per rated tier, one per credit or adjustment."""
        ids = sorted({row["metric_id"] for row in rows if row["metric_id"]})
        names = {m.id: m.name for m in await self._metrics.read.by_ids(org, ids) if m is not None}
        lines: list[UsageLine] = []
        for row in rows:
            start, end = row["period_start"], row["period_end"]
            name = names.get(row["metric_id"], "usage") if row["metric_id"] else None
            if row["kind"] == "usage":
                for tier in tiers_from_json(row["tiers"]):
                    text = f"{name}: {_tier_text(tier, currency)}"
                    lines.append(UsageLine(text, tier.amount, start, end))
            elif row["kind"] == "credit":
                lines.append(UsageLine("Included usage credit", row["amount"], start, end))
            else:
                change = Decimal(row["quantity"])
                sign = "+" if change >= 0 else "-"
                what = f"{name} {sign}{_number(abs(change))}" if name else "included usage credit"
                text = f"Usage adjustment for {_period(start, end)}: {what} (late usage)"
                lines.append(UsageLine(text, row["amount"], start, end))
        return lines
