"""Previews: what a change would do, and the next renewal invoice, without doing anything.

A preview runs **the very code of the mutation or of the worker** inside a transaction that is
always rolled back, with a billing seam that issues invoices and never charges (``IssueOnly``):
the plan change, the creation, the cancellation or the renewal happens, its invoice is issued
(lines, proration, coupon, tax, credit balance applied, usage so far), the result is read, and
everything is undone. Nothing is written and Stripe is never called, and the preview and the
real operation cannot disagree: they are one code path. A preview assumes the charge succeeds.

What stays visible of a preview while it runs: the rows it locks (the subscription's, the
invoice number counter's) wait for it, as they would for the real operation; nothing is
notified (NOTIFY is sent at commit), no number is used up (the counter rolls back too).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.ids import has_prefix
from app.core.money import Money
from app.invoicing import Invoice, InvoiceLine, LineKind
from app.organizations import ProrationBehavior
from app.subscriptions.base import SubscriptionDraft
from app.subscriptions.billing import BillLine, ChargeOutcome, SubscriptionBilling
from app.subscriptions.changes import PlanChanges
from app.subscriptions.model import Status, Subscription
from app.subscriptions.pause_cancel import PauseCancel

__all__ = ["ChangePreview", "InvoicePreview", "IssueOnly", "Previews"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class InvoicePreview:
    """An invoice as it would be issued, with its lines (read before the rollback)."""

    invoice: Invoice
    lines: list[InvoiceLine]


@dataclass(frozen=True, slots=True)
class ChangePreview:
    """What a subscription change would do: the subscription after it, the invoice it would
    issue now (if any), the credit for unused time it would grant (on that invoice, or pending
    for the next one), and the next renewal invoice after it (if it renews)."""

    subscription: Subscription
    invoice: InvoicePreview | None
    credit: Money
    next_invoice: InvoicePreview | None


class _Discard(Exception):
    """Carries a preview's result out of the transaction it rolls back."""

    def __init__(self, value: Any) -> None:
        super().__init__("preview")
        self.value = value


class IssueOnly:
    """``SubscriptionBilling`` that issues invoices, records them in ``invoices``, and never
    charges (a charge is taken as paid)."""

    def __init__(self, real: SubscriptionBilling) -> None:
        self._real = real
        self.invoices: list[str] = []

    async def bill(
        self,
        org: str,
        *,
        customer_id: str,
        subscription_id: str,
        currency: str,
        lines: list[BillLine],
        key: str,
        period_index: int | None,
    ) -> ChargeOutcome:
        invoice_id = await self.issue(
            org,
            customer_id=customer_id,
            subscription_id=subscription_id,
            currency=currency,
            lines=lines,
            key=key,
            period_index=period_index,
        )
        return ChargeOutcome(invoice_id, paid=True)

    async def issue(
        self,
        org: str,
        *,
        customer_id: str,
        subscription_id: str,
        currency: str,
        lines: list[BillLine],
        key: str,
        period_index: int | None,
    ) -> str:
        invoice_id = await self._real.issue(
            org,
            customer_id=customer_id,
            subscription_id=subscription_id,
            currency=currency,
            lines=lines,
            key=key,
            period_index=period_index,
        )
        self.invoices.append(invoice_id)
        return invoice_id

    async def charge(self, org: str, *, invoice_id: str, key: str) -> ChargeOutcome:
        return ChargeOutcome(invoice_id, paid=True)

    async def issued(self, org: str, *, key: str) -> str | None:
        return await self._real.issued(org, key=key)

    async def retry(self, org: str, *, invoice_id: str, key: str) -> ChargeOutcome:
        return ChargeOutcome(invoice_id, paid=True)


class Previews(PlanChanges, PauseCancel):
    """The previews; ``SubscriptionService`` (service.py) is built on them and provides
    ``create``."""

    if TYPE_CHECKING:

        async def create(
            self, org: str, actor: Principal, draft: SubscriptionDraft, *, key: str
        ) -> Subscription: ...

    async def dry_run(self, work: Callable[[Previews, IssueOnly], Awaitable[T]]) -> T:
        """Run ``work`` on a copy of this service whose billing never charges, in a
        transaction that is rolled back whatever happens; its result (or its error).

        The dry run is a task of its own, shielded: a caller cancelled meanwhile (GraphQL
        cancels a query's other fields when one fails) must not interrupt it between BEGIN and
        ROLLBACK, which would leave its connection in a transaction, out of the pool."""
        billing = IssueOnly(self._billing)
        clone = copy.copy(self)
        clone._billing = billing

        async def rolled_back() -> T:
            try:
                async with self._db.transaction():
                    raise _Discard(await work(clone, billing))
            except _Discard as done:
                result: T = done.value
                return result

        running = asyncio.ensure_future(rolled_back())
        # Its outcome is read even when nobody awaits it any more (no "never retrieved").
        running.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(running)

    async def snapshot(self, org: str, invoice_id: str | None) -> InvoicePreview | None:
        if invoice_id is None:
            return None
        invoice = await self._invoices.get(org, invoice_id)
        (lines,) = await self._invoices.lines_of(org, [invoice_id])
        return InvoicePreview(invoice, lines)

    async def next_renewal(self, org: str, subscription_id: str) -> InvoicePreview | None:
        """Inside a dry run: the invoice the worker would issue at the subscription's next
        period end (its renewal, or its final invoice when it cancels at period end)."""
        (row,) = await self._subs.by_ids(org, [subscription_id])
        if row is None:
            return None
        sub = Subscription.from_row(row)
        if (
            sub.status is Status.PAUSED
            and sub.resumes_at is not None
            and sub.resumes_at <= sub.current_period_end
        ):
            # The worker resumes it first (at resumesAt), then renews it at the period's end.
            await self._set(row, self._resumed(row))
            (row,) = await self._subs.by_ids(org, [subscription_id])
            assert row is not None
            sub = Subscription.from_row(row)
        if sub.status not in (Status.ACTIVE, Status.TRIALING) or sub.ended_at is not None:
            return None
        billing = self._billing
        assert isinstance(billing, IssueOnly)
        before = len(billing.invoices)
        if sub.cancel_at_period_end:
            await self._end_at_period_end(row, sub)
        else:
            await self._renew(row, sub, sub.current_period_end)
        if len(billing.invoices) == before:
            return None
        return await self.snapshot(org, billing.invoices[-1])

    async def _visible(self, org: str, actor: Principal, subscription_id: str) -> Subscription:
        if has_prefix(subscription_id, "sub"):
            (row,) = await self._subs.by_ids(org, [subscription_id])
            if row is not None and actor.customer_id in (None, row["customer_id"]):
                return Subscription.from_row(row)
        raise NotFound("Subscription", ("subscriptionId",))

    # -- the previews -------------------------------------------------------------------------

    async def upcoming_invoice(
        self, org: str, actor: Principal, subscription_id: str
    ) -> InvoicePreview | None:
        """The next invoice the worker will issue for the subscription (at its period's end),
        exactly as it would issue it now: null when none is coming (canceled, paused, in
        dunning)."""
        await self._visible(org, actor, subscription_id)

        async def work(clone: Previews, billing: IssueOnly) -> InvoicePreview | None:
            return await clone.next_renewal(org, subscription_id)

        return await self.dry_run(work)

    async def preview_change(
        self,
        org: str,
        actor: Principal,
        subscription_id: str,
        *,
        plan_id: str,
        quantity: int | None,
        behavior: ProrationBehavior | None,
    ) -> ChangePreview:
        """``change_plan`` with these arguments, undone: what it would do."""

        async def work(clone: Previews, billing: IssueOnly) -> ChangePreview:
            before = await clone._pending_ids(org, subscription_id)
            after = await clone.change_plan(
                org,
                actor,
                subscription_id,
                plan_id=plan_id,
                quantity=quantity,
                behavior=behavior,
                key=_preview_key(),
            )
            return await clone._described(org, after, billing, pending_before=before)

        return await self.dry_run(work)

    async def preview_create(
        self, org: str, actor: Principal, draft: SubscriptionDraft
    ) -> ChangePreview:
        """``create`` with this draft, undone."""

        async def work(clone: Previews, billing: IssueOnly) -> ChangePreview:
            made = await clone.create(org, actor, draft, key=_preview_key())
            return await clone._described(org, made, billing, pending_before=set())

        return await self.dry_run(work)

    async def preview_cancel(
        self, org: str, actor: Principal, subscription_id: str, *, prorate: bool
    ) -> ChangePreview:
        """An immediate ``cancel``, undone: its final invoice and the credit it grants."""
        await self._visible(org, actor, subscription_id)

        async def work(clone: Previews, billing: IssueOnly) -> ChangePreview:
            ended = await clone.cancel(
                org,
                subscription_id,
                at_period_end=False,
                reason=None,
                feedback=None,
                prorate=prorate,
            )
            return await clone._described(org, ended, billing, pending_before=set())

        return await self.dry_run(work)

    async def _pending_ids(self, org: str, subscription_id: str) -> set[str]:
        return {row["id"] for row in await self._subs.open_pending_lines(org, subscription_id)}

    async def _described(
        self,
        org: str,
        sub: Subscription,
        billing: IssueOnly,
        *,
        pending_before: set[str],
    ) -> ChangePreview:
        now = await self.snapshot(org, billing.invoices[-1] if billing.invoices else None)
        # The credit granted: negative proration lines issued now, or left pending.
        credit = 0
        if now is not None:
            credit -= sum(
                line.amount.amount
                for line in now.lines
                if line.kind is LineKind.PRORATION and line.amount.amount < 0
            )
        for row in await self._subs.open_pending_lines(org, sub.id):
            if row["id"] not in pending_before and row["amount"] < 0:
                credit -= row["amount"]
        # As it is after the operation (before the renewal below moves it to the next period).
        (current,) = await self._subs.by_ids(org, [sub.id])
        assert current is not None  # it was changed in this transaction
        next_invoice = await self.next_renewal(org, sub.id)
        return ChangePreview(
            subscription=Subscription.from_row(current),
            invoice=now,
            credit=Money(credit, sub.price.currency),
            next_invoice=next_invoice,
        )


def _preview_key() -> str:
    """An idempotency key of the preview's own (rolled back with it)."""
    return f"preview-{uuid.uuid4()}"
