"""Cancel (now or at period end), pause and resume."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.core.auth import Principal
from app.core.errors import DomainError, ErrorCode, ValidationFailed
from app.organizations import (
    EndedSubscriptionInvoices,
    is_customer,
    pause_refusals,
    resume_refusals,
)
from app.subscriptions.base import (
    _bad,
    _final_key,
    _period_began_while_paused,
)
from app.subscriptions.billing import BillLine
from app.subscriptions.model import LIVE, Status, Subscription, invalid_state
from app.subscriptions.proration import prorate
from app.subscriptions.renewals import Renewals
from db.connection import Row

__all__ = ["PauseCancel"]


class PauseCancel(Renewals):
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
                    # Issued (not charged) in this transaction, with the credit for unused time
                    # it holds: the subscription's room (``Ledger.subscription_room``) shows the
                    # credit from the moment the lock that computed it is released, so a refund
                    # racing this cancellation sees it (issued later, both could give back the
                    # same money). It is charged below; should this request die first, the
                    # worker bills it once the lease runs out (the same key bills it once).
                    await self._billing.issue(
                        org,
                        customer_id=sub.customer_id,
                        subscription_id=sub.id,
                        currency=sub.price.currency,
                        lines=final,
                        key=_final_key(sub),
                        period_index=sub.period_index,
                    )
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
