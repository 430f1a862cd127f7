"""Refunds: limits checked under the payment's row lock, an approval policy, and a status that
follows Stripe's.

A refund is reserved first: inserted under ``SELECT … FOR UPDATE`` of its payment after summing
the payment's requested, in-flight and succeeded refunds, so concurrent requests, from any
number of processes, cannot together exceed what was captured. Only then is it sent to Stripe
(at once, or after an admin approves it: a customer's request always waits, and so does any
refund that would take the payment's cumulative refunded amount, succeeded, in flight and
awaiting approval, above the organization's threshold). The Stripe refund carries our refund id
in its metadata and a Stripe idempotency key stored on the row: a retry after a crash looks the
refund up at Stripe before creating it, so it is never created twice.

This module stays over 500 lines on purpose: the limit check under the payment's lock, the
approval policy and the Stripe submission are one protocol (reserve, approve or send, record),
and a reader checking that a refund can never exceed what was captured needs all of it at once.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.core.auth import Principal, Role
from app.core.errors import DomainError, ErrorCode, NotFound, ProviderUnreachable
from app.core.idempotency import Claim, IdempotencyKeys, Stored, validate_key
from app.core.ids import has_prefix, new_id
from app.core.listing import Listing
from app.core.money import MAX_AMOUNT, Money, format_decimal, normalize_currency
from app.core.pubsub import Event, publish
from app.ledger import Ledger, Refs
from app.organizations import OrganizationService
from app.outgoing_webhooks import api_view, emit
from app.payments.model import Payment
from app.rollups import StatsRecorder
from app.stripe import StripeGateway, StripeRefund
from db.connection import Database, Row
from db.repositories.invoicing.invoices import InvoiceRepository
from db.repositories.payments import PaymentRepository
from db.repositories.refunds import RefundRepository

__all__ = [
    "TRANSITIONS",
    "Refund",
    "RefundAudit",
    "RefundFailed",
    "RefundReason",
    "RefundService",
    "RefundStatus",
    "audit_for",
    "refundable",
]

log = logging.getLogger(__name__)


class RefundStatus(enum.Enum):
    PENDING_APPROVAL = "pending_approval"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REJECTED = "rejected"


class RefundReason(enum.Enum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    OTHER = "other"


R = RefundStatus
# The same table as refunds_guard() in db/migrations/0003. A succeeded refund can still fail
# (the bank returns it): Stripe reports that, and the amount becomes refundable again.
TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    R.PENDING_APPROVAL: frozenset({R.PENDING, R.REJECTED}),
    R.PENDING: frozenset({R.SUCCEEDED, R.FAILED, R.CANCELED}),
    R.SUCCEEDED: frozenset({R.FAILED, R.CANCELED}),
    R.FAILED: frozenset(),
    R.CANCELED: frozenset(),
    R.REJECTED: frozenset(),
}
_FROM_STRIPE = {
    "pending": R.PENDING,
    "requires_action": R.PENDING,
    "succeeded": R.SUCCEEDED,
    "failed": R.FAILED,
    "canceled": R.CANCELED,
}


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    organization_id: str
    payment_id: str
    customer_id: str
    amount: Money
    reason: RefundReason
    note: str
    status: RefundStatus
    stripe_refund_id: str | None
    failure_reason: str | None
    requested_by: str
    approved_by: str | None
    approved_at: datetime | None
    rejected_by: str | None
    rejected_at: datetime | None
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Refund:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            payment_id=row["payment_id"],
            customer_id=row["customer_id"],
            amount=Money(row["amount"], row["currency"]),
            reason=RefundReason(row["reason"]),
            note=row["note"],
            status=RefundStatus(row["status"]),
            stripe_refund_id=row["stripe_refund_id"],
            failure_reason=row["failure_reason"],
            requested_by=row["requested_by"],
            approved_by=row["approved_by"],
            approved_at=row["approved_at"],
            rejected_by=row["rejected_by"],
            rejected_at=row["rejected_at"],
            rejection_reason=row["rejection_reason"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def committed(self) -> bool:
        """Counts against what the payment still has to refund."""
        return self.status in (R.PENDING_APPROVAL, R.PENDING, R.SUCCEEDED)


class RefundFailed(DomainError):
    """Stripe refused the refund: the error, with the refund recorded ``failed``."""

    def __init__(self, refund: Refund, error: DomainError) -> None:
        super().__init__(error.code, error.message, field=error.field, details=error.details)
        self.refund = refund


def refundable(
    payment: Payment, refunds: Sequence[Refund], credited: int = 0, room: int | None = None
) -> Money:
    """What can still be refunded: captured, minus refunds that succeeded, are in flight or
    await approval, minus ``credited``, the card money credit notes gave to the credit balance,
    and never more than ``room``, what the subscription whose invoice it paid still has to
    give back (the same sums ``refundCreate`` checks under the payment's row lock)."""
    committed = sum(r.amount.amount for r in refunds if r.committed)
    left = payment.amount_captured.amount - committed - credited
    if room is not None:
        left = min(left, room)
    return Money(max(left, 0), payment.amount.currency)


@dataclass(frozen=True, slots=True)
class RefundAudit:
    """Who asked for, approved and rejected a refund, and the words they left, as one caller
    may see them (None: hidden from that caller, or not set)."""

    requested_by: str | None
    note: str | None
    approved_by: str | None
    rejected_by: str | None
    rejection_reason: str | None


def audit_for(refund: Refund, actor: Principal | None) -> RefundAudit:
    """Customers never see staff identities nor what staff wrote: a customer token sees the
    requester and the note only of a refund it asked for itself, and never who approved or
    rejected it nor why (the status and times say what happened). Admins and services see all."""
    if actor is not None and actor.role is not Role.CUSTOMER:
        return RefundAudit(
            requested_by=refund.requested_by,
            note=refund.note,
            approved_by=refund.approved_by,
            rejected_by=refund.rejected_by,
            rejection_reason=refund.rejection_reason,
        )
    own = actor is not None and refund.requested_by == actor.subject
    return RefundAudit(
        requested_by=refund.requested_by if own else None,
        note=refund.note if own else None,
        approved_by=None,
        rejected_by=None,
        rejection_reason=None,
    )


# A refund in one of these will never pay out.
_UNPAID = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED, RefundStatus.REJECTED})


def _visible(actor: Principal, customer_id: str) -> bool:
    return actor.customer_id in (None, customer_id)


def _refunded_delta(old: RefundStatus, new: RefundStatus, amount: int) -> int:
    """How a status change moves the payment's refunded total."""
    return amount * ((new is R.SUCCEEDED) - (old is R.SUCCEEDED))


class RefundService:
    def __init__(
        self,
        db: Database,
        stripe: StripeGateway,
        keys: IdempotencyKeys,
        organizations: OrganizationService,
        *,
        lease: timedelta | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self._db = db
        self._ledger = ledger or Ledger(db)
        self._invoices = InvoiceRepository(db)
        self._stripe = stripe
        self._keys = keys
        self._organizations = organizations
        self._lease = lease or keys.lease
        self._refunds = RefundRepository(db)
        self._payments = PaymentRepository(db)
        self._stats = StatsRecorder(db)
        self.read = Listing(self._refunds, Refund.from_row)

    async def by_payment_ids(self, org: str, payment_ids: Sequence[str]) -> list[list[Refund]]:
        """Each payment's refunds, oldest first, aligned with ``payment_ids``: one statement."""
        grouped: dict[str, list[Refund]] = {p: [] for p in payment_ids}
        for row in await self._refunds.by_payment_ids(org, list(grouped)):
            grouped[row["payment_id"]].append(Refund.from_row(row))
        return [grouped[p] for p in payment_ids]

    # -- create ------------------------------------------------------------------------------

    async def create(
        self,
        org: str,
        actor: Principal,
        payment_id: str,
        *,
        amount: int | None,
        currency: str | None,
        reason: RefundReason,
        note: str,
        idempotency_key: str,
    ) -> Refund:
        """Reserve a refund of ``amount`` (default: all that is left) and send it to Stripe, or
        hold it for approval when it is asked for by a customer or would take the payment's
        cumulative refunds above the organization's threshold."""
        validate_key(idempotency_key)
        note = note.strip()
        if len(note) > 1000:
            raise DomainError(
                ErrorCode.INVALID, "A note is at most 1000 characters.", field=("input", "note")
            )
        if amount is not None:
            if not 0 < amount <= MAX_AMOUNT:
                raise DomainError(
                    ErrorCode.INVALID,
                    "A refund amount is more than zero minor units.",
                    field=("input", "amount", "amount"),
                )
            assert currency is not None  # MoneyInput has both
            try:
                currency = normalize_currency(currency)
            except DomainError as exc:
                raise exc.at(("input", "amount", "currency")) from None
        request = {
            "paymentId": payment_id,
            "amount": amount,
            "currency": currency,
            "reason": reason.value,
            "note": note,
        }

        async def work(claim: Claim) -> Refund:
            existing = await self._refunds.get(org, claim.resource_id)
            if existing is not None:  # reserved by an interrupted attempt with this key
                return await self._resume(org, existing, claim)
            return await self._reserve(
                org, actor, payment_id, amount, currency, reason, note, claim
            )

        return await self._keys.run(
            org,
            idempotency_key,
            operation="refundCreate",
            request=request,
            resource_id=new_id("re"),
            work=work,
            replay=lambda stored: self._replay(org, actor, stored),
        )

    async def _reserve(
        self,
        org: str,
        actor: Principal,
        payment_id: str,
        amount: int | None,
        currency: str | None,
        reason: RefundReason,
        note: str,
        claim: Claim,
    ) -> Refund:
        async with self._db.transaction():
            payment = (
                await self._payments.lock(org, payment_id)
                if has_prefix(payment_id, "pay")
                else None
            )
            if payment is None or not _visible(actor, payment["customer_id"]):
                raise NotFound("Payment", ("input", "paymentId"))
            if payment["status"] != "succeeded":
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    f"Only a succeeded payment can be refunded; this one is "
                    f"{payment['status'].replace('_', ' ')}.",
                    field=("input", "paymentId"),
                )
            payment_currency = payment["currency"]
            if currency is not None and currency != payment_currency:
                raise DomainError(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"The payment is in {payment_currency}, not {currency}.",
                    field=("input", "amount", "currency"),
                )
            committed, refundable = await self._refund_room(org, payment)
            value = refundable if amount is None else amount
            if value <= 0 or value > refundable:
                left = format_decimal(max(refundable, 0), payment_currency)
                raise DomainError(
                    ErrorCode.AMOUNT_EXCEEDS_REFUNDABLE,
                    f"At most {left} {payment_currency} of this payment is still refundable "
                    "(captured, minus refunds succeeded, in flight or awaiting approval, and "
                    "minus what credit notes gave to the customer's credit balance).",
                    field=("input", "amount") if amount is not None else ("input", "paymentId"),
                )
            # The threshold bounds what one payment returns without a second person, so it
            # applies to the cumulative amount (``committed`` is read under the payment's row
            # lock: concurrent refunds of the payment see each other), not to each refund:
            # three refunds of 10.00 under a 10.00 threshold do not all go through.
            held = actor.role is Role.CUSTOMER or await self._organizations.needs_refund_approval(
                org, Money(committed + value, payment_currency)
            )
            row = await self._refunds.insert(
                {
                    "organization_id": org,
                    "id": claim.resource_id,
                    "payment_id": payment_id,
                    "customer_id": payment["customer_id"],
                    "amount": value,
                    "currency": payment_currency,
                    "reason": reason.value,
                    "note": note,
                    "status": (R.PENDING_APPROVAL if held else R.PENDING).value,
                    "requested_by": actor.subject,
                    "stripe_idempotency_key": None if held else claim.stripe_key("refund"),
                    "lease_token": None if held else claim.token,
                    "lease_until": None if held else self._lease_end(),
                }
            )
            assert row is not None  # refunds have no natural unique key
            if held:
                await self._keys.complete(claim)
            await self._announce(row)
        if held:
            return Refund.from_row(row)
        return await self._submit(org, row, claim.token, claim=claim, look_first=False)

    # -- refunds that credit notes make -------------------------------------------------------

    async def payment_room(self, org: str, payment_id: str) -> tuple[Row, int, int]:
        """The payment locked until the caller's transaction ends, its refunds and what it may
        still refund (``_refund_room``)."""
        payment = await self._payments.lock(org, payment_id)
        assert payment is not None  # invoices reference their payment
        committed, refundable = await self._refund_room(org, payment)
        return payment, committed, refundable

    async def direct_refunds(self, org: str, payment_id: str) -> int:
        """The payment's refunds that no credit note made, succeeded, in flight or awaiting
        approval (read in the caller's transaction)."""
        return await self._refunds.direct_committed_amount(org, payment_id)

    async def reserve_for_credit_note(
        self,
        org: str,
        actor: Principal,
        payment: Row,
        *,
        amount: int,
        credit_note_id: str,
        label: str,
    ) -> str:
        """Reserve the refund a credit note pays out, in the note's transaction (the payment is
        locked by ``payment_room``); ``send_reserved`` sends it once that has committed. Held
        for approval like any refund that takes the payment past the organization's threshold.
        Returns the refund's id."""
        committed = await self._refunds.committed_amount(org, payment["id"])
        held = actor.role is Role.CUSTOMER or await self._organizations.needs_refund_approval(
            org, Money(committed + amount, payment["currency"])
        )
        refund_id = new_id("re")
        row = await self._refunds.insert(
            {
                "organization_id": org,
                "id": refund_id,
                "payment_id": payment["id"],
                "customer_id": payment["customer_id"],
                "amount": amount,
                "currency": payment["currency"],
                "reason": RefundReason.REQUESTED_BY_CUSTOMER.value,
                "note": f"Credit note {label}",
                "status": (R.PENDING_APPROVAL if held else R.PENDING).value,
                "requested_by": actor.subject,
                "stripe_idempotency_key": None if held else f"credit-note-refund-{credit_note_id}",
                "credit_note_id": credit_note_id,
            }
        )
        assert row is not None  # a fresh id
        await self._announce(row)
        return refund_id

    async def send_reserved(self, org: str, refund_id: str, *, retry: bool) -> Refund | None:
        """Send a reserved refund to Stripe unless it has been (or waits for approval). A refusal
        by Stripe leaves it failed (a credit note's amount then goes to the credit balance); an
        unreachable Stripe leaves it to the next ``send_reserved``, ``refundRefresh`` or retry.
        ``retry``: an earlier attempt may have reached Stripe, so look there first."""
        row = await self._refunds.get(org, refund_id)
        if row is None:
            return None
        if row["status"] != R.PENDING.value or row["stripe_refund_id"] is not None:
            return Refund.from_row(row)
        try:
            return await self._submit(org, row, secrets.token_hex(16), claim=None, look_first=retry)
        except RefundFailed as exc:
            return exc.refund
        except (ProviderUnreachable, DomainError) as exc:
            log.warning("refund %s not sent to Stripe yet: %s", refund_id, type(exc).__name__)
            return Refund.from_row(row)

    async def send_unsent(
        self,
        *,
        older_than: timedelta = timedelta(minutes=2),
        limit: int = 100,
        org: str | None = None,
    ) -> int:
        """Send refunds whose request died (or whose Stripe call got no answer) and that no one
        retried: the worker's housekeeping. Each is looked for at Stripe first (the dead
        request may have reached it), then sent or recorded once. Returns how many now have
        an outcome (sent, found at Stripe, or refused there)."""
        settled = 0
        for row in await self._refunds.unsent(older_than=older_than, limit=limit, org=org):
            refund = await self.send_reserved(row["organization_id"], row["id"], retry=True)
            if refund is not None and (
                refund.status is not R.PENDING or refund.stripe_refund_id is not None
            ):
                settled += 1
        if settled:
            log.info("sent %d refunds left unsent by interrupted requests", settled)
        return settled

    async def send_reserved_for_credit_note(self, org: str, credit_note_id: str) -> None:
        """Finish sending a credit note's refund (a retry of the note's request)."""
        row = await self._refunds.of_credit_note(org, credit_note_id)
        if row is not None:
            await self.send_reserved(org, row["id"], retry=True)

    async def _resume(self, org: str, row: Row, claim: Claim) -> Refund:
        """Finish what an interrupted request with the same key started."""
        if row["status"] == R.PENDING.value and row["stripe_refund_id"] is None:
            return await self._submit(org, row, claim.token, claim=claim, look_first=True)
        async with self._db.transaction():
            await self._keys.complete(claim)
        return Refund.from_row(row)

    # -- approval ----------------------------------------------------------------------------

    async def approve(
        self, org: str, actor: Principal, refund_id: str, *, idempotency_key: str
    ) -> Refund:
        """Release a refund waiting for approval to Stripe; records who approved it. The
        approver must not be the requester."""
        validate_key(idempotency_key)

        async def work(claim: Claim) -> Refund:
            row = await self._get(org, actor, refund_id)
            key = claim.stripe_key("refund")
            if row["status"] == R.PENDING.value and row["stripe_idempotency_key"] == key:
                return await self._resume(org, row, claim)  # this approval was interrupted
            if row["status"] != R.PENDING_APPROVAL.value:
                raise self._wrong_state(row, "approved")
            if row["requested_by"] == actor.subject:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    "A refund is approved by someone other than who requested it.",
                    field=("input", "refundId"),
                )
            async with self._db.transaction():
                approved = await self._refunds.transition(
                    org,
                    refund_id,
                    from_statuses=[R.PENDING_APPROVAL.value],
                    values={
                        "status": R.PENDING.value,
                        "approved_by": actor.subject,
                        "approved_at": sa.func.now(),
                        "stripe_idempotency_key": key,
                        "lease_token": claim.token,
                        "lease_until": self._lease_end(),
                    },
                )
                if approved is None:
                    raise self._wrong_state(await self._get(org, actor, refund_id), "approved")
                await self._announce(approved)
            return await self._submit(org, approved, claim.token, claim=claim, look_first=False)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="refundApprove",
            request={"refundId": refund_id},
            resource_id=refund_id,
            work=work,
            replay=lambda stored: self._replay(org, actor, stored),
        )

    async def reject(self, org: str, actor: Principal, refund_id: str, *, reason: str) -> Refund:
        """Refuse a refund waiting for approval; its amount becomes refundable again."""
        why = reason.strip()
        if not 1 <= len(why) <= 1000:
            raise DomainError(
                ErrorCode.REQUIRED if not why else ErrorCode.INVALID,
                "Say why, in 1-1000 characters.",
                field=("input", "reason"),
            )
        row = await self._get(org, actor, refund_id)
        async with self._db.transaction():
            rejected = await self._refunds.transition(
                org,
                refund_id,
                from_statuses=[R.PENDING_APPROVAL.value],
                values={
                    "status": R.REJECTED.value,
                    "rejected_by": actor.subject,
                    "rejected_at": sa.func.now(),
                    "rejection_reason": why,
                },
            )
            if rejected is None:
                raise self._wrong_state(await self._get(org, actor, refund_id) or row, "rejected")
            await self._post(org, rejected, R.PENDING_APPROVAL, R.REJECTED)
            await self._announce(rejected)
        return Refund.from_row(rejected)

    # -- following Stripe --------------------------------------------------------------------

    async def refresh(self, org: str, actor: Principal, refund_id: str) -> Refund:
        """Bring the refund up to date with Stripe. A refund released to Stripe whose request
        was interrupted is looked up there (by its id in the metadata) and, if Stripe never got
        it, sent with the Stripe idempotency key it was released with."""
        row = await self._get(org, actor, refund_id)
        status = RefundStatus(row["status"])
        if status is R.PENDING and row["stripe_refund_id"] is None:
            token = secrets.token_hex(16)
            return await self._submit(org, row, token, claim=None, look_first=True)
        if status not in (R.PENDING, R.SUCCEEDED) or row["stripe_refund_id"] is None:
            return Refund.from_row(row)
        remote = await self._stripe.retrieve_refund(row["stripe_refund_id"])
        return await self._record(org, row, remote, token=None, claim=None)

    async def _submit(
        self, org: str, row: Row, token: str, *, claim: Claim | None, look_first: bool
    ) -> Refund:
        """Send a reserved refund to Stripe (once) and record Stripe's answer."""
        if row["lease_token"] != token:
            leased = await self._refunds.claim_submission(
                org,
                row["id"],
                token=token,
                key=claim.stripe_key("refund") if claim else f"refresh-{token}",
                lease=self._lease,
            )
            if leased is None:
                current = await self._refunds.get(org, row["id"])
                assert current is not None
                if current["status"] == R.PENDING.value and current["stripe_refund_id"] is None:
                    raise DomainError(
                        ErrorCode.OPERATION_IN_PROGRESS,
                        "This refund is being sent to the payment provider; retry in a moment.",
                        field=("input", "refundId"),
                    )
                if claim is not None:
                    async with self._db.transaction():
                        await self._keys.complete(claim)
                return Refund.from_row(current)
            row = leased
        payment = await self._payments.get(org, row["payment_id"])
        assert payment is not None
        intent = payment["stripe_payment_intent_id"]
        try:
            remote = None
            if look_first:
                remote = await self._stripe.find_refund(intent, refund_id=row["id"])
            if remote is None:
                remote = await self._stripe.create_refund(
                    idempotency_key=row["stripe_idempotency_key"],
                    payment_intent=intent,
                    amount=row["amount"],
                    metadata={
                        "billing_organization": org,
                        "refund_id": row["id"],
                        "payment_id": row["payment_id"],
                        "reason": row["reason"],
                    },
                )
        except ProviderUnreachable:
            await self._refunds.abandon(org, row["id"], token=token)
            raise
        except DomainError as exc:
            failed = await self._fail(org, row, token, exc, claim)
            raise RefundFailed(failed, exc) from exc
        return await self._record(org, row, remote, token=token, claim=claim)

    async def _record(
        self,
        org: str,
        row: Row,
        remote: StripeRefund,
        *,
        token: str | None,
        claim: Claim | None,
    ) -> Refund:
        old = RefundStatus(row["status"])
        new = _FROM_STRIPE.get(remote.status, R.PENDING)
        if new is not old and new not in TRANSITIONS[old]:
            log.warning("refund %s: Stripe reports %s after %s; kept", row["id"], new, old)
            new = old
        async with self._db.transaction():
            done = await self._refunds.transition(
                org,
                row["id"],
                from_statuses=[old.value],
                values={
                    "status": new.value,
                    "stripe_refund_id": remote.id,
                    "failure_reason": remote.failure_reason if new is R.FAILED else None,
                },
                token=token,
            )
            if done is None:
                raise DomainError(
                    ErrorCode.OPERATION_IN_PROGRESS,
                    "This refund changed meanwhile; read it again.",
                    field=("input", "refundId"),
                )
            delta = _refunded_delta(old, new, row["amount"])
            if delta:
                await self._payments.add_refunded(org, row["payment_id"], delta)
                # The one change that moves a refund into or out of SUCCEEDED, the only
                # status statistics count.
                await self._stats.refund_changed(row, done)
            await self._post(org, done, old, new)
            if claim is not None:
                await self._keys.complete(claim)
            if new is not old:
                await self._announce(done)
        return Refund.from_row(done)

    async def _fail(
        self, org: str, row: Row, token: str, error: DomainError, claim: Claim | None
    ) -> Refund:
        """Stripe refused the refund: record it failed, which frees its amount."""
        async with self._db.transaction():
            done = await self._refunds.transition(
                org,
                row["id"],
                from_statuses=[R.PENDING.value],
                values={
                    "status": R.FAILED.value,
                    "failure_reason": f"refused by the payment provider "
                    f"({error.details.get('provider_code', error.code.value)})",
                },
                token=token,
            )
            assert done is not None  # we hold the lease
            await self._post(org, done, R.PENDING, R.FAILED)
            if claim is not None:
                await self._keys.complete(claim, error=error)
            await self._announce(done)
        return Refund.from_row(done)

    # -- helpers -----------------------------------------------------------------------------

    async def _refund_room(self, org: str, payment: Row) -> tuple[int, int]:
        """The payment's refunds (succeeded, in flight or awaiting approval) and what it may
        still refund (call under its row lock): what it captured, less those refunds and the
        card money credit notes gave to the customer's credit balance (a refund and a credit
        note come out of the same amount); for a subscription's invoice, never more than what
        the subscription still has to give back (``Ledger.subscription_room``: its credit for
        unused time came out of the same payment)."""
        committed = await self._refunds.committed_amount(org, payment["id"])
        credited = (await self._ledger.payment_position(org, payment["id"])).credited_to_balance
        room = int(payment["amount_captured"]) - committed - credited
        invoice = await self._invoices.paid_by(org, payment["id"])
        if invoice is not None and invoice["subscription_id"] is not None and room > 0:
            # What the subscription gave back otherwise (credit for unused time) is spoken for.
            subscription = await self._ledger.subscription_room(org, invoice["subscription_id"])
            room = min(room, max(subscription, 0))
        return committed, room

    async def _post(self, org: str, row: Row, old: RefundStatus, new: RefundStatus) -> None:
        """Post what a status change moved (in its transaction): money returned when a refund
        succeeds (and back when Stripe reverses it); a credit note's refund that will never be
        paid (failed, canceled, rejected) goes to the customer's credit balance instead."""
        if new is old:
            return
        amount, credit_note_id = row["amount"], row["credit_note_id"]
        invoice = await self._invoices.paid_by(org, row["payment_id"])
        refs = Refs(
            row["customer_id"],
            row["currency"],
            invoice_id=invoice["id"] if invoice is not None else None,
            payment_id=row["payment_id"],
            refund_id=row["id"],
            credit_note_id=credit_note_id,
        )
        if new is R.SUCCEEDED:
            await self._ledger.refund_succeeded(org, refs, amount)
        elif old is R.SUCCEEDED:
            await self._ledger.refund_succeeded(org, refs, -amount)
        if credit_note_id is not None and new in _UNPAID:
            await self._ledger.credit_note_refund_failed(
                org, replace(refs, payment_id=None), amount
            )

    async def _get(self, org: str, actor: Principal, refund_id: str) -> Row:
        row = await self._refunds.get(org, refund_id) if has_prefix(refund_id, "re") else None
        if row is None or not _visible(actor, row["customer_id"]):
            raise NotFound("Refund", ("input", "refundId"))
        return row

    @staticmethod
    def _wrong_state(row: Row, verb: str) -> DomainError:
        status = row["status"].replace("_", " ")
        return DomainError(
            ErrorCode.INVALID_STATE,
            f"A {status} refund cannot be {verb}; only one waiting for approval can.",
            field=("input", "refundId"),
        )

    def _lease_end(self) -> Any:
        return sa.func.now() + sa.literal(self._lease, sa.Interval())

    async def _replay(self, org: str, actor: Principal, stored: Stored) -> Refund:
        row = await self._refunds.get(org, stored.resource_id)
        if row is None or not _visible(actor, row["customer_id"]):
            raise NotFound("Refund", ("input", "refundId"))
        refund = Refund.from_row(row)
        if stored.error is not None:
            raise RefundFailed(refund, stored.error)
        return refund

    async def _announce(self, row: Mapping[str, Any]) -> None:
        """A refund changed status (in the transaction that changes it): the live event, and
        for a refund that succeeded or failed, the outgoing webhook event."""
        if row["status"] in (R.SUCCEEDED.value, R.FAILED.value):
            view = api_view(Refund.from_row(row), typename="Refund")
            await emit(self._db, row["organization_id"], f"refund.{row['status']}", view)
        await publish(
            self._db,
            Event(
                org=row["organization_id"],
                kind="refund",
                id=row["id"],
                data={
                    "status": row["status"],
                    "payment_id": row["payment_id"],
                    "customer_id": row["customer_id"],
                    "at": row["updated_at"].isoformat(),
                },
            ),
        )
