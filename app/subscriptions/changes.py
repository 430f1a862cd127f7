"""Plan and quantity changes (prorated, invoiced at once or not at all) and trial changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.catalog import Plan
from app.core.auth import Principal
from app.core.errors import DomainError, ErrorCode, ProviderUnreachable, ValidationFailed
from app.core.idempotency import Claim
from app.core.ids import new_id
from app.organizations import (
    MAX_QUANTITY,
    ProrationBehavior,
    change_refusals,
    is_customer,
    resolved_behavior,
    trial_end_after_change,
)
from app.subscriptions.base import (
    _already_subscribed,
    _bad,
    log,
)
from app.subscriptions.billing import BillLine, ChargeOutcome
from app.subscriptions.model import Status, Subscription, invalid_state
from app.subscriptions.proration import plan_change_lines
from app.subscriptions.renewals import Renewals
from db.connection import Row
from db.repositories.subscriptions.subscriptions import LivePlanConflict

__all__ = ["PlanChanges"]


class PlanChanges(Renewals):
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
        if claim.retried:
            issued = await self._billing.issued(org, key=claim.stripe_key("proration"))
            if issued is not None:
                # An earlier request with this key committed the change and its invoice, then
                # died before charging it: charge it now rather than refuse the change as done
                # (which would leave the invoice open and the subscription out of dunning).
                now = await self._clock.now(org)
                return await self._charge_change(org, subscription_id, issued, claim, now)
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
                (leaving,) = await self._plans.read.by_ids(org, [sub.plan_id])
                old_name = leaving.name if leaving is not None else sub.plan_id
                for line in plan_change_lines(
                    sub.price.amount,
                    sub.quantity,
                    plan.price.amount,
                    new_quantity,
                    sub.current_period_start,
                    sub.current_period_end,
                    now,
                    old_label=f"{old_name} x {sub.quantity}",
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
        return await self._charge_change(org, subscription_id, invoice_id, claim, now)

    async def _charge_change(
        self, org: str, subscription_id: str, invoice_id: str, claim: Claim, now: datetime
    ) -> Subscription:
        """Charge the invoice of a change invoiced at once (committed with the change)."""
        try:
            outcome = await self._billing.charge(
                org, invoice_id=invoice_id, key=claim.stripe_key("proration")
            )
        except (ProviderUnreachable, DomainError) as exc:
            # Not known to be paid (Stripe unreachable, a charge in flight): dunning retries it,
            # and reads Stripe's state before charging again, so nothing is charged twice.
            log.warning(
                "subscription %s: change invoice not charged (%s)", subscription_id, exc.code
            )
            outcome = ChargeOutcome(invoice_id, False, exc.code.value, exc.message)
        # A change is not free when its invoice is not paid, whoever made it: dunning, as a
        # failed renewal (the change stands; paid, it is active again).
        after: dict[str, Any] = {"latest_invoice_id": outcome.invoice_id}
        after.update(self._unpaid(outcome, now))
        allowed = [Status.ACTIVE.value, Status.TRIALING.value]
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
