"""What a customer of the demo does on a day of its script, done through the application
services as an admin would through the API: sign up (customer, card, coupon, subscription),
change its card, change plan, cancel, and the organization's refunds and credit notes.

An action whose moment has passed (an upgrade of a subscription dunning already canceled, a
refund when nothing was paid) is skipped and counted, never forced."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from app.core.auth import Principal, Role
from app.core.errors import DomainError, ValidationFailed
from app.customers import Address, CustomerDraft, TaxExempt, TaxId
from app.demo.catalog import Catalog
from app.demo.scenario import TIERS, Action, Kind, Script, plan_code
from app.invoicing import (
    CreditNoteDraft,
    CreditNoteLineInput,
    CreditNoteReason,
    CreditSettlement,
    Invoice,
    InvoiceStatus,
)
from app.organizations import ProrationBehavior
from app.payments import RefundReason, RefundStatus
from app.services import Services
from app.subscriptions import Status, SubscriptionDraft

__all__ = ["FAILING_CARD", "GOOD_CARD", "Actor", "Tally"]

log = logging.getLogger(__name__)

# Stripe's test payment methods (the emulator knows them): one that pays, and one that
# attaches to the customer but declines every charge (card number 4000 0000 0000 0341).
GOOD_CARD = "pm_card_visa"
FAILING_CARD = "pm_card_chargeCustomerFail"

_CITIES = {
    "US": ("Austin", "TX", "78701"),
    "CA": ("Toronto", "ON", "M5H 2N2"),
    "GB": ("London", "", "EC1A 1BB"),
    "FR": ("Lyon", "", "69002"),
    "DE": ("Berlin", "", "10115"),
    "NL": ("Utrecht", "", "3511"),
    "ES": ("Madrid", "", "28013"),
    "IE": ("Dublin", "", "D02"),
}
_CHANGEABLE = (Status.ACTIVE, Status.TRIALING)


@dataclass
class _Customer:
    customer_id: str
    subscription_id: str | None = None


@dataclass
class Tally:
    done: Counter[Kind] = field(default_factory=Counter)
    skipped: Counter[Kind] = field(default_factory=Counter)


class Actor:
    def __init__(self, services: Services, org: str, catalog: Catalog) -> None:
        self._s = services
        self._org = org
        self._catalog = catalog
        self._admin = Principal(subject="demo-admin", org=org, role=Role.ADMIN)
        self._customers: dict[int, _Customer] = {}
        self.tally = Tally()

    async def run(self, script: Script, actions: list[Action]) -> None:
        """Do the customer's actions of one day, in order."""
        for action in actions:
            try:
                done = await self._do(script, action)
            except (DomainError, ValidationFailed) as exc:
                log.debug("demo: %s of customer %d skipped: %s", action.kind, script.index, exc)
                done = False
            (self.tally.done if done else self.tally.skipped)[action.kind] += 1

    def _key(self, script: Script, action: Action) -> str:
        return f"demo:{script.index}:{action.kind.value}:{action.day}"

    async def _do(self, script: Script, action: Action) -> bool:
        if action.kind is Kind.SIGNUP:
            await self._sign_up(script, action)
            return True
        known = self._customers.get(script.index)
        if known is None:
            return False
        if action.kind in (Kind.CARD_FAILS, Kind.CARD_FIXED):
            card = FAILING_CARD if action.kind is Kind.CARD_FAILS else GOOD_CARD
            await self._s.customers.set_default_payment_method(self._org, known.customer_id, card)
            return True
        if known.subscription_id is None:
            return False
        if action.kind in (Kind.UPGRADE, Kind.DOWNGRADE):
            return await self._change_plan(script, action, known.subscription_id)
        if action.kind in (Kind.CANCEL_AT_PERIOD_END, Kind.CANCEL_NOW):
            return await self._cancel(action, known.subscription_id)
        invoice = await self._latest_paid(known.subscription_id)
        if invoice is None:
            return False
        if action.kind is Kind.REFUND:
            return await self._refund(script, action, invoice)
        return await self._credit_note(script, action, invoice)

    async def _sign_up(self, script: Script, action: Action) -> None:
        city, region, postal = _CITIES[script.country]
        customer = await self._s.customers.create(
            self._org,
            CustomerDraft(
                email=script.email,
                name=script.name,
                external_ref=f"demo-{script.index + 1}",
                address=Address(
                    country=script.country,
                    line1=f"{10 + script.index} Market Street",
                    city=city,
                    region=region,
                    postal_code=postal,
                ),
                preferred_currency=script.currency,
                tax_ids=(
                    [TaxId("eu_vat", f"{script.country}{100000000 + script.index}")]
                    if script.reverse_charge
                    else []
                ),
                tax_exempt=TaxExempt.REVERSE if script.reverse_charge else TaxExempt.NONE,
                metadata={"source": "billing demo"},
            ),
        )
        known = _Customer(customer.id)
        self._customers[script.index] = known
        card = FAILING_CARD if script.declined_at_signup else GOOD_CARD
        await self._s.customers.set_default_payment_method(self._org, customer.id, card)
        if script.coupon:
            await self._s.coupons.apply(
                self._org, self._catalog.coupon, customer.id, subscription_id=None
            )
        subscription = await self._s.subscriptions.create(
            self._org,
            self._admin,
            SubscriptionDraft(
                customer_id=customer.id,
                plan_id=self._catalog.plans[script.plan].id,
                quantity=script.quantity,
                trial_days=script.trial_days,
            ),
            key=self._key(script, action),
        )
        known.subscription_id = subscription.id

    async def _change_plan(self, script: Script, action: Action, subscription_id: str) -> bool:
        (current,) = await self._s.subscriptions.read.by_ids(self._org, [subscription_id])
        if current is None or current.status not in _CHANGEABLE:
            return False
        tier = next(t for t in TIERS if current.plan_id == self._plan_id(t, script.currency))
        step = 1 if action.kind is Kind.UPGRADE else -1
        target = TIERS.index(tier) + step
        if not 0 <= target < len(TIERS):
            return False
        new_tier = TIERS[target]
        behavior = (
            ProrationBehavior.ALWAYS_INVOICE
            if action.invoice_now
            else ProrationBehavior.CREATE_PRORATIONS
        )
        await self._s.subscriptions.change_plan(
            self._org,
            self._admin,
            subscription_id,
            plan_id=self._plan_id(new_tier, script.currency),
            quantity=3 if new_tier == "business" else 1,
            behavior=behavior,
            key=self._key(script, action),
        )
        return True

    def _plan_id(self, tier: str, currency: str) -> str:
        return self._catalog.plans[plan_code(tier, currency)].id

    async def _cancel(self, action: Action, subscription_id: str) -> bool:
        (current,) = await self._s.subscriptions.read.by_ids(self._org, [subscription_id])
        if current is None or current.status not in _CHANGEABLE or current.cancel_at_period_end:
            return False
        await self._s.subscriptions.cancel(
            self._org,
            subscription_id,
            at_period_end=action.kind is Kind.CANCEL_AT_PERIOD_END,
            reason="Switching to another tool",
            feedback="Generated by billing demo.",
        )
        return True

    async def _latest_paid(self, subscription_id: str) -> Invoice | None:
        """The subscription's latest invoice paid by card."""
        (invoices,) = await self._s.invoices.of_subscriptions(self._org, [subscription_id])
        paid = [
            i
            for i in invoices
            if i.status is InvoiceStatus.PAID and i.payment_id is not None and i.amount_paid.amount
        ]
        return paid[-1] if paid else None

    async def _refund(self, script: Script, action: Action, invoice: Invoice) -> bool:
        assert invoice.payment_id is not None
        paid = invoice.amount_paid.amount
        amount = None if action.fraction >= 1 else max(1, int(paid * action.fraction))
        refund = await self._s.refunds.create(
            self._org,
            self._admin,
            invoice.payment_id,
            amount=amount,
            currency=invoice.currency if amount is not None else None,
            reason=RefundReason.REQUESTED_BY_CUSTOMER,
            note="Refund requested by the customer (billing demo).",
            idempotency_key=self._key(script, action),
        )
        if refund.status is RefundStatus.PENDING_APPROVAL:
            await self._s.refunds.approve(
                self._org, self._admin, refund.id, idempotency_key=self._key(script, action) + ":ok"
            )
        return True

    async def _credit_note(self, script: Script, action: Action, invoice: Invoice) -> bool:
        amount = max(1, int(invoice.subtotal.amount * action.fraction))
        settlement = CreditSettlement.BALANCE if action.to_balance else CreditSettlement.REFUND
        await self._s.credit_notes.create(
            self._org,
            self._admin,
            CreditNoteDraft(
                invoice_id=invoice.id,
                lines=[CreditNoteLineInput("Goodwill credit for a service interruption", amount)],
                reason=CreditNoteReason.GOODWILL,
                settlement=settlement,
                memo="Sorry for the outage (billing demo).",
            ),
            idempotency_key=self._key(script, action),
        )
        return True
