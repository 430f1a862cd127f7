"""Bill an invoice now: charge what it still owes through the payments service.

``InvoiceBilling.charge`` is the one path by which an invoice is paid with money: ``invoicePay``,
subscription renewals and dunning (``issue`` invoices a subscription's period first, ``bill``
does both). It creates and confirms a payment (``app.payments``) for the invoice's remaining
amount, with the given card or the customer's default one, and marks the invoice paid only when
Stripe reported the payment succeeded; a decline leaves it open with the failure recorded.

Safety, in order:

* the caller's idempotency key: the same key never charges twice and returns the first outcome;
  the payment's own keys are derived from it, so an interrupted charge retried with the same key
  resumes the same Stripe PaymentIntent instead of creating another;
* a charge lease on the invoice row (one charge at a time per invoice, also across keys and
  processes; voiding and crediting wait for it);
* a payment left behind by an earlier attempt under another key is read from Stripe first: if it
  succeeded, the invoice is marked paid with it; if it still waits (3-D Secure, processing), the
  new charge is refused; otherwise it is cancelled before a new one is made.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.auth import Principal, Role
from app.core.errors import DomainError, ErrorCode, NotFound, ProviderUnreachable
from app.core.idempotency import Claim, IdempotencyKeys, Stored, validate_key
from app.core.ids import new_id
from app.core.pubsub import Event, publish
from app.invoicing.model import (
    PAYABLE,
    Invoice,
    InvoiceDraft,
    InvoiceStatus,
    LineInput,
    invoice_view,
)
from app.invoicing.service import InvoiceService
from app.outgoing_webhooks import emit
from app.payments import Payment, PaymentDeclined, PaymentDraft, PaymentService, PaymentStatus
from db.connection import Database
from db.repositories.customers import CustomerRepository
from db.repositories.invoicing.invoices import InvoiceRepository

__all__ = ["ChargeResult", "InvoiceBilling"]

log = logging.getLogger(__name__)

_WAITING = frozenset(
    {PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_CAPTURE}
)
_SETTLED = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED, PaymentStatus.FAILED})
_CHARGE_TAG = "invoice_charge"  # payment metadata: which charge (key) made the payment


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """The invoice after a charge, the payment made (if any), and the decline if Stripe
    declined the card (the invoice then stays open with the failure recorded)."""

    invoice: Invoice
    payment: Payment | None
    declined: DomainError | None = None

    @property
    def paid(self) -> bool:
        return self.invoice.status is InvoiceStatus.PAID


def _system(org: str) -> Principal:
    return Principal(subject="invoice-billing", org=org, role=Role.SERVICE)


def _derived(key: str, step: str) -> str:
    """A key for one step of the request made with ``key`` (same key, same step key)."""
    return f"invoice-{hashlib.sha256(key.encode()).hexdigest()[:40]}-{step}"


def _method(value: str | None) -> str | None:
    if value is None:
        return None
    method = value.strip()
    if not method.startswith("pm_") or len(method) > 255:
        raise DomainError(
            ErrorCode.INVALID,
            "A payment method id looks like pm_…",
            field=("input", "paymentMethodId"),
        )
    return method


class InvoiceBilling:
    def __init__(
        self,
        db: Database,
        *,
        invoices: InvoiceService,
        payments: PaymentService,
        idempotency: IdempotencyKeys,
    ) -> None:
        self._db = db
        self._invoices = invoices
        self._payments = payments
        self._keys = idempotency
        self._rows = InvoiceRepository(db)
        self._customers = CustomerRepository(db)

    async def charge(
        self,
        org: str,
        invoice_id: str,
        *,
        idempotency_key: str,
        payment_method_id: str | None = None,
        actor: Principal | None = None,
    ) -> ChargeResult:
        """Charge what the open (or uncollectible) invoice still owes, at most once per key.

        ``actor`` is who asks (a customer token may pay its own invoices); internal callers
        leave it out. Raises ``DomainError`` for what prevents a charge (not found, not payable,
        no payment method, a charge in flight); returns the declined result otherwise.
        """
        validate_key(idempotency_key)
        method = _method(payment_method_id)
        who = actor or _system(org)

        async def work(claim: Claim) -> ChargeResult:
            return await self._charge(org, invoice_id, method, claim, who)

        async def replay(stored: Stored) -> ChargeResult:
            invoice = await self._invoices.get(org, stored.resource_id)
            return ChargeResult(invoice, await self._payment_of(invoice), stored.error)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="invoice.pay",
            request={"invoiceId": invoice_id, "paymentMethodId": method},
            resource_id=invoice_id,
            work=work,
            replay=replay,
        )

    async def issued(self, org: str, key: str) -> str | None:
        """The id of the invoice ``issue`` made under ``key``, if it did."""
        stored = await self._keys.completed(org, key)
        return stored.resource_id if stored is not None and stored.error is None else None

    async def issue(
        self,
        org: str,
        *,
        customer_id: str,
        currency: str,
        lines: Sequence[LineInput],
        key: str,
        subscription_id: str | None = None,
        period_index: int | None = None,
        period_start: datetime | None = None,
        period_end: datetime | None = None,
    ) -> Invoice:
        """Invoice ``lines``, finalized at once, at most once per ``key`` (the same key returns
        the same invoice): a subscription's period, for instance. ``period_index`` counts the
        period for coupons that last a number of periods."""
        draft = InvoiceDraft(
            customer_id=customer_id,
            currency=currency,
            lines=lines,
            subscription_id=subscription_id,
            period_start=period_start,
            period_end=period_end,
        )

        async def work(claim: Claim) -> Invoice:
            async with self._db.transaction():
                created = await self._invoices.create_draft(
                    org, draft, invoice_id=claim.resource_id
                )
                invoice = await self._invoices.finalize(org, created.id, period_index=period_index)
                await self._keys.complete(claim)
            return invoice

        async def replay(stored: Stored) -> Invoice:
            return await self._invoices.get(org, stored.resource_id)

        return await self._keys.run(
            org,
            key,
            operation="invoice.issue",
            request={
                "customerId": customer_id,
                "subscriptionId": subscription_id,
                "currency": currency,
                "periodIndex": period_index,
                "lines": [
                    [line.description, line.quantity, line.unit_amount, line.kind.value]
                    for line in lines
                ],
            },
            resource_id=new_id("inv"),
            work=work,
            replay=replay,
        )

    async def bill(
        self,
        org: str,
        *,
        customer_id: str,
        currency: str,
        lines: Sequence[LineInput],
        key: str,
        subscription_id: str | None = None,
        period_index: int | None = None,
        period_start: datetime | None = None,
        period_end: datetime | None = None,
    ) -> ChargeResult:
        """``issue`` then ``charge`` the customer's default payment method, both at most once
        per ``key``."""
        invoice = await self.issue(
            org,
            customer_id=customer_id,
            currency=currency,
            lines=lines,
            key=key,
            subscription_id=subscription_id,
            period_index=period_index,
            period_start=period_start,
            period_end=period_end,
        )
        return await self.settle(org, invoice.id, idempotency_key=_derived(key, "charge"))

    async def settle(self, org: str, invoice_id: str, *, idempotency_key: str) -> ChargeResult:
        """Charge the invoice if it still owes something; an invoice already paid (by
        ``invoicePay``, a credit or an earlier attempt) or void is returned as it is."""
        invoice = await self._invoices.get(org, invoice_id)
        if invoice.status is not InvoiceStatus.OPEN or invoice.amount_remaining.amount == 0:
            return ChargeResult(invoice, await self._payment_of(invoice))
        return await self.charge(org, invoice.id, idempotency_key=idempotency_key)

    async def resume_abandoned(
        self,
        *,
        older_than: timedelta = timedelta(minutes=2),
        limit: int = 100,
        org: str | None = None,
    ) -> int:
        """Finish charges whose request died holding the invoice and that no one retried (the
        worker's housekeeping). The charge that was under way is completed under a key of its
        own: the payment the dead request left is read from Stripe first and adopted if it
        succeeded (or canceled if it never did, before a new one charges the default payment
        method), exactly as any later charge of the invoice would. Returns how many invoices
        now have an outcome (paid, or a decline recorded)."""
        finished = 0
        abandoned = await self._rows.abandoned_charges(
            allowed=PAYABLE, older_than=older_than, limit=limit, org=org
        )
        for row in abandoned:
            owner, invoice_id = row["organization_id"], row["id"]
            # One key per abandoned lease: every worker sweeping it shares the charge.
            key = _derived(f"{invoice_id}\x00{row['payment_lease_token']}", "resume")
            try:
                result = await self.settle(owner, invoice_id, idempotency_key=key)
            except ProviderUnreachable:
                log.warning("invoice %s: Stripe unreachable; charge again later", invoice_id)
                break
            except DomainError as exc:
                log.warning("invoice %s: interrupted charge not finished (%s)", invoice_id, exc)
                continue
            if result.paid or result.declined is not None:
                finished += 1
        if finished:
            log.info("finished %d invoice charges left by interrupted requests", finished)
        return finished

    async def _payment_of(self, invoice: Invoice) -> Payment | None:
        if invoice.payment_id is None:
            return None
        (payment,) = await self._payments.read.by_ids(invoice.organization_id, [invoice.payment_id])
        return payment

    # -- one charge ---------------------------------------------------------------------------

    async def _charge(
        self, org: str, invoice_id: str, method: str | None, claim: Claim, actor: Principal
    ) -> ChargeResult:
        token = claim.stripe_key("invoice-charge")
        row = await self._rows.begin_payment(
            org, invoice_id, token=token, lease=self._keys.lease, allowed=PAYABLE
        )
        if row is None:
            raise await self._refusal(org, invoice_id)
        invoice = Invoice.from_row(row)
        try:
            adopted = await self._settle_previous(org, invoice, token, claim)
            if adopted is not None:
                return adopted
            return await self._pay(org, invoice, method, token, claim, actor)
        except ProviderUnreachable:
            raise  # the lease stays: only a retry with the same key may continue this charge
        except DomainError:
            await self._rows.end_payment(org, invoice_id, token=token, values={})
            raise

    async def _settle_previous(
        self, org: str, invoice: Invoice, token: str, claim: Claim
    ) -> ChargeResult | None:
        """Deal with a payment an earlier charge (under another key) left on the invoice."""
        if invoice.payment_id is None:
            return None
        (previous,) = await self._payments.read.by_ids(org, [invoice.payment_id])
        if previous is None or previous.metadata.get(_CHARGE_TAG) == token:
            return None  # none, or this charge's own (resumed after an interruption)
        if previous.status not in _SETTLED:
            previous = await self._payments.refresh(org, _system(org), previous.id)
        if previous.status is PaymentStatus.SUCCEEDED:
            if previous.amount != invoice.amount_remaining:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    f"Payment {previous.id} succeeded for {previous.amount.decimal} "
                    f"{previous.amount.currency} but the invoice now owes "
                    f"{invoice.amount_remaining.decimal}; reconcile it by hand.",
                    field=("input", "invoiceId"),
                )
            return await self._mark_paid(org, invoice, previous, token, claim)
        if previous.status in _WAITING:
            waiting = previous.status.value.replace("_", " ")
            raise DomainError(
                ErrorCode.OPERATION_IN_PROGRESS,
                f"The invoice's last charge ({previous.id}) is {waiting} (e.g. waiting for "
                "3-D Secure); complete it, or try again later.",
                field=("input", "invoiceId"),
            )
        if previous.status is not PaymentStatus.CANCELED:
            await self._payments.cancel(
                org,
                _system(org),
                previous.id,
                idempotency_key=claim.stripe_key(f"invoice-cancel-{previous.id}"),
            )
        return None

    async def _pay(
        self,
        org: str,
        invoice: Invoice,
        method: str | None,
        token: str,
        claim: Claim,
        actor: Principal,
    ) -> ChargeResult:
        if method is None:
            (customer,) = await self._customers.by_ids(org, [invoice.customer_id])
            method = customer["default_payment_method_id"] if customer is not None else None
        if method is None:
            raise DomainError(
                ErrorCode.REQUIRED,
                "The customer has no default payment method; give paymentMethodId.",
                field=("input", "paymentMethodId"),
            )
        label = invoice.number or invoice.id
        payment = await self._payments.create(
            org,
            actor,
            PaymentDraft(
                customer_id=invoice.customer_id,
                amount=invoice.amount_remaining.amount,
                currency=invoice.currency,
                description=f"Invoice {label}",
                order_id=label,
                metadata={"invoice_id": invoice.id, _CHARGE_TAG: token},
                payment_method_id=method,
            ),
            idempotency_key=claim.stripe_key("invoice-payment-create"),
        )
        await self._rows.set_payment(org, invoice.id, token=token, payment_id=payment.id)
        try:
            payment = await self._payments.confirm(
                org,
                actor,
                payment.id,
                payment_method_id=None,
                idempotency_key=claim.stripe_key("invoice-payment-confirm"),
            )
        except PaymentDeclined as exc:
            return await self._record_decline(org, invoice, exc, token, claim)
        if payment.status is PaymentStatus.SUCCEEDED:
            return await self._mark_paid(org, invoice, payment, token, claim)
        # Waiting for the customer (3-D Secure) or the bank: the next charge reads it first.
        async with self._db.transaction():
            row = await self._rows.end_payment(org, invoice.id, token=token, values={})
            await self._keys.complete(claim)
        return ChargeResult(Invoice.from_row(row) if row else invoice, payment)

    async def _mark_paid(
        self, org: str, invoice: Invoice, payment: Payment, token: str, claim: Claim
    ) -> ChargeResult:
        async with self._db.transaction():
            row = await self._rows.end_payment(
                org,
                invoice.id,
                token=token,
                allowed=PAYABLE,
                values={
                    "status": InvoiceStatus.PAID.value,
                    "amount_paid": invoice.amount_due.amount,
                    "paid_at": datetime.now(UTC),
                    "payment_id": payment.id,
                    "last_payment_error_code": None,
                    "last_payment_error_message": None,
                },
            )
            if row is None:
                raise DomainError(
                    ErrorCode.OPERATION_IN_PROGRESS,
                    "This charge outlived its lease and another request took the invoice over; "
                    "it will find this payment and mark the invoice paid.",
                    field=("input", "invoiceId"),
                )
            await self._keys.complete(claim)
            paid = Invoice.from_row(row)
            await emit(self._db, org, "invoice.paid", invoice_view(paid))
            await publish(
                self._db,
                Event(
                    org,
                    "invoice",
                    paid.id,
                    {
                        "status": paid.status.value,
                        "number": paid.number,
                        "customer_id": paid.customer_id,
                        "currency": paid.currency,
                        "amount_paid": paid.amount_paid.amount,
                        "payment_id": payment.id,
                    },
                ),
            )
        return ChargeResult(paid, payment)

    async def _record_decline(
        self, org: str, invoice: Invoice, exc: PaymentDeclined, token: str, claim: Claim
    ) -> ChargeResult:
        declined = DomainError(exc.code, exc.message, details=exc.details)
        async with self._db.transaction():
            row = await self._rows.end_payment(
                org,
                invoice.id,
                token=token,
                values={
                    "last_payment_error_code": exc.payment.failure_code
                    or exc.details.get("decline_code", "card_declined"),
                    "last_payment_error_message": exc.payment.failure_message or exc.message,
                },
            )
            await self._keys.complete(claim, error=declined)
            await publish(
                self._db,
                Event(
                    org,
                    "invoice",
                    invoice.id,
                    {
                        "status": invoice.status.value,
                        "number": invoice.number,
                        "customer_id": invoice.customer_id,
                        "payment_failed": exc.payment.id,
                    },
                ),
            )
        return ChargeResult(Invoice.from_row(row) if row else invoice, exc.payment, declined)

    async def _refusal(self, org: str, invoice_id: str) -> DomainError:
        (invoice,) = await self._invoices.read.by_ids(org, [invoice_id])
        if invoice is None:
            return NotFound("Invoice", ("input", "invoiceId"))
        field = ("input", "invoiceId")
        if invoice.status.value in PAYABLE and invoice.amount_remaining.amount == 0:
            return DomainError(ErrorCode.INVALID_STATE, "Nothing is left to pay.", field=field)
        if invoice.status.value in PAYABLE:
            return DomainError(
                ErrorCode.OPERATION_IN_PROGRESS,
                "A charge of this invoice is in flight; retry in a moment.",
                field=field,
            )
        article = "An" if invoice.status.value[0] in "aeiou" else "A"
        return DomainError(
            ErrorCode.INVALID_STATE,
            f"{article} {invoice.status.value} invoice cannot be paid.",
            field=field,
        )
