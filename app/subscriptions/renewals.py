"""The billing engine the worker drives: renewals, dunning retries, trial ends, resumes and
expiries claimed from ``next_action_at``, and the end of a subscription (final invoice,
open invoices closed). See app/subscriptions/service.py for the rules.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.errors import DomainError, ErrorCode, ProviderUnreachable
from app.core.ids import new_id
from app.invoicing import InvoiceStatus
from app.organizations import EndedSubscriptionInvoices
from app.subscriptions.base import (
    SubscriptionBase,
    _final_key,
    _ordered,
    _pending_line,
    log,
)
from app.subscriptions.billing import UNSETTLED, BillLine, ChargeOutcome
from app.subscriptions.model import Status, Subscription
from app.subscriptions.periods import period_bounds
from app.subscriptions.proration import cancellation_credit
from db.connection import Row

__all__ = ["Renewals"]

# How long before a trial ends `subscription.trial_will_end` is written (as Stripe does).
TRIAL_NOTICE = timedelta(days=3)


class Renewals(SubscriptionBase):
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
        await self.announce_trials_ending(org=org)
        return now, steps

    async def announce_trials_ending(
        self, *, org: str | None = None, within: timedelta = TRIAL_NOTICE, limit: int = 500
    ) -> int:
        """Write ``subscription.trial_will_end`` once for each trial ending within ``within``
        of its organization's clock (the housekeeping runs it; so does a test clock advance).
        Returns how many were written."""
        written = 0
        for row in await self._subs.trials_ending(within=within, org=org, limit=limit):
            key = f"trial_will_end:{row['id']}:{row['trial_end'].astimezone(UTC):%Y%m%d%H%M%S}"
            async with self._db.transaction():
                await self._emit(row, "subscription.trial_will_end", dedupe_key=key)
            written += 1
        return written

    async def process_due(self, *, org: str | None = None, limit: int = 100) -> int:
        """Handle up to ``limit`` subscriptions with something due; return how many. Each one is
        claimed and leased in a short transaction, billed with a key per period (so a retry
        after a crash charges nothing twice), then updated only if its period did not move.
        ``concurrency`` subscriptions (the service's setting, ``WORKER_CONCURRENCY``) are
        handled at once: each is claimed apart (``FOR UPDATE SKIP LOCKED`` and a lease), so
        lanes of one worker never meet, as workers of several processes never do. A failure
        stops its lane and is raised once the other lanes have finished."""
        handled = 0

        async def lane() -> None:
            nonlocal handled
            while handled < limit:
                async with self._db.transaction():
                    row = await self._subs.claim_due(lease=self._lease, org=org)
                if row is None:
                    return
                handled += 1
                try:
                    await self._step(row)
                except DomainError as exc:
                    if exc.code not in UNSETTLED:
                        raise
                    # Its charge is in flight elsewhere (another request or a worker whose
                    # lease ran out): its own lease keeps it aside until then; go on.
                    log.info("subscription %s: left for later (%s)", row["id"], exc.code.value)

        lanes = max(1, min(self._concurrency, limit))
        if lanes == 1:
            await lane()
            return handled
        outcomes = await asyncio.gather(*(lane() for _ in range(lanes)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
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
        usage: list[BillLine] = []
        if sub.period_index is not None:  # a paid period ends: its usage is billed in arrears
            usage = await self._usage_lines(
                sub, key, sub.current_period_start, sub.current_period_end
            )
        lines += usage
        outcome = await self._billing.bill(
            sub.organization_id,
            customer_id=sub.customer_id,
            subscription_id=sub.id,
            currency=sub.price.currency,
            lines=lines,
            key=key,
            period_index=index,
        )
        if usage:
            await self._usage.invoiced(sub.organization_id, sub.id, key, outcome.invoice_id)
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
        pending = await self._subs.take_pending_lines(sub.organization_id, sub.id, _final_key(sub))
        lines = _ordered([_pending_line(p) for p in pending])
        if sub.period_index is not None:
            # Rated by the request that canceled it, if it got that far (the same lines).
            end = sub.ended_at or sub.current_period_end
            lines += self._billable(
                await self._usage_lines(
                    sub, _final_key(sub), sub.current_period_start, min(end, sub.current_period_end)
                )
            )
        values: dict[str, Any] = {"next_action_at": None}
        if lines:
            outcome = await self._bill_final_lines(sub, lines)
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
        lines = _ordered([_pending_line(p) for p in rows])
        if sub.period_index is not None and sub.current_period_start < end:
            # The last (maybe partial) paid period's usage, in arrears.
            usage_end = min(end, sub.current_period_end)
            lines += self._billable(
                await self._usage_lines(sub, key, sub.current_period_start, usage_end)
            )
        return lines

    @staticmethod
    def _billable(usage: list[BillLine]) -> list[BillLine]:
        """Usage lines for a final invoice: none when they all bill nothing (a subscription
        ending without usage gets no invoice for it)."""
        return usage if any(line.amount for line in usage) else []

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
        outcome = await self._billing.bill(
            sub.organization_id,
            customer_id=sub.customer_id,
            subscription_id=sub.id,
            currency=sub.price.currency,
            lines=lines,
            key=_final_key(sub),
            period_index=sub.period_index,
        )
        if any(line.kind == "usage" for line in lines):
            await self._usage.invoiced(
                sub.organization_id, sub.id, _final_key(sub), outcome.invoice_id
            )
        return outcome

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
