"""The seam between the subscription engine and invoicing/payments: bill one period's lines.

``SubscriptionBilling`` turns lines into an invoice for the customer, finalizes it and charges
the customer's default payment method through the one internal "bill this invoice now" service,
and reports the outcome. The engine calls it for first periods, renewals, plan changes invoiced
at once, final invoices and dunning retries. ``issue`` and ``charge`` are the two halves of
``bill``: a plan change issues its invoice in the transaction that changes the subscription (so
the next change reads what it credited), and charges it after the commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.core.errors import DomainError, ErrorCode
from app.invoicing import ChargeResult, InvoiceBilling, LineInput, LineKind

__all__ = ["BillLine", "ChargeOutcome", "InvoicedBilling", "SubscriptionBilling"]


@dataclass(frozen=True, slots=True)
class BillLine:
    description: str
    quantity: int
    amount: int  # minor units for the whole line (credits negative)
    kind: str  # subscription | proration | usage
    period_start: datetime
    period_end: datetime
    # False for credits for unused time: computed from what was paid, after its discount.
    discountable: bool = True


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    invoice_id: str
    paid: bool
    failure_code: str | None = None
    failure_message: str | None = None


class SubscriptionBilling(Protocol):
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
        """Invoice ``lines`` (at most once per ``key``) and charge the invoice."""
        ...

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
        """Invoice ``lines`` (finalized, at most once per ``key``) without charging it; the
        invoice id. Inside a transaction, the invoice commits with it."""
        ...

    async def charge(self, org: str, *, invoice_id: str, key: str) -> ChargeOutcome:
        """Charge the invoice ``issue`` made under ``key`` (``issue`` then ``charge`` with one
        key is ``bill``)."""
        ...

    async def issued(self, org: str, *, key: str) -> str | None:
        """The id of the invoice ``issue`` made under ``key``, if it did (a retry that took
        over an interrupted request finds its invoice)."""
        ...

    async def retry(self, org: str, *, invoice_id: str, key: str) -> ChargeOutcome:
        """Charge an open invoice again (dunning), at most once per ``key``."""
        ...


# Errors of a charge an earlier attempt still holds: its outcome is not known yet.
UNSETTLED = frozenset({ErrorCode.IDEMPOTENCY_KEY_IN_USE, ErrorCode.OPERATION_IN_PROGRESS})


def _key(key: str) -> str:
    """An idempotency key (at most 255 characters) for an engine key such as
    ``sub_…:period:3``; the organization is part of the key's scope already."""
    return f"subscription-{hashlib.sha256(key.encode()).hexdigest()[:48]}"


def _line(line: BillLine) -> LineInput:
    # A prorated amount is rarely quantity x a whole unit price: such lines are billed as one
    # unit with the quantity in the description, so the invoice total stays exact.
    quantity, unit = line.quantity, line.amount
    if quantity > 0 and line.amount % quantity == 0:
        unit = line.amount // quantity
    else:
        quantity = 1
    return LineInput(
        description=line.description,
        unit_amount=unit,
        quantity=quantity,
        kind=LineKind(line.kind),
        period_start=line.period_start,
        period_end=line.period_end,
        discountable=line.discountable,
    )


def _outcome(result: ChargeResult) -> ChargeOutcome:
    declined = result.declined
    return ChargeOutcome(
        invoice_id=result.invoice.id,
        paid=result.paid,
        failure_code=declined.code.value if declined else None,
        failure_message=declined.message if declined else None,
    )


class InvoicedBilling:
    """``SubscriptionBilling`` through invoices and the invoice charging service."""

    def __init__(self, invoice_billing: InvoiceBilling) -> None:
        self._billing = invoice_billing

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
        return await self.charge(org, invoice_id=invoice_id, key=key)

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
        starts = [line.period_start for line in lines]
        ends = [line.period_end for line in lines]
        invoice = await self._billing.issue(
            org,
            customer_id=customer_id,
            currency=currency,
            lines=[_line(line) for line in lines],
            key=_key(key),
            subscription_id=subscription_id,
            period_index=period_index,
            period_start=min(starts),
            period_end=max(ends),
        )
        return invoice.id

    async def charge(self, org: str, *, invoice_id: str, key: str) -> ChargeOutcome:
        return await self._charge(org, invoice_id, _key(f"{key}:charge"))

    async def issued(self, org: str, *, key: str) -> str | None:
        return await self._billing.issued(org, _key(key))

    async def retry(self, org: str, *, invoice_id: str, key: str) -> ChargeOutcome:
        return await self._charge(org, invoice_id, _key(key))

    async def _charge(self, org: str, invoice_id: str, key: str) -> ChargeOutcome:
        try:
            result = await self._billing.settle(org, invoice_id, idempotency_key=key)
        except DomainError as exc:
            if exc.code in UNSETTLED:
                raise  # an earlier attempt is still in flight: try this step again later
            # Nothing could be charged (no payment method, a charge waiting for 3-D Secure,
            # ...): for the engine that is a failed attempt; the invoice stays open.
            return ChargeOutcome(invoice_id, False, exc.code.value, exc.message)
        return _outcome(result)
