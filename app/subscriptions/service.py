"""Subscription operations and the billing engine that the worker drives.

Every state change is a conditional UPDATE listing the states it may start from
(``SubscriptionRepository.transition``), so concurrent requests and workers cannot make an
illegal transition. Work the worker must do is scheduled in ``next_action_at`` (trial end,
period end, dunning retry, resume, expiry of an incomplete subscription) and claimed with
``FOR UPDATE SKIP LOCKED``: any number of workers bill each period exactly once, because the
period advances in the same transaction that bills it.

Every operation takes the caller (``Principal``): a customer token is held to the organization's
customer policy (``app.organizations.policy``: trial, start, quantity, proration, pause), admins and
services are not.

Money rules (``docs/proration.md``):

* A credit for unused time is what the rest of the period is worth by what was paid for it
  (``app.subscriptions.service_value``), never the list price; it is not discountable (already
  net of its own invoice's discount).
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

The operations are split by group: creation here, plan changes in ``changes.py``, cancel,
pause and resume in ``pause_cancel.py``, the worker's billing engine in ``renewals.py``, on the
shared ``SubscriptionBase`` (``base.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.catalog import Plan
from app.core.auth import Principal
from app.core.errors import DomainError, NotFound, ValidationFailed
from app.core.idempotency import Claim
from app.core.ids import new_id
from app.organizations import (
    MAX_QUANTITY,
    create_refusals,
    is_customer,
    trial_days_at_create,
)
from app.subscriptions.base import (
    _MAX_BACKDATE,
    DunningPolicy,
    SubscriptionDraft,
    _bad,
    _over,
)
from app.subscriptions.billing import UNSETTLED, ChargeOutcome
from app.subscriptions.model import INCOMPLETE_WINDOW, Status, Subscription
from app.subscriptions.periods import period_bounds
from app.subscriptions.previews import Previews
from db.connection import Row

__all__ = ["DunningPolicy", "SubscriptionDraft", "SubscriptionService"]


class SubscriptionService(Previews):
    async def of_customers(self, org: str, customer_ids: list[str]) -> list[list[Subscription]]:
        rows = await self._subs.by_customer_ids(org, customer_ids)
        return [[Subscription.from_row(row) for row in group] for group in rows]

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
        if claim.retried:
            interrupted = (await self._subs.by_ids(org, [claim.resource_id]))[0]
            if interrupted is not None:
                # An earlier request with this key committed the subscription and died before
                # it was billed: bill it now (the charge is idempotent per period), instead of
                # inserting again and answering DUPLICATE, which would strand it incomplete.
                return await self._resume_create(org, interrupted, now, claim)
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
                await self._changed(row, created=True)
                return Subscription.from_row(row)
            await self._emit(row, "subscription.created")
            # Counted as incomplete from now (no live event: nothing to show until it is paid).
            await self._stats.subscription_changed(org, row["id"])
        # Without a trial the first period is charged at once; the row exists (incomplete)
        # first, so a crash leaves a visible subscription that the retry completes.
        return await self._bill_first_period(org, row, now, claim)

    async def _resume_create(self, org: str, row: Row, now: datetime, claim: Claim) -> Subscription:
        if row["status"] == Status.INCOMPLETE.value and row["next_action_at"] is None:
            return await self._bill_first_period(org, row, now, claim)
        # Anything else was completed with its key in the same transaction; answer it as is.
        await self._keys.complete(claim)
        return Subscription.from_row(row)

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
        try:
            outcome: ChargeOutcome | None = await self._billing.bill(
                org,
                customer_id=subscription.customer_id,
                subscription_id=subscription.id,
                currency=subscription.price.currency,
                lines=[self._period_line(subscription, 0)],
                key=f"{subscription.id}:period:0",
                period_index=0,
            )
        except DomainError as exc:
            if exc.code not in UNSETTLED:
                raise
            # A dead request's charge of this period still holds its lease: answer with the
            # subscription incomplete, as after a declined first charge (raising would free
            # this request's key and its retry would find the subscription taken: DUPLICATE);
            # when the window ends the worker asks for the outcome with the same key.
            outcome = None
        async with self._db.transaction():
            if outcome is None:
                row = await self._require(
                    self._subs.transition(
                        org,
                        subscription.id,
                        [Status.INCOMPLETE.value],
                        {"next_action_at": now + INCOMPLETE_WINDOW},
                    )
                )
            elif outcome.paid:
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
