"""What every subscription operation shares: the service's collaborators, the row helpers and
the credit for what was paid. ``SubscriptionService`` (app/subscriptions/service.py) is built
on it, one class per group of operations.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.catalog import IntervalUnit, Plan, PlanService
from app.core.clock import Clock
from app.core.errors import DomainError, ErrorCode, NotFound
from app.core.idempotency import IdempotencyKeys, Stored
from app.core.listing import Listing
from app.core.pubsub import Event, publish
from app.invoicing import InvoiceService
from app.ledger import Ledger
from app.organizations import (
    CustomerPolicy,
    OrganizationService,
)
from app.outgoing_webhooks import api_view, emit
from app.rollups import StatsRecorder
from app.subscriptions.billing import BillLine, ChargeOutcome, SubscriptionBilling
from app.subscriptions.model import Status, Subscription
from app.subscriptions.periods import ensure_utc, period_bounds
from app.subscriptions.proration import prorate_until
from app.subscriptions.service_value import ServiceLine, Standing, unused_value
from app.usage import MetricService, UsageRating
from db.connection import Database, Row
from db.repositories.customers import CustomerRepository
from db.repositories.subscriptions.service_periods import ServicePeriodRepository
from db.repositories.subscriptions.subscriptions import SubscriptionRepository

__all__ = ["DunningPolicy", "SubscriptionBase", "SubscriptionDraft"]


log = logging.getLogger(__name__)

_MAX_BACKDATE = timedelta(days=366)


@dataclass(frozen=True)
class DunningPolicy:
    """Retry a failed renewal after these delays (from the failure); after the last failed
    retry the subscription becomes ``final`` (canceled or unpaid)."""

    retry_days: tuple[int, ...] = (3, 5, 7)
    final: Status = Status.CANCELED


@dataclass(frozen=True)
class SubscriptionDraft:
    customer_id: str
    plan_id: str
    quantity: int = 1
    trial_days: int | None = None
    start_at: datetime | None = None


# What a change tells other back ends (outgoing webhooks); any other change is an update.
_EVENT_OF = {
    Status.CANCELED.value: "subscription.canceled",
    Status.INCOMPLETE_EXPIRED.value: "subscription.canceled",
    Status.PAST_DUE.value: "subscription.past_due",
}
# Kept internal in events, as in the API.
_INTERNAL = frozenset({"billing_anchor", "period_index", "updated_at"})


def _event(row: Row) -> Event:
    return Event(
        org=row["organization_id"],
        kind="subscription",
        id=row["id"],
        data={"status": row["status"], "customer_id": row["customer_id"]},
    )


class SubscriptionBase:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        plans: PlanService,
        billing: SubscriptionBilling,
        invoices: InvoiceService,
        keys: IdempotencyKeys,
        dunning: DunningPolicy | None = None,
        lease: timedelta = timedelta(minutes=5),
        organizations: OrganizationService | None = None,
        concurrency: int = 1,
        usage: UsageRating | None = None,
    ) -> None:
        self._db = db
        self._usage = usage or UsageRating(db, MetricService(db))
        self._concurrency = concurrency
        self._clock = clock
        self._plans = plans
        self._billing = billing
        self._invoices = invoices
        self._keys = keys
        self._dunning = dunning or DunningPolicy()
        self._lease = lease
        self._organizations = organizations or OrganizationService(db)
        self._subs = SubscriptionRepository(db)
        self._periods = ServicePeriodRepository(db)
        self._ledger = Ledger(db)
        self._customers = CustomerRepository(db)
        self._stats = StatsRecorder(db)
        self.read = Listing(self._subs, Subscription.from_row)

    def _unpaid(self, outcome: ChargeOutcome, now: datetime) -> dict[str, Any]:
        """The values that put a subscription whose invoice ``outcome`` failed into dunning."""
        if outcome.paid:
            return {}
        retry_at = now + timedelta(days=self._dunning.retry_days[0])
        return {
            "status": Status.PAST_DUE.value,
            "dunning_attempts": 0,
            "next_retry_at": retry_at,
            "next_action_at": retry_at,
        }

    async def _unused(self, org: str, subscription_id: str, at: datetime) -> int:
        """What the subscription's service after ``at`` is worth by what was paid or promised
        for it (``app.subscriptions.service_value``), and never more than what the customer
        paid for the subscription and was not given back yet (``Ledger.subscription_room``): a
        refund still awaiting approval or in flight has not given anything back of the invoice
        on the books, but takes its share already."""
        rows = await self._periods.lines_after(org, subscription_id, at)
        value = unused_value(
            (
                ServiceLine(
                    value=r["value"],
                    period_start=r["period_start"],
                    period_end=r["period_end"],
                    standing=Standing(r["standing"]),
                    invoice_total=int(r["invoice_total"]),
                    given_back=int(r["given_back"]),
                )
                for r in rows
            ),
            at,
        )
        if value <= 0:
            return 0
        return min(value, max(await self._ledger.subscription_room(org, subscription_id), 0))

    async def _shorten_pending_charges(self, org: str, subscription_id: str, at: datetime) -> None:
        """Cut the pending charges (call it with the row locked) to end at ``at``: the plan
        they charge for is left then. Charging the part after ``at`` and crediting it back
        would net the same without a coupon, but the coupon of the invoice that bills them
        takes its share of the charge, not of the credit."""
        for p in await self._subs.open_pending_lines(org, subscription_id):
            if p["amount"] <= 0 or p["period_end"] <= at:
                continue
            kept = prorate_until(p["amount"], p["period_start"], p["period_end"], at)
            await self._subs.shorten_pending_line(
                org,
                p["id"],
                amount=kept,
                period_end=max(at, p["period_start"]),
                description=f"{p['description']}, until {_describe(at)}"[:1000],
            )

    async def _advance_without_invoice(self, row: Row, sub: Subscription) -> None:
        """A paused subscription's period ends: move to the next period, bill nothing."""
        index = 0 if sub.period_index is None else sub.period_index + 1
        start, end = period_bounds(sub.billing_anchor, sub.interval, sub.interval_count, index)
        next_action = end if sub.resumes_at is None else min(end, sub.resumes_at)
        await self._set(
            row,
            {
                "period_index": index,
                "current_period_start": start,
                "current_period_end": end,
                "next_action_at": next_action,
            },
        )

    async def _set(self, row: Row, values: Mapping[str, Any]) -> None:
        """Finish a claimed step: apply ``values`` and release the lease, only if nobody moved
        the subscription meanwhile (same state and period as when it was claimed)."""
        async with self._db.transaction():
            updated = await self._subs.transition(
                row["organization_id"],
                row["id"],
                [row["status"]],
                {**values, "leased_until": None},
                same_period=(row["period_index"],),
            )
            if updated is not None:
                await self._changed(updated)

    async def _changed(self, row: Row, *, created: bool = False) -> None:
        """Every change of a subscription ends here, inside its transaction: the statistics
        record it, then the live event is queued (sent on commit), and the outgoing webhook
        event is written to the outbox."""
        await self._stats.subscription_changed(row["organization_id"], row["id"])
        await publish(self._db, _event(row))
        await self._emit(
            row,
            "subscription.created"
            if created
            else _EVENT_OF.get(row["status"], "subscription.updated"),
        )

    async def _emit(self, row: Row, event_type: str, *, dedupe_key: str | None = None) -> None:
        view = api_view(
            Subscription.from_row(row),
            typename="Subscription",
            hide=_INTERNAL,
            links={"customer_id": "customer", "plan_id": "plan"},
        )
        await emit(self._db, row["organization_id"], event_type, view, dedupe_key=dedupe_key)

    def _period_line(self, sub: Subscription, index: int) -> BillLine:
        start, end = period_bounds(sub.billing_anchor, sub.interval, sub.interval_count, index)
        unit = "" if sub.quantity == 1 else f" x {sub.quantity}"
        return BillLine(
            description=f"Subscription {sub.plan_id}{unit}, {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            quantity=sub.quantity,
            amount=sub.period_amount.amount,
            kind="subscription",
            period_start=start,
            period_end=end,
        )

    async def _usage_lines(
        self, sub: Subscription, key: str, start: datetime, end: datetime
    ) -> list[BillLine]:
        """The usage lines of the invoice made under ``key`` for [start, end) of a paid period,
        with the adjustments late usage made (``UsageRating.invoice_lines``: rated once, the
        same lines for every retry with ``key``)."""
        org = sub.organization_id
        if not await self._usage.applies(org, sub.plan_id, sub.id, key):
            return []  # one statement for the plans (most) that meter nothing
        (plan,) = await self._plans.read.by_ids(org, [sub.plan_id])
        lines = await self._usage.invoice_lines(
            org,
            subscription_id=sub.id,
            plan_id=sub.plan_id,
            currency=sub.price.currency,
            credits_included=plan.credits_included if plan is not None else 0,
            key=key,
            period_start=start,
            period_end=max(start, end),
        )
        return [
            BillLine(
                description=line.description,
                quantity=1,
                amount=line.amount,
                kind="usage",
                period_start=line.period_start,
                period_end=line.period_end,
                discountable=line.amount > 0,
            )
            for line in lines
        ]

    async def _policy(self, org: str) -> CustomerPolicy:
        return await self._organizations.customer_policy(org)

    async def _usable_plan(self, org: str, plan_id: str, field: tuple[str, ...]) -> Plan:
        plan = (await self._plans.read.by_ids(org, [plan_id]))[0]
        if plan is None:
            raise NotFound("Plan", field)
        if not plan.active:
            raise DomainError(ErrorCode.INVALID_STATE, "The plan is archived.", field=field)
        if plan.interval is IntervalUnit.ONE_TIME:
            raise DomainError(
                ErrorCode.INVALID,
                "One-time plans are sold with an invoice, not a subscription.",
                field=field,
            )
        return plan

    async def _insert(self, values: Mapping[str, Any]) -> Row:
        row = await self._subs.insert(values)
        if row is None:
            raise _already_subscribed()
        return row

    async def _locked(self, org: str, subscription_id: str) -> Row:
        row = await self._subs.lock(org, subscription_id)
        if row is None:
            raise NotFound("Subscription", ("input", "id"))
        return row

    @staticmethod
    async def _require(pending: Any) -> Row:
        row: Row | None = await pending
        if row is None:  # the row is locked by us, so its state cannot have changed
            raise RuntimeError("subscription changed under its row lock")
        return row

    async def _replay(self, org: str, stored: Stored) -> Subscription:
        if stored.error is not None:
            raise stored.error
        found = (await self.read.by_ids(org, [stored.resource_id]))[0]
        if found is None:
            raise NotFound("Subscription", ("input", "id"))
        return found


def _final_key(sub: Subscription) -> str:
    return f"{sub.id}:final"


def _describe(at: datetime) -> str:
    return f"{ensure_utc(at, 'at'):%Y-%m-%d %H:%M:%S} UTC"


def _pending_line(row: Row) -> BillLine:
    """A pending line as invoiced: a credit for unused time (negative) is already net of the
    discount its time was paid with, so the invoice's coupon does not apply to it."""
    return BillLine(
        row["description"],
        row["quantity"],
        row["amount"],
        "proration",
        row["period_start"],
        row["period_end"],
        discountable=row["amount"] > 0,
    )


def _ordered(lines: list[BillLine]) -> list[BillLine]:
    """Proration lines in invoice order: credits for unused time (by period start), then
    charges for the rest of a period (by period start); ties keep the order they came in."""
    return sorted(lines, key=lambda line: (line.amount >= 0, line.period_start))


def _period_began_while_paused(row: Row) -> bool:
    """The current period started after the pause (the worker moved it without an invoice).
    A trial's period (``period_index`` None) was never to be billed."""
    paused_at = row["paused_at"]
    return (
        row["period_index"] is not None
        and paused_at is not None
        and row["current_period_start"] > paused_at
    )


def _over(refusals: list[DomainError], errors: list[DomainError]) -> list[DomainError]:
    """Policy refusals, then the other errors on fields not refused (a value a customer may not
    choose at all is reported as that, not as out of range)."""
    refused = {e.field for e in refusals}
    return refusals + [e for e in errors if e.field not in refused]


def _already_subscribed() -> DomainError:
    return DomainError(
        ErrorCode.DUPLICATE,
        "The customer already has a live subscription to this plan.",
        field=("input", "planId"),
    )


def _bad(name: str, message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message, field=("input", name))
