"""The `Live` subscriptions: scope each stream to the token's organization (and customer), and
load what an event names afresh, with new loaders for every message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from app.context import Context
from app.core.errors import DomainError, Forbidden, PublicError
from app.core.ids import has_prefix
from app.core.money import normalize_currency
from app.core.pubsub import Event
from app.payments import Payment, Refund
from app.statistics import RevenueSnapshot

__all__ = ["PaymentChange", "payment_events", "revenue"]


class CustomerNotFound(PublicError):
    code = "NOT_FOUND"


@dataclass(frozen=True)
class PaymentChange:
    """A payment or refund event with its objects as they are now."""

    kind: str  # "payment" or "refund"
    status: str
    occurred_at: datetime
    customer_id: str
    payment: Payment
    refund: Refund | None


async def revenue(ctx: Context, currency: str | None) -> AsyncIterator[RevenueSnapshot]:
    """The organization's revenue snapshot now, then after every change (admin only: the
    schema's permission class checks the role)."""
    org, services = ctx.org, ctx.services
    code = _currency(currency)

    async def compute() -> RevenueSnapshot:
        now = await services.clock.now(org)
        return await services.statistics.snapshot(org, currency=code, now=now)

    async for snapshot in services.live.revenue(org, code, compute):
        ctx.require_unexpired()
        ctx.fresh_loaders()
        yield snapshot


async def payment_events(ctx: Context, customer_id: str | None) -> AsyncIterator[PaymentChange]:
    """Payment and refund changes of the organization; a customer token gets its own only."""
    principal = ctx.require_principal()
    own = principal.customer_id
    if own is not None and customer_id not in (None, own):
        raise Forbidden("A customer token may watch its own payments only.")
    watched = own or customer_id
    if own is None and watched is not None:
        if not has_prefix(watched, "cus"):
            raise PublicError("`customerId` must be a customer id (`cus_…`).")
        if await ctx.loaders.customer_by_id.load(watched) is None:
            raise CustomerNotFound("Customer not found.")
    services, org = ctx.services, principal.org

    async def load(event: Event) -> tuple[Payment | None, Refund | None]:
        """The payment (and refund) an event names, as stored now; shared by subscribers."""
        refund = None
        if event.kind == "refund":
            (refund,) = await services.refunds.read.by_ids(org, [event.id])
            if refund is None:
                return None, None
            (payment,) = await services.payments.read.by_ids(org, [refund.payment_id])
        else:
            (payment,) = await services.payments.read.by_ids(org, [event.id])
        return payment, refund

    async for event, (payment, refund) in services.live.payment_events(org, watched, load):
        # Checked again on the stored object, not only on the event's own customer_id.
        if payment is None or not ctx.can_see_customer(payment.customer_id):
            continue
        if watched is not None and payment.customer_id != watched:
            continue
        ctx.require_unexpired()
        ctx.fresh_loaders()
        ctx.loaders.payment_by_id.prime(payment.id, payment)
        if refund is not None:
            ctx.loaders.refund_by_id.prime(refund.id, refund)
        yield PaymentChange(
            kind=event.kind,
            status=str(event.data.get("status", "")).upper(),
            occurred_at=_occurred_at(event),
            customer_id=payment.customer_id,
            payment=payment,
            refund=refund,
        )


def _occurred_at(event: Event) -> datetime:
    """When the change was written (the publisher's ``at``), else when it reached us."""
    raw = event.data.get("at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def _currency(currency: str | None) -> str | None:
    if currency is None:
        return None
    try:
        return normalize_currency(currency)
    except DomainError as exc:
        raise PublicError(exc.message) from None
