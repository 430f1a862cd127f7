"""Subscription operations and the billing engine that the worker drives.

Every state change is a conditional UPDATE listing the states it may start from
(``SubscriptionRepository.transition``), so concurrent requests and workers cannot make an
illegal transition. Work the worker must do is scheduled in ``next_action_at`` (trial end,
period end, dunning retry, resume, expiry of an incomplete subscription) and claimed with
``FOR UPDATE SKIP LOCKED``: any number of workers bill each period exactly once, because the
period advances in the same transaction that bills it.

Every operation takes the caller (``Principal``): a customer token is held to the organization's
customer policy (``app.customer_policy``: trial, start, quantity, proration, pause), admins and
services are not.

Money rules (``docs/proration.md``):

* A credit for unused time is what the rest of the period is worth by what was paid for it
  (``app.service_value``), never the list price; it is not discountable (already net of its
  own invoice's discount).
* A plan change also cuts the charges still pending (``CREATE_PRORATIONS``) for the plan it
  leaves to end at the change: the customer is charged for the time it had that plan, and the
  next invoice's coupon applies to what is really charged.
* When a subscription ends (cancel now, cancel at period end, dunning), its pending lines are
  settled on a final invoice under the key ``<subscription>:final``: credits in full, charges
  for the time up to the end; an immediate cancellation adds the credit for unused time
  (unless ``prorate`` is false).
* An ``ALWAYS_INVOICE`` change that is not paid puts the subscription in dunning (``past_due``),
  as a failed renewal does, whoever made it.
* Lines of renewal and final invoices are ordered: credits (by period start), charges for the
  rest of a period (by period start), then the new period.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.auth import Principal
from app.clock import Clock
from app.customer_policy import (
    MAX_QUANTITY,
    CustomerPolicy,
    change_refusals,
    create_refusals,
    is_customer,
    pause_refusals,
    resolved_behavior,
    resume_refusals,
    trial_days_at_create,
    trial_end_after_change,
)
from app.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.idempotency import Claim, IdempotencyKeys, Stored
from app.ids import new_id
from app.invoices import InvoiceService, InvoiceStatus
from app.ledger import Ledger
from app.listing import Listing
from app.organizations import OrganizationService
from app.periods import ensure_utc, period_bounds
from app.plans import IntervalUnit, Plan, PlanService
from app.proration import cancellation_credit, plan_change_lines, prorate, prorate_until
from app.pubsub import Event, publish
from app.service_value import ServiceLine, Standing, unused_value
from app.stats_recorder import StatsRecorder
from app.stripe_gateway import ProviderUnreachable
from app.subscription_billing import BillLine, ChargeOutcome, SubscriptionBilling
from app.subscriptions import (
    INCOMPLETE_WINDOW,
    LIVE,
    EndedSubscriptionInvoices,
    ProrationBehavior,
    Status,
    Subscription,
    invalid_state,
)
from db.connection import Database, Row
from db.repositories.customers import CustomerRepository
from db.repositories.service_periods import ServicePeriodRepository
from db.repositories.subscriptions import LivePlanConflict, SubscriptionRepository

__all__ = ["DunningPolicy", "SubscriptionDraft", "SubscriptionService"]

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


def _event(row: Row) -> Event:
    return Event(
        org=row["organization_id"],
        kind="subscription",
        id=row["id"],
        data={"status": row["status"], "customer_id": row["customer_id"]},
    )


class SubscriptionService:
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
    ) -> None:
        self._db = db
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

    async def of_customers(self, org: str, customer_ids: list[str]) -> list[list[Subscription]]:
        rows = await self._subs.by_customer_ids(org, customer_ids)
        return [[Subscription.from_row(row) for row in group] for group in rows]

    # -- creation -------------------------------------------------------------------------

    async def create(
        self, org: str, actor: Principal, draft: SubscriptionDraft, *, key: str
    ) -> Subscription:
        subscription_id = new_id("sub")
        request = {
            "customer_id": draft.customer_id,
            "plan_id": draft.plan_id,
            "quantity": draft.quantity,
            "trial_days": draft.trial_days,
            "start_at": draft.start_at.isoformat() if draft.start_at else None,
        }

        async def work(claim: Claim) -> Subscription:
            return await self._create(org, actor, draft, claim)

        return await self._keys.run(
            org,
            key,
            operation="subscriptionCreate",
            request=request,
            resource_id=subscription_id,
            work=work,
            replay=lambda stored: self._replay(org, stored),
        )

    async def _create(
        self, org: str, actor: Principal, draft: SubscriptionDraft, claim: Claim
    ) -> Subscription:
        now = await self._clock.now(org)
        plan = await self._usable_plan(org, draft.plan_id, ("input", "planId"))
        errors = []
        if not 1 <= draft.quantity <= MAX_QUANTITY:
            errors.append(_bad("quantity", "Quantity must be between 1 and 1,000,000."))
        if draft.trial_days is not None and not 0 <= draft.trial_days <= 730:
            errors.append(_bad("trialDays", "Trial days must be between 0 and 730."))
        start = draft.start_at or now
        if start > now or start < now - _MAX_BACKDATE:
            errors.append(_bad("startAt", "startAt must be now or in the past year."))
        customer = is_customer(actor)
        if customer:
            refusals = create_refusals(
                await self._policy(org),
                plan,
                quantity=draft.quantity,
                trial_days=draft.trial_days,
                start_at=draft.start_at,
            )
            errors = _over(refusals, errors)
        if errors:
            raise ValidationFailed(errors)
        if await self._customers.by_ids(org, [draft.customer_id]) == [None]:
            raise NotFound("Customer", ("input", "customerId"))

        async with self._db.transaction():
            # Recorded whoever subscribes, so a customer never gets a trial in a family it held
            # (the claim waits for a concurrent one on the same family, then sees it).
            first = await self._subs.claim_family(
                org, draft.customer_id, plan.family, claim.resource_id
            )
            if customer:
                trial_days = trial_days_at_create(
                    plan, requested=draft.trial_days, first_in_family=first == claim.resource_id
                )
            else:
                trial_days = plan.trial_days if draft.trial_days is None else draft.trial_days
            row = await self._insert(
                self._initial_values(org, claim.resource_id, draft, plan, start, trial_days)
            )
            if trial_days > 0:
                await self._keys.complete(claim)
                await self._changed(row)
                return Subscription.from_row(row)
            # Counted as incomplete from now (no live event: nothing to show until it is paid).
            await self._stats.subscription_changed(org, row["id"])
        # Without a trial the first period is charged at once; the row exists (incomplete)
        # first, so a crash leaves a visible subscription that the retry completes.
        return await self._bill_first_period(org, row, now, claim)

    @staticmethod
    def _initial_values(
        org: str,
        subscription_id: str,
        draft: SubscriptionDraft,
        plan: Plan,
        start: datetime,
        trial_days: int,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "organization_id": org,
            "id": subscription_id,
            "customer_id": draft.customer_id,
            "plan_id": plan.id,
            "quantity": draft.quantity,
            "currency": plan.price.currency,
            "unit_amount": plan.price.amount,
            "interval_unit": plan.interval.value,
            "interval_count": plan.interval_count,
            "cancel_at_period_end": False,
            "dunning_attempts": 0,
        }
        if trial_days > 0:
            trial_end = start + timedelta(days=trial_days)
            values.update(
                status=Status.TRIALING.value,
                billing_anchor=trial_end,
                period_index=None,
                current_period_start=start,
                current_period_end=trial_end,
                trial_start=start,
                trial_end=trial_end,
                next_action_at=trial_end,
            )
        else:
            period_start, period_end = period_bounds(start, plan.interval, plan.interval_count, 0)
            values.update(
                status=Status.INCOMPLETE.value,
                billing_anchor=start,
                period_index=0,
                current_period_start=period_start,
                current_period_end=period_end,
                next_action_at=None,
            )
        return values

    async def _bill_first_period(
        self, org: str, row: Row, now: datetime, claim: Claim
    ) -> Subscription:
        subscription = Subscription.from_row(row)
        outcome = await self._billing.bill(
            org,
            customer_id=subscription.customer_id,
            subscription_id=subscription.id,
            currency=subscription.price.currency,
            lines=[self._period_line(subscription, 0)],
            key=f"{subscription.id}:period:0",
            period_index=0,
        )
        async with self._db.transaction():
            if outcome.paid:
                row = await self._require(
                    self._subs.transition(
                        org,
                        subscription.id,
                        [Status.INCOMPLETE.value],
                        {
                            "status": Status.ACTIVE.value,
                            "latest_invoice_id": outcome.invoice_id,
                            "next_action_at": subscription.current_period_end,
                        },
                    )
                )
            else:
                row = await self._require(
                    self._subs.transition(
                        org,
                        subscription.id,
                        [Status.INCOMPLETE.value],
                        {
                            "latest_invoice_id": outcome.invoice_id,
                            "next_action_at": now + INCOMPLETE_WINDOW,
                        },
                    )
                )
            await self._keys.complete(claim)
            await self._changed(row)
        return Subscription.from_row(row)

    # -- changes --------------------------------------------------------------------------

    async def change_plan(
        self,
        org: str,
        actor: Principal,
        subscription_id: str,
        *,
        plan_id: str,
        quantity: int | None,
        behavior: ProrationBehavior | None,
        key: str,
    ) -> Subscription:
        """Move the subscription to ``plan_id`` (and ``quantity``), prorating with ``behavior``
        (None: the customer policy's for a customer token, ``CREATE_PRORATIONS`` for staff)."""
        request = {
            "id": subscription_id,
            "plan_id": plan_id,
            "quantity": quantity,
            "behavior": behavior.value if behavior is not None else None,
        }

        async def work(claim: Claim) -> Subscription:
            return await self._change_plan(
                org, actor, subscription_id, plan_id, quantity, behavior, claim
            )

        return await self._keys.run(
            org,
            key,
            operation="subscriptionChangePlan",
            request=request,
            resource_id=subscription_id,
            work=work,
            replay=lambda stored: self._replay(org, stored),
        )

    async def _change_plan(
        self,
        org: str,
        actor: Principal,
        subscription_id: str,
        plan_id: str,
        quantity: int | None,
        requested: ProrationBehavior | None,
        claim: Claim,
    ) -> Subscription:
        plan = await self._usable_plan(org, plan_id, ("input", "planId"))
        if quantity is not None and not 1 <= quantity <= MAX_QUANTITY:
            raise ValidationFailed([_bad("quantity", "Quantity must be between 1 and 1,000,000.")])
        policy = await self._policy(org) if is_customer(actor) else None
        behavior = resolved_behavior(actor, policy, requested)
        now = await self._clock.now(org)
        allowed = [Status.ACTIVE.value, Status.TRIALING.value]
        ends_trial = False
        async with self._db.transaction():
            current = await self._locked(org, subscription_id)
            sub = Subscription.from_row(current)
            if sub.status.value not in allowed:
                raise invalid_state(sub.status, "change plan")
            if policy is not None:
                refusals = change_refusals(
                    policy,
                    plan,
                    current_plan_id=sub.plan_id,
                    current_quantity=sub.quantity,
                    quantity=quantity,
                    behavior=requested,
                )
                if refusals:
                    raise ValidationFailed(refusals)
            new_quantity = quantity or sub.quantity
            if plan.price.currency != sub.price.currency:
                raise DomainError(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"The new plan is priced in {plan.price.currency}; this subscription bills "
                    f"in {sub.price.currency}.",
                    field=("input", "planId"),
                )
            if (plan.interval, plan.interval_count) != (sub.interval, sub.interval_count):
                raise DomainError(
                    ErrorCode.INVALID,
                    "The new plan must bill on the same interval as the current one.",
                    field=("input", "planId"),
                )
            if (plan.id, new_quantity) == (sub.plan_id, sub.quantity):
                raise DomainError(
                    ErrorCode.INVALID,
                    "The subscription is already on this plan and quantity.",
                    field=("input", "planId"),
                )
            first = await self._subs.claim_family(org, sub.customer_id, plan.family, sub.id)
            values: dict[str, Any] = {
                "plan_id": plan.id,
                "quantity": new_quantity,
                "unit_amount": plan.price.amount,
            }
            if policy is not None and sub.status is Status.TRIALING:
                trial, ends_trial = await self._customer_trial_change(org, sub, plan, first, now)
                values.update(trial)
            lines: list[BillLine] = []
            invoice_id: str | None = None
            prorates = (
                sub.status is Status.ACTIVE
                and behavior is not ProrationBehavior.NONE
                and now < sub.current_period_end
                and (sub.price.amount, sub.quantity) != (plan.price.amount, new_quantity)
            )
            if prorates:
                # The plan it leaves stops now: its pending charges end here (before the value
                # of what is left is read, so they are not credited as well).
                await self._shorten_pending_charges(org, sub.id, now)
                unused = await self._unused(org, sub.id, now)
                for line in plan_change_lines(
                    sub.price.amount,
                    sub.quantity,
                    plan.price.amount,
                    new_quantity,
                    sub.current_period_start,
                    sub.current_period_end,
                    now,
                    old_label=f"{sub.plan_id} x {sub.quantity}",
                    new_label=f"{plan.name} x {new_quantity}",
                    unused=unused,
                ):
                    lines.append(
                        BillLine(
                            line.description,
                            line.quantity,
                            line.amount,
                            "proration",
                            line.period_start,
                            line.period_end,
                            # The credit is already net of the discount its time was paid with.
                            discountable=line.amount > 0,
                        )
                    )
            try:
                row = await self._require(
                    self._subs.transition(org, subscription_id, allowed, values)
                )
            except LivePlanConflict:
                raise _already_subscribed() from None
            if lines and behavior is ProrationBehavior.CREATE_PRORATIONS:
                await self._subs.add_pending_lines(
                    [
                        {
                            "organization_id": org,
                            "id": new_id("il"),
                            "subscription_id": subscription_id,
                            "description": line.description,
                            "quantity": line.quantity,
                            "amount": line.amount,
                            "period_start": line.period_start,
                            "period_end": line.period_end,
                        }
                        for line in lines
                    ]
                )
            if not (lines and behavior is ProrationBehavior.ALWAYS_INVOICE):
                await self._keys.complete(claim)
                await self._changed(row)
                if not ends_trial:
                    return Subscription.from_row(row)
            else:
                # Issued (not charged) in this transaction: the invoice commits with the change,
                # so a change right after it reads the credit it gave (no credit twice).
                invoice_id = await self._billing.issue(
                    org,
                    customer_id=sub.customer_id,
                    subscription_id=sub.id,
                    currency=sub.price.currency,
                    lines=lines,
                    key=claim.stripe_key("proration"),
                    period_index=sub.period_index,
                )
        if ends_trial:
            return await self._bill_trial_ended(row, now)
        assert invoice_id is not None  # issued above: a change invoiced at once
        try:
            outcome = await self._billing.charge(
                org, invoice_id=invoice_id, key=claim.stripe_key("proration")
            )
        except (ProviderUnreachable, DomainError) as exc:
            # Not known to be paid (Stripe unreachable, a charge in flight): dunning retries it,
            # and reads Stripe's state before charging again, so nothing is charged twice.
            log.warning("subscription %s: change invoice not charged (%s)", sub.id, exc.code)
            outcome = ChargeOutcome(invoice_id, False, exc.code.value, exc.message)
        # A change is not free when its invoice is not paid, whoever made it: dunning, as a
        # failed renewal (the change stands; paid, it is active again).
        after: dict[str, Any] = {"latest_invoice_id": outcome.invoice_id}
        after.update(self._unpaid(outcome, now))
        async with self._db.transaction():
            row = await self._require(self._subs.transition(org, subscription_id, allowed, after))
            await self._keys.complete(claim)
            await self._changed(row)
        return Subscription.from_row(row)

    async def _customer_trial_change(
        self, org: str, sub: Subscription, plan: Plan, first: str, now: datetime
    ) -> tuple[dict[str, Any], bool]:
        """The trial of a customer's trialing subscription moved to ``plan``: cut to what the
        new plan offers (``trial_end_after_change``), or over now, which makes it due at once
        (this request holds it and bills its first period; the worker does if we die)."""
        assert sub.trial_start is not None  # trialing
        assert sub.trial_end is not None
        current_plan = (await self._plans.read.by_ids(org, [sub.plan_id]))[0]
        same_family = current_plan is not None and current_plan.family == plan.family
        end = trial_end_after_change(
            trial_start=sub.trial_start,
            trial_end=sub.trial_end,
            plan_trial_days=plan.trial_days,
            first_in_family=first == sub.id or same_family,
        )
        if end > now:
            if end == sub.trial_end:
                return {}, False
            return {
                "trial_end": end,
                "current_period_end": end,
                "billing_anchor": end,
                "next_action_at": end,
            }, False
        return {
            "trial_end": now,
            "billing_anchor": now,
            "next_action_at": now,
            "leased_until": sa.func.now() + sa.literal(self._lease, sa.Interval()),
        }, True

    async def _bill_trial_ended(self, row: Row, now: datetime) -> Subscription:
        """Start and charge the first period of a subscription whose trial a plan change ended
        (as the worker does at a trial's end). If this is interrupted, the worker does it once
        the lease taken with the change runs out; the same billing key charges it once."""
        try:
            await self._renew(row, Subscription.from_row(row), now)
        except (ProviderUnreachable, DomainError) as exc:
            log.warning("subscription %s: first period not billed yet (%s)", row["id"], exc)
        found = (await self.read.by_ids(row["organization_id"], [row["id"]]))[0]
        assert found is not None  # subscriptions are never deleted
        return found

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

    async def cancel(
        self,
        org: str,
        subscription_id: str,
        *,
        at_period_end: bool,
        reason: str | None,
        feedback: str | None,
        prorate: bool = True,
    ) -> Subscription:
        """Cancel at period end, or now. Now, the pending lines are settled on a final invoice
        with, if ``prorate``, the credit for the unused time (``_final_lines``); it is charged
        or, as a net credit, goes to the customer's credit balance. An incomplete subscription
        never started: its first invoice is voided."""
        if feedback is not None and len(feedback) > 2000:
            raise ValidationFailed([_bad("feedback", "Feedback is at most 2,000 characters.")])
        if reason is not None and len(reason) > 200:
            raise ValidationFailed([_bad("reason", "Reason is at most 200 characters.")])
        now = await self._clock.now(org)
        if not at_period_end:
            await self._void_first_invoice_if_incomplete(org, subscription_id)
        final: list[BillLine] = []
        async with self._db.transaction():
            current = await self._locked(org, subscription_id)
            status = Status(current["status"])
            if status not in LIVE:
                raise invalid_state(status, "be canceled")
            common: dict[str, Any] = {
                "cancel_reason": reason,
                "cancel_feedback": feedback,
                "canceled_at": now,
            }
            values: dict[str, Any]
            if at_period_end:
                if status not in (Status.ACTIVE, Status.TRIALING):
                    raise invalid_state(status, "be canceled at period end")
                values = {**common, "cancel_at_period_end": True}
                allowed = [Status.ACTIVE.value, Status.TRIALING.value]
            else:
                sub = Subscription.from_row(current)
                final = await self._final_lines(sub, now, credit=prorate)
                values = {
                    **common,
                    "status": Status.CANCELED.value,
                    "ended_at": now,
                    "next_action_at": None,
                    "next_retry_at": None,
                }
                if final:
                    # The final invoice is billed below; should this request die first, the
                    # worker bills it once the lease runs out (the same key bills it once).
                    values.update(
                        next_action_at=now,
                        leased_until=sa.func.now() + sa.literal(self._lease, sa.Interval()),
                    )
                allowed = [s.value for s in LIVE]
            row = await self._require(self._subs.transition(org, subscription_id, allowed, values))
            await self._changed(row)
        if final:
            row = await self._bill_final(row, final)
        return Subscription.from_row(row)

    async def _void_first_invoice_if_incomplete(self, org: str, subscription_id: str) -> None:
        """An incomplete subscription canceled now never started: void its unpaid first invoice
        first (if it was paid meanwhile, it is canceled as a paid one)."""
        found = (await self.read.by_ids(org, [subscription_id]))[0]
        if found is None or found.status is not Status.INCOMPLETE:
            return
        if found.latest_invoice_id is not None:
            await self._close_invoice(
                org,
                found.latest_invoice_id,
                EndedSubscriptionInvoices.VOID,
                "The subscription was canceled before its first payment.",
            )

    async def pause(
        self, org: str, actor: Principal, subscription_id: str, *, resumes_at: datetime | None
    ) -> Subscription:
        now = await self._clock.now(org)
        if is_customer(actor):
            refusals = pause_refusals(await self._policy(org), resumes_at=resumes_at)
            if refusals:
                raise ValidationFailed(refusals)
        if resumes_at is not None and resumes_at <= now:
            raise ValidationFailed([_bad("resumesAt", "resumesAt must be in the future.")])
        async with self._db.transaction():
            current = await self._locked(org, subscription_id)
            status = Status(current["status"])
            allowed = [Status.ACTIVE.value, Status.TRIALING.value]
            if status.value not in allowed:
                raise invalid_state(status, "be paused")
            next_action = current["current_period_end"]
            if resumes_at is not None:
                next_action = min(next_action, resumes_at)
            row = await self._require(
                self._subs.transition(
                    org,
                    subscription_id,
                    allowed,
                    {
                        "status": Status.PAUSED.value,
                        "paused_at": now,
                        "resumes_at": resumes_at,
                        "next_action_at": next_action,
                    },
                )
            )
            await self._changed(row)
        return Subscription.from_row(row)

    async def resume(self, org: str, actor: Principal, subscription_id: str) -> Subscription:
        """Resume a paused subscription, or undo a cancellation scheduled for period end. A
        customer token resuming a subscription whose current period began while it was paused
        pays the rest of that period first (``_resume_billed``)."""
        policy = await self._policy(org) if is_customer(actor) else None
        unbilled: Row | None = None
        async with self._db.transaction():
            current = await self._locked(org, subscription_id)
            status = Status(current["status"])
            if status is Status.PAUSED:
                if policy is not None:
                    refusals = resume_refusals(policy)
                    if refusals:
                        raise ValidationFailed(refusals)
                    if _period_began_while_paused(current):
                        unbilled = current
                values = self._resumed(current)
                allowed = [Status.PAUSED.value]
            elif status in (Status.ACTIVE, Status.TRIALING) and current["cancel_at_period_end"]:
                values = {
                    "cancel_at_period_end": False,
                    "canceled_at": None,
                    "cancel_reason": None,
                }
                allowed = [Status.ACTIVE.value, Status.TRIALING.value]
            else:
                raise invalid_state(status, "be resumed")
            if unbilled is None:
                row = await self._require(
                    self._subs.transition(org, subscription_id, allowed, values)
                )
                await self._changed(row)
                return Subscription.from_row(row)
        return await self._resume_billed(unbilled)

    async def _resume_billed(self, row: Row) -> Subscription:
        """Resume for a customer a subscription whose current period began while it was paused
        (so was never invoiced): bill the rest of that period, prorated to the second, then
        resume it, ``past_due`` if that charge fails. Billing comes first and is keyed by the
        period, so a retry or a concurrent resume charges it once; the resume applies only if
        the subscription is still paused in the same period."""
        org = row["organization_id"]
        now = await self._clock.now(org)
        sub = Subscription.from_row(row)
        values = self._resumed(row)
        amount = prorate(
            sub.period_amount.amount, sub.current_period_start, sub.current_period_end, now
        )
        if amount > 0:
            end = sub.current_period_end
            unit = "" if sub.quantity == 1 else f" x {sub.quantity}"
            outcome = await self._billing.bill(
                org,
                customer_id=sub.customer_id,
                subscription_id=sub.id,
                currency=sub.price.currency,
                lines=[
                    BillLine(
                        description=f"Subscription {sub.plan_id}{unit}, resumed, "
                        f"{now:%Y-%m-%d} to {end:%Y-%m-%d}",
                        quantity=sub.quantity,
                        amount=amount,
                        kind="subscription",
                        period_start=now,
                        period_end=end,
                    )
                ],
                key=f"{sub.id}:resume:{sub.period_index}",
                period_index=sub.period_index,
            )
            values.update(latest_invoice_id=outcome.invoice_id, **self._unpaid(outcome, now))
        async with self._db.transaction():
            updated = await self._subs.transition(
                org, sub.id, [Status.PAUSED.value], values, same_period=(sub.period_index,)
            )
            if updated is None:
                raise DomainError(
                    ErrorCode.OPERATION_IN_PROGRESS,
                    "The subscription changed while it was being resumed; read it and try "
                    "again (nothing is charged twice).",
                    field=("input", "id"),
                )
            await self._changed(updated)
        return Subscription.from_row(updated)

    async def advance_clock(self, org: str, to: datetime) -> tuple[datetime, int]:
        """Move the organization's test clock to ``to``, stopping at every instant something
        falls due on the way and doing it then, so renewals and dunning retries happen at the
        times they would have happened. Returns the new time and the number of steps taken."""
        target = await self._clock.check_advance(org, to)
        steps = 0
        while True:
            due = await self._subs.next_due(org, until=target)
            current = await self._clock.now(org)
            if due is None:
                break
            if due > current:
                await self._clock.advance(org, due)
            handled = await self.process_due(org=org)
            if handled == 0:
                break  # leased by a worker elsewhere; it will finish the step
            steps += handled
        now = await self._clock.advance(org, target)
        return now, steps

    # -- the billing engine (driven by the worker) ----------------------------------------

    async def process_due(self, *, org: str | None = None, limit: int = 100) -> int:
        """Handle up to ``limit`` subscriptions with something due; return how many. Each one is
        claimed and leased in a short transaction, billed with a key per period (so a retry
        after a crash charges nothing twice), then updated only if its period did not move."""
        handled = 0
        while handled < limit:
            async with self._db.transaction():
                row = await self._subs.claim_due(lease=self._lease, org=org)
            if row is None:
                break
            await self._step(row)
            handled += 1
        return handled

    async def _step(self, row: Row) -> None:
        org = row["organization_id"]
        now = await self._clock.now(org)
        sub = Subscription.from_row(row)
        status = sub.status
        if status is Status.INCOMPLETE:
            await self._expire_or_activate(row, sub, now)
        elif status in (Status.PAST_DUE, Status.UNPAID) and sub.next_retry_at is not None:
            await self._retry(row, sub, now)
        elif status is Status.PAUSED:
            if sub.resumes_at is not None and sub.resumes_at <= now:
                await self._set(row, self._resumed(row))
            else:
                await self._advance_without_invoice(row, sub)
        elif status in (Status.TRIALING, Status.ACTIVE) and sub.cancel_at_period_end:
            await self._end_at_period_end(row, sub)
        elif status in (Status.TRIALING, Status.ACTIVE):
            await self._renew(row, sub, now)
        elif status is Status.CANCELED:
            await self._finish_canceled(row, sub)
        else:
            await self._set(row, {"next_action_at": None})

    def _resumed(self, row: Row) -> dict[str, Any]:
        return {
            "status": Status.ACTIVE.value,
            "paused_at": None,
            "resumes_at": None,
            "next_action_at": row["current_period_end"],
        }

    async def _renew(self, row: Row, sub: Subscription, now: datetime) -> None:
        """Start the next paid period and charge it (a trial's end starts period 0); waiting
        proration lines ride on this invoice."""
        index = 0 if sub.period_index is None else sub.period_index + 1
        start, end = period_bounds(sub.billing_anchor, sub.interval, sub.interval_count, index)
        key = f"{sub.id}:period:{index}"
        pending = await self._subs.take_pending_lines(sub.organization_id, sub.id, key)
        lines = [*_ordered([_pending_line(p) for p in pending]), self._period_line(sub, index)]
        outcome = await self._billing.bill(
            sub.organization_id,
            customer_id=sub.customer_id,
            subscription_id=sub.id,
            currency=sub.price.currency,
            lines=lines,
            key=key,
            period_index=index,
        )
        values: dict[str, Any] = {
            "period_index": index,
            "current_period_start": start,
            "current_period_end": end,
            "latest_invoice_id": outcome.invoice_id,
        }
        if outcome.paid:
            values.update(
                status=Status.ACTIVE.value,
                dunning_attempts=0,
                next_retry_at=None,
                next_action_at=end,
            )
        else:
            retry_at = now + timedelta(days=self._dunning.retry_days[0])
            values.update(
                status=Status.PAST_DUE.value,
                dunning_attempts=0,
                next_retry_at=retry_at,
                next_action_at=retry_at,
            )
        await self._set(row, values)

    async def _retry(self, row: Row, sub: Subscription, now: datetime) -> None:
        attempt = sub.dunning_attempts + 1
        invoice_id = sub.latest_invoice_id
        if invoice_id is None:
            await self._set(row, {"next_action_at": None, "next_retry_at": None})
            return
        outcome = await self._billing.retry(
            sub.organization_id, invoice_id=invoice_id, key=f"{invoice_id}:retry:{attempt}"
        )
        values: dict[str, Any]
        if outcome.paid:
            values = {
                "status": Status.ACTIVE.value,
                "dunning_attempts": 0,
                "next_retry_at": None,
                "next_action_at": sub.current_period_end,
            }
        elif attempt < len(self._dunning.retry_days):
            retry_at = now + timedelta(days=self._dunning.retry_days[attempt])
            values = {
                "dunning_attempts": attempt,
                "next_retry_at": retry_at,
                "next_action_at": retry_at,
            }
        else:
            final = self._dunning.final
            values = {
                "status": final.value,
                "dunning_attempts": attempt,
                "next_retry_at": None,
                "next_action_at": None,
            }
            if final is Status.CANCELED:
                values["ended_at"] = now
                billed = await self._settle_at_end(sub, now)
                if billed is not None:
                    values["latest_invoice_id"] = billed.invoice_id
                await self._close_open_invoices(sub)
        await self._set(row, values)

    async def _expire_or_activate(self, row: Row, sub: Subscription, now: datetime) -> None:
        """An incomplete subscription's window ended (or its first charge was interrupted):
        ask for the first period's outcome again (same key: nothing is charged twice)."""
        outcome = await self._billing.bill(
            sub.organization_id,
            customer_id=sub.customer_id,
            subscription_id=sub.id,
            currency=sub.price.currency,
            lines=[self._period_line(sub, 0)],
            key=f"{sub.id}:period:0",
            period_index=0,
        )
        paid = outcome.paid
        if not paid:
            # It never started: nothing is owed (paid meanwhile, it starts after all).
            closed = await self._close_invoice(
                sub.organization_id,
                outcome.invoice_id,
                EndedSubscriptionInvoices.VOID,
                "The subscription expired before its first payment.",
            )
            paid = closed is InvoiceStatus.PAID
        if paid:
            values: dict[str, Any] = {
                "status": Status.ACTIVE.value,
                "latest_invoice_id": outcome.invoice_id,
                "next_action_at": sub.current_period_end,
            }
        else:
            values = {
                "status": Status.INCOMPLETE_EXPIRED.value,
                "latest_invoice_id": outcome.invoice_id,
                "next_action_at": None,
                "ended_at": now,
            }
        await self._set(row, values)

    # -- the end of a subscription --------------------------------------------------------

    async def _end_at_period_end(self, row: Row, sub: Subscription) -> None:
        """A cancellation at period end is due: settle the pending lines, then end it."""
        values: dict[str, Any] = {
            "status": Status.CANCELED.value,
            "ended_at": sub.current_period_end,
            "next_action_at": None,
        }
        billed = await self._settle_at_end(sub, sub.current_period_end)
        if billed is not None:
            values["latest_invoice_id"] = billed.invoice_id
        await self._set(row, values)

    async def _settle_at_end(self, sub: Subscription, end: datetime) -> ChargeOutcome | None:
        """Bill the pending lines of a subscription ending at ``end`` (for the worker, which
        holds its lease): the row lock keeps plan changes out while they are taken."""
        async with self._db.transaction():
            await self._locked(sub.organization_id, sub.id)
            lines = await self._final_lines(sub, end, credit=False)
        if not lines:
            return None
        return await self._bill_final_lines(sub, lines)

    async def _finish_canceled(self, row: Row, sub: Subscription) -> None:
        """A canceled subscription with something due: the final invoice of an immediate
        cancellation whose request did not bill it (its lines are reserved already)."""
        lines = await self._subs.take_pending_lines(sub.organization_id, sub.id, _final_key(sub))
        values: dict[str, Any] = {"next_action_at": None}
        if lines:
            outcome = await self._bill_final_lines(sub, _ordered([_pending_line(p) for p in lines]))
            values["latest_invoice_id"] = outcome.invoice_id
        await self._set(row, values)

    async def _final_lines(
        self, sub: Subscription, end: datetime, *, credit: bool
    ) -> list[BillLine]:
        """Reserve the lines of the final invoice of a subscription ending at ``end`` (call it
        with the row locked), in invoice order: the pending lines, credits in full and charges
        cut to ``end``, and with ``credit`` the credit for the time paid after ``end``
        (``unused_value``; not discountable). Asked again for the same subscription, it returns
        the lines it reserved the first time."""
        org, key = sub.organization_id, _final_key(sub)
        rows = await self._subs.lines_taken_by(org, sub.id, key)
        if not rows:
            await self._shorten_pending_charges(org, sub.id, end)
            line = None
            if credit and sub.current_period_start <= end < sub.current_period_end:
                line = cancellation_credit(
                    sub.price.amount,
                    sub.quantity,
                    sub.current_period_start,
                    sub.current_period_end,
                    end,
                    label=f"{sub.plan_id} x {sub.quantity}",
                    unused=await self._unused(org, sub.id, end),
                )
            if line is not None:
                await self._subs.add_pending_lines(
                    [
                        {
                            "organization_id": org,
                            "id": new_id("il"),
                            "subscription_id": sub.id,
                            "description": line.description,
                            "quantity": line.quantity,
                            "amount": line.amount,
                            "period_start": line.period_start,
                            "period_end": line.period_end,
                            "taken_by": key,
                        }
                    ]
                )
            rows = await self._subs.take_pending_lines(org, sub.id, key)
        return _ordered([_pending_line(p) for p in rows])

    async def _bill_final(self, row: Row, lines: list[BillLine]) -> Row:
        """Bill the final invoice of a subscription this request just canceled, then release
        the lease it took; the worker bills it instead if this fails on the way."""
        sub = Subscription.from_row(row)
        try:
            outcome = await self._bill_final_lines(sub, lines)
        except (ProviderUnreachable, DomainError) as exc:
            log.warning("subscription %s: final invoice not billed yet (%s)", sub.id, exc)
            return row
        async with self._db.transaction():
            updated = await self._subs.transition(
                sub.organization_id,
                sub.id,
                [Status.CANCELED.value],
                {
                    "latest_invoice_id": outcome.invoice_id,
                    "next_action_at": None,
                    "leased_until": None,
                },
            )
            if updated is None:
                return row
            await self._changed(updated)
        return updated

    async def _bill_final_lines(self, sub: Subscription, lines: list[BillLine]) -> ChargeOutcome:
        return await self._billing.bill(
            sub.organization_id,
            customer_id=sub.customer_id,
            subscription_id=sub.id,
            currency=sub.price.currency,
            lines=lines,
            key=_final_key(sub),
            period_index=sub.period_index,
        )

    async def _close_open_invoices(self, sub: Subscription) -> None:
        """Dunning canceled the subscription: its invoices still open are voided or written
        off, as the organization chose (``ended_subscription_invoices``)."""
        org = sub.organization_id
        how = await self._organizations.ended_subscription_invoices(org)
        (invoices,) = await self._invoices.of_subscriptions(org, [sub.id])
        for invoice in invoices:
            if invoice.status is InvoiceStatus.OPEN:
                await self._close_invoice(
                    org, invoice.id, how, "The subscription was canceled after failed payments."
                )

    async def _close_invoice(
        self, org: str, invoice_id: str, how: EndedSubscriptionInvoices, reason: str
    ) -> InvoiceStatus:
        """Void or write off an open invoice; its status after. One that left ``open``
        meanwhile (paid, voided, written off) stays as it is; a charge in flight raises
        ``OPERATION_IN_PROGRESS`` (try the step again later)."""
        try:
            if how is EndedSubscriptionInvoices.VOID:
                closed = await self._invoices.void(org, invoice_id, reason)
            else:
                closed = await self._invoices.mark_uncollectible(org, invoice_id, reason)
        except DomainError as exc:
            if exc.code is not ErrorCode.INVALID_STATE:
                raise
            invoice = await self._invoices.get(org, invoice_id)
            if invoice.status is InvoiceStatus.OPEN:
                raise
            return invoice.status
        return closed.status

    # -- what was paid for ----------------------------------------------------------------

    async def _unused(self, org: str, subscription_id: str, at: datetime) -> int:
        """What the subscription's service after ``at`` is worth by what was paid or promised
        for it (``app.service_value``), and never more than what the customer paid for the
        subscription and was not given back yet (``Ledger.subscription_room``): a refund still
        awaiting approval or in flight has not given anything back of the invoice on the books,
        but takes its share already."""
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

    # -- helpers --------------------------------------------------------------------------

    async def _changed(self, row: Row) -> None:
        """Every change of a subscription ends here, inside its transaction: the statistics
        record it, then the live event is queued (sent on commit)."""
        await self._stats.subscription_changed(row["organization_id"], row["id"])
        await publish(self._db, _event(row))

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
