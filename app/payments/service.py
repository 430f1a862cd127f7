"""Payments: one Stripe PaymentIntent each, and a state machine that only records what Stripe
reported.

Every call that can change a PaymentIntent (confirm, capture, cancel, refresh) first marks the
payment row with the operation and a lease in its own committed statement, then calls Stripe,
then records Stripe's answer with a conditional update that needs that lease and the status it
started from. A process that dies after Stripe answered leaves the mark behind; whoever finds it
once the lease has expired (or a retry under the same idempotency key) reads the PaymentIntent
from Stripe and records its state before doing anything else. Stripe is never asked to confirm a
PaymentIntent that it may already have confirmed.

The payment itself (statuses, transitions, drafts, how a PaymentIntent is recorded) is in
``model.py``. This module stays over 500 lines because ``PaymentService`` is that one protocol:
create, confirm, capture, cancel and refresh all run through the same mark, call, reconcile and
finish steps, which read best next to each other.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.core.auth import Principal, Role
from app.core.errors import DomainError, ErrorCode, NotFound, ProviderUnreachable
from app.core.idempotency import Claim, IdempotencyKeys, Stored, validate_key
from app.core.ids import has_prefix, new_id
from app.core.listing import Listing
from app.core.money import MAX_AMOUNT, Money, format_decimal, normalize_currency
from app.core.pubsub import Event, publish
from app.customers import CustomerService
from app.ledger import Ledger, Refs
from app.outgoing_webhooks import api_view, emit
from app.payments.model import (
    _ALLOWED,
    _OUTCOMES,
    _VERBS,
    CANCELABLE,
    CAPTURABLE,
    CONFIRMABLE,
    TRANSITIONS,
    Breakdown,
    BreakdownDraft,
    CaptureMethod,
    CurrencySummary,
    Payment,
    PaymentDeclined,
    PaymentDraft,
    PaymentStatus,
    S,
    _declined,
    _method,
    _Op,
    _recorded,
    _status_of,
    _validate,
)
from app.rollups import StatsRecorder
from app.stripe import CardDeclined, ProviderRefused, StripeGateway, StripeIntent
from db.connection import Database, Row
from db.repositories.customers import CustomerRepository
from db.repositories.invoicing.invoices import InvoiceRepository
from db.repositories.payments import PaymentRepository

__all__ = [
    "CANCELABLE",
    "CAPTURABLE",
    "CONFIRMABLE",
    "TRANSITIONS",
    "Breakdown",
    "BreakdownDraft",
    "CaptureMethod",
    "CurrencySummary",
    "Payment",
    "PaymentDeclined",
    "PaymentDraft",
    "PaymentService",
    "PaymentStatus",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Lease:
    """Who holds a payment's operation, and the Stripe idempotency key prefix it uses."""

    token: str
    key: str
    retried: bool


def _visible(actor: Principal, customer_id: str) -> bool:
    return actor.customer_id in (None, customer_id)


def _summary(row: Mapping[str, Any]) -> CurrencySummary:
    return CurrencySummary(
        currency=row["currency"],
        count=int(row["count"]),
        succeeded_count=int(row["succeeded_count"]),
        succeeded=Money(int(row["succeeded"]), row["currency"]),
        refunded=Money(int(row["refunded"]), row["currency"]),
    )


# Statuses other back ends hear about (outgoing webhooks), each when a payment reaches it.
_EVENT_OF = {
    S.SUCCEEDED.value: "payment.succeeded",
    S.FAILED.value: "payment.failed",
    S.REQUIRES_ACTION.value: "payment.requires_action",
}


class PaymentService:
    def __init__(
        self,
        db: Database,
        stripe: StripeGateway,
        keys: IdempotencyKeys,
        *,
        lease: timedelta | None = None,
        customers: CustomerService | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self._db = db
        self._ledger = ledger or Ledger(db)
        self._invoices = InvoiceRepository(db)
        self._stripe = stripe
        self._keys = keys
        self._customer_service = customers
        self._lease = lease or keys.lease
        self._payments = PaymentRepository(db)
        self._customers = CustomerRepository(db)
        self._stats = StatsRecorder(db)
        self.read = Listing(self._payments, Payment.from_row)

    async def summary(self, org: str, filters: Mapping[str, Any]) -> list[CurrencySummary]:
        return [_summary(r) for r in await self._payments.summary(org, filters)]

    async def summaries_by_customer(
        self, org: str, customer_ids: Sequence[str]
    ) -> list[list[CurrencySummary]]:
        """Each customer's ``summary``, aligned with ``customer_ids``, in one statement."""
        grouped: dict[str, list[CurrencySummary]] = {}
        for row in await self._payments.summaries_by_customer(org, customer_ids):
            grouped.setdefault(row["customer_id"], []).append(_summary(row))
        return [grouped.get(customer_id, []) for customer_id in customer_ids]

    async def pages_by_customer(
        self,
        org: str,
        customer_ids: Sequence[str],
        *,
        first: int,
        after: str | None,
        newest: bool = False,
    ) -> list[tuple[list[Payment], bool]]:
        """Each customer's page of payments, aligned with ``customer_ids``, in one statement."""
        rows = await self._payments.pages_by_customer(
            org, customer_ids, first=first, after=after, newest=newest
        )
        grouped: dict[str, list[Payment]] = {}
        for row in rows:
            grouped.setdefault(row["customer_id"], []).append(Payment.from_row(row))
        pages = []
        for customer_id in customer_ids:
            found = grouped.get(customer_id, [])
            pages.append((found[:first], len(found) > first))
        return pages

    # -- create ------------------------------------------------------------------------------

    async def create(
        self, org: str, actor: Principal, draft: PaymentDraft, *, idempotency_key: str
    ) -> Payment:
        """Create the PaymentIntent at Stripe, then the local payment with its id and status."""
        validate_key(idempotency_key)
        values = _validate(draft)
        breakdown = values["breakdown"]
        request = {
            "customerId": draft.customer_id,
            "amount": values["amount"].amount,
            "currency": values["amount"].currency,
            "description": values["description"],
            "orderId": values["order_id"],
            "breakdown": None if breakdown is None else vars(breakdown),
            "metadata": values["metadata"],
            "paymentMethodId": values["payment_method_id"],
            "captureMethod": draft.capture_method.value,
        }

        async def work(claim: Claim) -> Payment:
            return await self._create(org, actor, draft, values, claim)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="paymentIntentCreate",
            request=request,
            resource_id=new_id("pay"),
            work=work,
            replay=lambda stored: self._replay(org, actor, stored),
        )

    async def _create(
        self, org: str, actor: Principal, draft: PaymentDraft, values: dict[str, Any], claim: Claim
    ) -> Payment:
        customer_id = draft.customer_id
        rows = await self._customers.by_ids(org, [customer_id])
        customer = rows[0]
        if customer is None or not _visible(actor, customer_id):
            raise NotFound("Customer", ("input", "customerId"))
        stripe_customer = customer["stripe_customer_id"]
        if not stripe_customer:
            # A crash between the customer's row and its Stripe mirror left none: make it now,
            # with the key and values of the first attempt.
            if self._customer_service is None:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    "The customer has no Stripe customer yet.",
                    field=("input", "customerId"),
                )
            ensured = await self._customer_service.ensure_stripe_customer(
                org, customer_id, field=("input", "customerId"), repair=False
            )
            stripe_customer = ensured.stripe_customer_id
        payment_id = claim.resource_id
        amount: Money = values["amount"]
        metadata = {
            **values["metadata"],
            "billing_organization": org,
            "billing_payment_id": payment_id,
        }
        if values["order_id"]:
            metadata["billing_order_id"] = values["order_id"]
        intent = await self._stripe.create_payment_intent(
            idempotency_key=claim.stripe_key("create"),
            amount=amount.amount,
            currency=amount.currency,
            customer=stripe_customer,
            payment_method=values["payment_method_id"],
            manual_capture=draft.capture_method is CaptureMethod.MANUAL,
            metadata=metadata,
        )
        breakdown: BreakdownDraft | None = values["breakdown"]
        status = _status_of(intent)
        if status not in (S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION):
            log.warning("new PaymentIntent %s is already %s", intent.id, intent.status)
        async with self._db.transaction():
            row = await self._payments.insert(
                {
                    "organization_id": org,
                    "id": payment_id,
                    "customer_id": customer_id,
                    "amount": amount.amount,
                    "currency": amount.currency,
                    "status": status.value,
                    "capture_method": draft.capture_method.value,
                    "description": values["description"],
                    "order_id": values["order_id"],
                    "subtotal_amount": breakdown.subtotal if breakdown else None,
                    "tax_amount": breakdown.tax if breakdown else None,
                    "shipping_amount": breakdown.shipping if breakdown else None,
                    "discount_amount": breakdown.discount if breakdown else None,
                    "metadata": values["metadata"],
                    "payment_method_id": intent.payment_method or values["payment_method_id"],
                    "stripe_payment_intent_id": intent.id,
                    "client_secret": intent.client_secret,
                    "next_action": intent.next_action,
                }
            )
            assert row is not None  # payments have no natural unique key besides the intent
            await self._moved(None, row)
            await self._keys.complete(claim)
            await self._announce(row)
        return Payment.from_row(row)

    # -- confirm, capture, cancel, refresh ---------------------------------------------------

    async def confirm(
        self,
        org: str,
        actor: Principal,
        payment_id: str,
        *,
        payment_method_id: str | None,
        idempotency_key: str,
    ) -> Payment:
        """Confirm with Stripe and record Stripe's outcome. A decline raises ``PaymentDeclined``
        with the payment left ``failed``; 3-D Secure leaves it ``requires_action``."""
        validate_key(idempotency_key)
        method = _method(payment_method_id)

        async def work(claim: Claim) -> Payment:
            lease = _Lease(claim.token, claim.stripe_key("confirm"), claim.retried)
            started = await self._start(org, actor, payment_id, _Op.CONFIRM, lease)
            if isinstance(started, Payment):
                return await self._answer(claim, started, _Op.CONFIRM)
            return await self._confirm(org, started, method, lease, claim)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="paymentIntentConfirm",
            request={"paymentId": payment_id, "paymentMethodId": method},
            resource_id=payment_id,
            work=work,
            replay=lambda stored: self._replay(org, actor, stored),
        )

    async def _confirm(
        self, org: str, row: Row, method: str | None, lease: _Lease, claim: Claim
    ) -> Payment:
        chosen = method or row["payment_method_id"]
        if chosen is None:
            customers = await self._customers.by_ids(org, [row["customer_id"]])
            chosen = customers[0]["default_payment_method_id"] if customers[0] else None
        if chosen is None:
            await self._payments.end_operation(org, row["id"], token=lease.token)
            raise DomainError(
                ErrorCode.REQUIRED,
                "Give a payment method: the payment and its customer have none.",
                field=("input", "paymentMethodId"),
            )
        intent_id = row["stripe_payment_intent_id"]
        try:
            if chosen != row["payment_method_id"]:
                await self._stripe.set_payment_method(
                    intent_id, chosen, idempotency_key=f"{lease.key}-method"
                )
            intent = await self._stripe.confirm_payment_intent(
                intent_id, idempotency_key=f"{lease.key}-confirm"
            )
        except CardDeclined as exc:
            payment = await self._finish(org, row, lease, _declined(exc), claim, error=exc)
            raise PaymentDeclined(payment, exc) from exc
        except ProviderUnreachable:
            await self._payments.abandon_operation(org, row["id"], token=lease.token)
            raise
        except ProviderRefused:
            await self._payments.end_operation(org, row["id"], token=lease.token)
            raise
        return await self._finish(org, row, lease, _recorded(row, intent), claim)

    async def capture(
        self,
        org: str,
        actor: Principal,
        payment_id: str,
        *,
        amount: int | None,
        currency: str | None,
        idempotency_key: str,
    ) -> Payment:
        """Capture an authorized payment (all of it, or ``amount`` minor units of it)."""
        validate_key(idempotency_key)
        if amount is not None:
            if not 0 < amount <= MAX_AMOUNT:
                raise DomainError(
                    ErrorCode.INVALID,
                    "The amount to capture is more than zero minor units.",
                    field=("input", "amount", "amount"),
                )
            try:
                currency = normalize_currency(currency or "")
            except DomainError as exc:
                raise exc.at(("input", "amount", "currency")) from None

        async def work(claim: Claim) -> Payment:
            lease = _Lease(claim.token, claim.stripe_key("capture"), claim.retried)
            started = await self._start(org, actor, payment_id, _Op.CAPTURE, lease, amount=amount)
            if isinstance(started, Payment):
                return await self._answer(claim, started, _Op.CAPTURE)
            row = started
            problem = None
            if amount is not None and currency != row["currency"]:
                problem = DomainError(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"The payment is in {row['currency']}, not {currency}.",
                    field=("input", "amount", "currency"),
                )
            elif amount is not None and amount > row["amount_capturable"]:
                most = format_decimal(row["amount_capturable"], row["currency"])
                problem = DomainError(
                    ErrorCode.INVALID,
                    f"At most {most} {row['currency']} can be captured.",
                    field=("input", "amount", "amount"),
                )
            if problem is not None:
                await self._payments.end_operation(org, payment_id, token=lease.token)
                raise problem
            intent = await self._call(
                org,
                row,
                lease,
                self._stripe.capture_payment_intent(
                    row["stripe_payment_intent_id"],
                    amount=amount,
                    idempotency_key=f"{lease.key}-capture",
                ),
            )
            return await self._finish(org, row, lease, _recorded(row, intent), claim)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="paymentCapture",
            request={"paymentId": payment_id, "amount": amount, "currency": currency},
            resource_id=payment_id,
            work=work,
            replay=lambda stored: self._replay(org, actor, stored),
        )

    async def cancel(
        self, org: str, actor: Principal, payment_id: str, *, idempotency_key: str
    ) -> Payment:
        """Cancel a payment that has not succeeded (releases an authorization)."""
        validate_key(idempotency_key)

        async def work(claim: Claim) -> Payment:
            lease = _Lease(claim.token, claim.stripe_key("cancel"), claim.retried)
            started = await self._start(org, actor, payment_id, _Op.CANCEL, lease)
            if isinstance(started, Payment):
                return await self._answer(claim, started, _Op.CANCEL)
            row = started
            intent = await self._call(
                org,
                row,
                lease,
                self._stripe.cancel_payment_intent(
                    row["stripe_payment_intent_id"], idempotency_key=f"{lease.key}-cancel"
                ),
            )
            return await self._finish(org, row, lease, _recorded(row, intent), claim)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="paymentCancel",
            request={"paymentId": payment_id},
            resource_id=payment_id,
            work=work,
            replay=lambda stored: self._replay(org, actor, stored),
        )

    async def refresh(self, org: str, actor: Principal, payment_id: str) -> Payment:
        """Read the PaymentIntent from Stripe and record its state (how a payment completed
        with 3-D Secure, or confirmed by Stripe.js, is picked up). Reads only: no key needed."""
        token = secrets.token_hex(16)
        lease = _Lease(token, f"refresh-{token}", retried=False)
        started = await self._start(org, actor, payment_id, _Op.REFRESH, lease)
        if isinstance(started, Payment):
            return started
        row = await self._reconcile(org, started, lease)
        return Payment.from_row(row)

    async def status_at_stripe(self, intent_id: str) -> PaymentStatus:
        """Our status for the PaymentIntent as Stripe has it now: a read, nothing recorded
        (reconciliation compares it with ours before calling ``refresh``)."""
        return _status_of(await self._stripe.retrieve_payment_intent(intent_id))

    async def resume_interrupted(
        self,
        *,
        older_than: timedelta = timedelta(minutes=2),
        limit: int = 100,
        org: str | None = None,
    ) -> int:
        """Record Stripe's state for payments whose Stripe call outlived its request (the
        worker's housekeeping): the request died, or Stripe did not answer and no one retried
        with the same key. Each is read from Stripe and recorded, as a ``refresh`` does, so
        none is left marked in flight. Returns how many were recorded."""
        recorded = 0
        for row in await self._payments.interrupted(older_than=older_than, limit=limit, org=org):
            owner = row["organization_id"]
            system = Principal(subject="housekeeping", org=owner, role=Role.SERVICE)
            try:
                await self.refresh(owner, system, row["id"])
            except ProviderUnreachable:
                log.warning("payment %s: Stripe unreachable; read again later", row["id"])
                break
            except DomainError as exc:  # taken over meanwhile, or refused by Stripe
                log.warning("payment %s: not read from Stripe (%s)", row["id"], exc.message)
                continue
            recorded += 1
        if recorded:
            log.info("recorded %d payments left in flight by interrupted requests", recorded)
        return recorded

    async def cancel_orphans(
        self, *, older_than: timedelta = timedelta(minutes=2), org: str | None = None
    ) -> int:
        """Cancel the PaymentIntents invoice charges created and never confirmed nor linked
        to their invoice (the request died in between; the invoice's next charge makes its
        own): the worker's housekeeping. Returns how many were canceled."""
        canceled = 0
        rows = await self._payments.orphaned_invoice_charges(
            older_than=older_than, limit=100, org=org
        )
        for row in rows:
            owner = row["organization_id"]
            system = Principal(subject="housekeeping", org=owner, role=Role.SERVICE)
            try:
                await self.cancel(owner, system, row["id"], idempotency_key=f"orphan-{row['id']}")
            except ProviderUnreachable:
                break
            except DomainError as exc:
                log.warning("payment %s: orphan not canceled (%s)", row["id"], exc.message)
                continue
            canceled += 1
        return canceled

    # -- the operation protocol --------------------------------------------------------------

    async def _start(
        self,
        org: str,
        actor: Principal,
        payment_id: str,
        op: _Op,
        lease: _Lease,
        *,
        amount: int | None = None,
    ) -> Row | Payment:
        """Take the payment for ``op``: the row to act on, or the payment when it already is the
        answer (an interrupted attempt of this request finished at Stripe)."""
        if not has_prefix(payment_id, "pay"):
            raise NotFound("Payment", ("input", "paymentId"))
        allowed = [s.value for s in _ALLOWED[op]]
        interrupted: str | None = None
        for _ in range(3):
            begun = await self._payments.begin_operation(
                org,
                payment_id,
                operation=op.value,
                allowed=allowed,
                token=lease.token,
                key=lease.key,
                lease=self._lease,
                amount=amount,
                customer_id=actor.customer_id,
            )
            if begun is not None:
                return begun
            current = await self._payments.get(org, payment_id)
            if current is None or not _visible(actor, current["customer_id"]):
                raise NotFound("Payment", ("input", "paymentId"))
            if current["operation"] is None:
                status = PaymentStatus(current["status"])
                if status.value in allowed:
                    continue
                answered = op is _Op.REFRESH or lease.retried or interrupted == op.value
                if answered and status in _OUTCOMES[op]:
                    return Payment.from_row(current)
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    f"A {status.value.replace('_', ' ')} payment cannot be {_VERBS[op]}.",
                    field=("input", "paymentId"),
                )
            taken = await self._payments.take_over_operation(
                org, payment_id, token=lease.token, key=lease.key, lease=self._lease
            )
            if taken is None:
                raise DomainError(
                    ErrorCode.OPERATION_IN_PROGRESS,
                    f"Another change to this payment ({current['operation']}) is in flight; "
                    "retry in a moment.",
                    field=("input", "paymentId"),
                )
            interrupted = taken["operation"]
            log.info("payment %s: resuming an interrupted %s", payment_id, interrupted)
            await self._reconcile(org, taken, lease)
        raise DomainError(
            ErrorCode.OPERATION_IN_PROGRESS,
            "This payment is changing; retry in a moment.",
            field=("input", "paymentId"),
        )

    async def _call(self, org: str, row: Row, lease: _Lease, call: Any) -> StripeIntent:
        try:
            intent: StripeIntent = await call
        except ProviderUnreachable:
            await self._payments.abandon_operation(org, row["id"], token=lease.token)
            raise
        except DomainError:
            await self._payments.end_operation(org, row["id"], token=lease.token)
            raise
        return intent

    async def _reconcile(self, org: str, row: Row, lease: _Lease) -> Row:
        """Read the PaymentIntent and record it, ending the operation held by ``lease``."""
        intent = await self._call(
            org,
            row,
            lease,
            self._stripe.retrieve_payment_intent(row["stripe_payment_intent_id"]),
        )
        async with self._db.transaction():
            done = await self._payments.finish_operation(
                org,
                row["id"],
                token=lease.token,
                from_status=row["status"],
                values=_recorded(row, intent),
            )
            if done is not None and done["status"] != row["status"]:
                await self._moved(row, done)
                await self._announce(done)
        if done is None:
            current = await self._payments.get(org, row["id"])
            assert current is not None
            return current
        return done

    async def _finish(
        self,
        org: str,
        row: Row,
        lease: _Lease,
        values: dict[str, Any],
        claim: Claim,
        *,
        error: DomainError | None = None,
    ) -> Payment:
        """Record Stripe's answer and the request's result in one transaction."""
        async with self._db.transaction():
            done = await self._payments.finish_operation(
                org, row["id"], token=lease.token, from_status=row["status"], values=values
            )
            if done is None:
                raise DomainError(
                    ErrorCode.OPERATION_IN_PROGRESS,
                    "This request took too long and a retry took it over; that retry reports "
                    "the result.",
                    field=("input", "paymentId"),
                )
            await self._keys.complete(claim, error=error)
            if done["status"] != row["status"]:
                await self._moved(row, done)
                await self._announce(done)
        return Payment.from_row(done)

    async def _answer(self, claim: Claim, payment: Payment, op: _Op) -> Payment:
        """Complete the key with a payment that already holds the operation's outcome."""
        error = None
        if op is _Op.CONFIRM and payment.status is S.FAILED:
            error = CardDeclined(payment.failure_code or "card_declined", "")
        async with self._db.transaction():
            await self._keys.complete(claim, error=error)
        if error is not None:
            raise PaymentDeclined(payment, error)
        return payment

    async def _replay(self, org: str, actor: Principal, stored: Stored) -> Payment:
        row = await self._payments.get(org, stored.resource_id)
        if row is None or not _visible(actor, row["customer_id"]):
            raise NotFound("Payment", ("input", "paymentId"))
        payment = Payment.from_row(row)
        if stored.error is not None:
            if stored.error.code is ErrorCode.CARD_DECLINED:
                raise PaymentDeclined(payment, stored.error)
            raise stored.error
        return payment

    async def _moved(self, before: Row | None, after: Row) -> None:
        """A payment changed status (in the transaction that changes it): the statistics
        count it, and money received is posted to the ledger, against the invoice it pays."""
        await self._stats.payment_changed(before, after)
        event = _EVENT_OF.get(after["status"])
        if event is not None and (before is None or before["status"] != after["status"]):
            view = api_view(Payment.from_row(after), typename="Payment")
            await emit(self._db, after["organization_id"], event, view)
        became = after["status"] == S.SUCCEEDED.value
        if became and (before is None or before["status"] != S.SUCCEEDED.value):
            org = after["organization_id"]
            invoice = await self._invoices.paid_by(org, after["id"])
            refs = Refs(
                after["customer_id"],
                after["currency"],
                payment_id=after["id"],
                invoice_id=invoice["id"] if invoice is not None else None,
                subscription_id=invoice["subscription_id"] if invoice is not None else None,
            )
            await self._ledger.payment_succeeded(org, refs, after["amount_captured"])

    async def _announce(self, row: Row) -> None:
        await publish(
            self._db,
            Event(
                org=row["organization_id"],
                kind="payment",
                id=row["id"],
                data={
                    "status": row["status"],
                    "customer_id": row["customer_id"],
                    "at": row["updated_at"].isoformat(),
                },
            ),
        )
