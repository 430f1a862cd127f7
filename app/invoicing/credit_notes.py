"""Credit notes: documents that reduce what a finalized invoice charges, with their own gapless
numbers (``ACME-CN-2026-000001``).

A credit note is issued against an open or paid invoice, for lines the issuer chooses (a refund,
a proration credit, a goodwill gesture), taxed like the invoice (same rate, inclusive or not,
reverse charge), up to what the invoice has not yet credited. Its total goes:

1. first to what is still due on an open invoice (which is paid once nothing is left);
2. on a paid invoice with the ``refund`` settlement, to a refund of the invoice's payment, at
   most what that payment may still refund (the note makes the refund itself);
3. the rest back where it came from, as credit balance: first the credit balance the invoice
   spent, then card money (which the payment can then no longer refund: a refund and a credit
   to the balance come out of the same amount).

Its tax is the invoice's tax in proportion to what all its notes credit (rounded on the
cumulative amount), so crediting an invoice in pieces gives back exactly its tax. Everything a
note moves is posted to the ledger in its transaction; what may still be credited and refunded
is read back from there.

This module stays over 500 lines on purpose: issuing a note (its checks, tax, and the order in
which its total is settled above) is one transaction, best read in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.catalog import TaxRate
from app.core.auth import Principal
from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.idempotency import Claim, IdempotencyKeys, Stored
from app.core.ids import new_id
from app.core.listing import Listing
from app.core.money import MAX_AMOUNT, Money, row_money
from app.core.pubsub import Event, publish
from app.customers import CustomerService
from app.invoicing.math import (
    InvoiceTotals,
    LineDraft,
    LineKind,
    compute_totals,
    credited_tax,
    tax_line,
)
from app.invoicing.model import Invoice, InvoiceStatus, customer_snapshot, invoice_view
from app.invoicing.numbering import InvoiceSettingsService, Series
from app.ledger import InvoicePosition, Ledger, Refs
from app.outgoing_webhooks import api_view, emit
from app.payments import RefundService
from db.connection import Database, Row
from db.repositories.invoicing.credit_notes import CreditNoteLineRepository, CreditNoteRepository
from db.repositories.invoicing.invoices import InvoiceRepository

__all__ = [
    "CreditNote",
    "CreditNoteDraft",
    "CreditNoteLine",
    "CreditNoteLineInput",
    "CreditNoteReason",
    "CreditNoteService",
    "CreditSettlement",
]

_MAX_LINES = 200
_MAX_MEMO = 2000
_CREDITABLE = (InvoiceStatus.OPEN.value, InvoiceStatus.PAID.value)


# Kept internal in outgoing webhook events, as in the API.
_NOTE_INTERNAL = frozenset({"customer_snapshot", "issuer_snapshot", "number_sequence"})


class CreditNoteReason(enum.Enum):
    REFUND = "refund"
    PRORATION = "proration"
    GOODWILL = "goodwill"
    DUPLICATE = "duplicate"
    OTHER = "other"


class CreditSettlement(enum.Enum):
    BALANCE = "balance"
    REFUND = "refund"


@dataclass(frozen=True)
class CreditNoteLineInput:
    description: str
    unit_amount: int
    quantity: int = 1


@dataclass(frozen=True)
class CreditNoteDraft:
    invoice_id: str
    lines: Sequence[CreditNoteLineInput]
    reason: CreditNoteReason
    settlement: CreditSettlement = CreditSettlement.BALANCE
    memo: str = ""


@dataclass(frozen=True, slots=True)
class CreditNoteLine:
    id: str
    credit_note_id: str
    position: int
    kind: LineKind
    description: str
    quantity: int
    unit_amount: Money
    amount: Money
    tax_rate: int | None
    informational: bool

    @classmethod
    def from_row(cls, row: Row) -> CreditNoteLine:
        money = row_money(row)
        return cls(
            id=row["id"],
            credit_note_id=row["credit_note_id"],
            position=row["position"],
            kind=LineKind(row["kind"]),
            description=row["description"],
            quantity=row["quantity"],
            unit_amount=money("unit_amount"),
            amount=money("amount"),
            tax_rate=row["tax_rate"],
            informational=row["informational"],
        )


@dataclass(frozen=True, slots=True)
class CreditNote:
    id: str
    organization_id: str
    number: str
    number_sequence: int
    invoice_id: str
    customer_id: str
    currency: str
    reason: CreditNoteReason
    settlement: CreditSettlement
    memo: str
    subtotal: Money
    tax_total: Money
    tax_inclusive: bool
    total: Money
    applied_to_invoice: Money
    credited_to_balance: Money
    refunded: Money
    customer_snapshot: dict[str, Any]
    issuer_snapshot: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> CreditNote:
        currency = row["currency"]
        money = row_money(row)

        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            number=row["number"],
            number_sequence=row["number_sequence"],
            invoice_id=row["invoice_id"],
            customer_id=row["customer_id"],
            currency=currency,
            reason=CreditNoteReason(row["reason"]),
            settlement=CreditSettlement(row["settlement"]),
            memo=row["memo"],
            subtotal=money("subtotal"),
            tax_total=money("tax_total"),
            tax_inclusive=row["tax_inclusive"],
            total=money("total"),
            applied_to_invoice=money("applied_to_invoice"),
            credited_to_balance=money("credited_to_balance"),
            refunded=money("refunded"),
            customer_snapshot=row["customer_snapshot"],
            issuer_snapshot=row["issuer_snapshot"],
            created_at=row["created_at"],
        )


def _lines(draft: CreditNoteDraft) -> tuple[list[LineDraft], list[DomainError]]:
    path = ("input", "lines")
    errors: list[DomainError] = []
    drafts: list[LineDraft] = []
    if not draft.lines:
        errors.append(DomainError(ErrorCode.REQUIRED, "A credit note needs a line.", field=path))
    if len(draft.lines) > _MAX_LINES:
        errors.append(DomainError(ErrorCode.INVALID, f"At most {_MAX_LINES} lines.", field=path))
        return drafts, errors
    for index, line in enumerate(draft.lines):
        at = (*path, str(index))
        if not 0 < line.unit_amount <= MAX_AMOUNT:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "A credited unit amount is more than zero (the credit itself).",
                    field=(*at, "unitAmount"),
                )
            )
            continue
        if line.quantity < 1:
            errors.append(
                DomainError(
                    ErrorCode.INVALID, "A credited quantity is at least 1.", field=(*at, "quantity")
                )
            )
            continue
        try:
            drafts.append(
                LineDraft(
                    description=line.description.strip(),
                    quantity=line.quantity,
                    unit_amount=line.unit_amount,
                    kind=LineKind.ONE_OFF,
                )
            )
        except DomainError as exc:
            errors.append(exc.at((*at, *(exc.field or ()))))
    return drafts, errors


def _credit_totals(
    lines: list[LineDraft], invoice: Invoice, position: InvoicePosition
) -> InvoiceTotals:
    """The note's lines and totals, taxed like the invoice. The tax is the invoice's tax in
    proportion to what all its credit notes credit, rounded on the cumulative amount, so notes in
    pieces add up exactly to the invoice's tax (``app.invoicing.math.credited_tax``)."""
    try:
        plain = compute_totals(lines, invoice.currency)
    except DomainError as exc:
        raise exc.at(("input", "lines")) from None
    computed = list(plain.lines)
    subtotal, tax, inclusive = plain.subtotal, 0, invoice.tax_inclusive
    if invoice.reverse_charge:
        suffix = f" ({invoice.tax_name})" if invoice.tax_name else ""
        computed.append(tax_line(f"Reverse charge{suffix}", 0, 0, informational=False))
    elif invoice.tax_name is not None and invoice.tax_rate is not None:
        invoice_tax = invoice.tax_total.amount
        if inclusive:  # amounts are gross: the share of the invoice's gross total
            basis, before = invoice.total.amount, position.credited
        else:  # amounts are net: the share of the invoice's net total
            basis = invoice.total.amount - invoice_tax
            before = position.credited - position.credited_tax
        tax = credited_tax(invoice_tax, basis, before, before + subtotal)
        rate = TaxRate(invoice.tax_name, invoice.tax_rate, inclusive)
        label = f"{rate.name} {rate.percent}%{' included' if inclusive else ''}"
        computed.append(tax_line(label, rate.rate, tax, informational=inclusive))
    total = subtotal if inclusive else subtotal + tax
    return InvoiceTotals(
        currency=invoice.currency,
        lines=tuple(computed),
        subtotal=subtotal,
        discount_total=0,
        taxable_amount=subtotal - tax if inclusive else subtotal,
        tax_total=tax,
        tax_inclusive=inclusive,
        total=total,
        balance_applied=0,
        amount_due=0,
        credit_to_balance=0,
    )


class CreditNoteService:
    def __init__(
        self,
        db: Database,
        *,
        customers: CustomerService,
        settings: InvoiceSettingsService,
        idempotency: IdempotencyKeys,
        ledger: Ledger,
        refunds: RefundService,
    ) -> None:
        self._db = db
        self._customers = customers
        self._ledger = ledger
        self._refunds = refunds
        self._settings = settings
        self._keys = idempotency
        self._notes = CreditNoteRepository(db)
        self._note_lines = CreditNoteLineRepository(db)
        self._invoices = InvoiceRepository(db)
        self.read = Listing(self._notes, CreditNote.from_row)

    async def create(
        self, org: str, actor: Principal, draft: CreditNoteDraft, *, idempotency_key: str
    ) -> CreditNote:
        """Issue a credit note at most once per idempotency key. With the ``refund``
        settlement, the refund it makes is sent to Stripe once the note is committed (held
        for approval past the organization's threshold, as any refund); a retry with the same
        key sends it if that was interrupted."""
        lines, errors = _lines(draft)
        memo = draft.memo.strip()
        if len(memo) > _MAX_MEMO:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    f"The memo is at most {_MAX_MEMO} characters.",
                    field=("input", "memo"),
                )
            )
        if errors:
            raise ValidationFailed(errors)
        request = {
            "invoice_id": draft.invoice_id,
            "lines": [[line.description, line.quantity, line.unit_amount] for line in lines],
            "reason": draft.reason.value,
            "settlement": draft.settlement.value,
            "memo": memo,
        }

        async def work(claim: Claim) -> CreditNote:
            async with self._db.transaction():
                note, refund_id = await self._issue(
                    org, actor, claim.resource_id, draft, lines, memo
                )
                await self._keys.complete(claim)
            if refund_id is not None:
                await self._refunds.send_reserved(org, refund_id, retry=False)
            return note

        async def replay(stored: Stored) -> CreditNote:
            if stored.error is not None:
                raise stored.error
            (note,) = await self.read.by_ids(org, [stored.resource_id])
            assert note is not None  # completed keys point at committed credit notes
            await self._refunds.send_reserved_for_credit_note(org, note.id)
            return note

        return await self._keys.run(
            org,
            idempotency_key,
            operation="credit_note.create",
            request=request,
            resource_id=new_id("cn"),
            work=work,
            replay=replay,
        )

    async def _issue(
        self,
        org: str,
        actor: Principal,
        note_id: str,
        draft: CreditNoteDraft,
        lines: list[LineDraft],
        memo: str,
    ) -> tuple[CreditNote, str | None]:
        """Issue the note in the caller's transaction; returns it and the refund it reserved
        (to send to Stripe once this transaction has committed), if any."""
        row = await self._invoices.lock_in(org, draft.invoice_id, _CREDITABLE)
        if row is None:
            raise await self._refusal(org, draft.invoice_id)
        invoice = Invoice.from_row(row)
        if invoice.payment_in_progress and invoice.status is InvoiceStatus.OPEN:
            raise DomainError(
                ErrorCode.OPERATION_IN_PROGRESS,
                "A payment of this invoice is in flight; credit it when that has finished.",
                field=("input", "invoiceId"),
            )
        position = await self._ledger.invoice_position(org, invoice.id)
        totals = _credit_totals(lines, invoice, position)
        open_invoice = invoice.status is InvoiceStatus.OPEN
        refunded = position.refunded_directly
        if invoice.payment_id is not None:
            # Refunds awaiting approval or in flight have not moved the books yet, but their
            # money is spoken for as much as a refund that succeeded.
            pending = await self._refunds.direct_refunds(org, invoice.payment_id)
            refunded = max(refunded, pending)
        creditable = max(invoice.total.amount, 0) - position.credited - refunded
        why = "its total, less earlier credit notes and refunds of its payment"
        if invoice.subscription_id is not None:
            # What goes back to the customer (all but what lowers an open invoice's debt) never
            # exceeds what the subscription still has to give back: its credit for unused time
            # came out of the same payments (``Ledger.subscription_room``).
            room = await self._ledger.subscription_room(org, invoice.subscription_id)
            owed = max(position.receivable, 0) if open_invoice else 0
            if owed + max(room, 0) < creditable:
                creditable = owed + max(room, 0)
                why = (
                    "what the customer paid for the subscription and was not given back yet, "
                    "credit for unused time included"
                )
        if totals.total > creditable:
            raise DomainError(
                ErrorCode.AMOUNT_EXCEEDS_CREDITABLE,
                f"The credit note totals {Money(totals.total, invoice.currency).decimal} "
                f"{invoice.currency} but only {Money(max(creditable, 0), invoice.currency).decimal}"
                f" of the invoice can still be credited ({why}).",
                field=("input", "lines"),
            )
        applied = min(totals.total, max(position.receivable, 0)) if open_invoice else 0
        leftover = totals.total - applied
        refund = balance_returned = card_credited = 0
        payment: Row | None = None
        if leftover:
            card_room = 0
            if invoice.payment_id is not None:
                payment, _, card_room = await self._refunds.payment_room(org, invoice.payment_id)
            # A refund pays back card money; what is left returns where it came from: first
            # the credit balance the invoice spent, then the card money, to the balance.
            if draft.settlement is CreditSettlement.REFUND and not open_invoice:
                refund = min(leftover, max(card_room, 0))
            rest = leftover - refund
            balance_returned = min(rest, position.paid_by_balance - position.balance_returned)
            card_credited = rest - balance_returned
        (customer,) = await self._customers.read.by_ids(org, [invoice.customer_id])
        assert customer is not None  # invoices reference their customer (foreign key)
        settled = open_invoice and applied == invoice.amount_remaining.amount
        values: dict[str, Any] = {
            "amount_credited": invoice.amount_credited.amount + totals.total,
            "credit_applied": invoice.credit_applied.amount + applied,
            "amount_due": invoice.amount_due.amount - applied,
        }
        if settled:
            values.update(status=InvoiceStatus.PAID.value, paid_at=datetime.now(UTC))
        updated = await self._invoices.transition(
            org, invoice.id, allowed=[invoice.status.value], values=values
        )
        assert updated is not None  # locked above
        await self._ledger.credit_note_issued(
            org,
            Refs(
                invoice.customer_id,
                invoice.currency,
                invoice_id=invoice.id,
                credit_note_id=note_id,
                subscription_id=invoice.subscription_id,
            ),
            total=totals.total,
            tax=totals.tax_total,
            applied_to_invoice=applied,
            balance_returned=balance_returned,
            card_credited=card_credited,
            refund=refund,
            payment_id=invoice.payment_id,
        )
        settings = await self._settings.get(org)
        # Last: the counter row stays locked until commit.
        number = await self._settings.next_number(org, Series.CREDIT_NOTE)
        note_row = await self._notes.insert(
            {
                "organization_id": org,
                "id": note_id,
                "number": number.number,
                "number_sequence": number.sequence,
                "invoice_id": invoice.id,
                "customer_id": invoice.customer_id,
                "currency": invoice.currency,
                "reason": draft.reason.value,
                "settlement": draft.settlement.value,
                "memo": memo,
                "subtotal": totals.subtotal,
                "tax_total": totals.tax_total,
                "tax_inclusive": totals.tax_inclusive,
                "total": totals.total,
                "applied_to_invoice": applied,
                "credited_to_balance": balance_returned + card_credited,
                "refunded": refund,
                "customer_snapshot": invoice.customer_snapshot or customer_snapshot(customer),
                "issuer_snapshot": settings.issuer_snapshot(),
            }
        )
        assert note_row is not None
        await self._note_lines.insert_many(_line_rows(org, note_id, totals))
        note = CreditNote.from_row(note_row)
        refund_id = None
        if refund:
            assert payment is not None  # a refund needs the invoice's payment
            refund_id = await self._refunds.reserve_for_credit_note(
                org,
                actor,
                payment,
                amount=refund,
                credit_note_id=note.id,
                label=note.number,
            )
        await publish(
            self._db,
            Event(
                org,
                "credit_note",
                note.id,
                {"invoice_id": invoice.id, "total": note.total.amount, "currency": note.currency},
            ),
        )
        await emit(
            self._db,
            org,
            "credit_note.created",
            api_view(note, typename="CreditNote", hide=_NOTE_INTERNAL),
        )
        if settled:
            changed = Invoice.from_row(updated)
            await emit(self._db, org, "invoice.paid", invoice_view(changed))
            await publish(
                self._db,
                Event(
                    org,
                    "invoice",
                    changed.id,
                    {"status": changed.status.value, "number": changed.number},
                ),
            )
        return note, refund_id

    async def _refusal(self, org: str, invoice_id: str) -> DomainError:
        (row,) = await self._invoices.by_ids(org, [invoice_id])
        if row is None:
            return NotFound("Invoice", ("input", "invoiceId"))
        return DomainError(
            ErrorCode.INVALID_STATE,
            f"Only open or paid invoices can be credited; this one is {row['status']}.",
            field=("input", "invoiceId"),
        )

    async def lines_of(self, org: str, note_ids: Sequence[str]) -> list[list[CreditNoteLine]]:
        grouped = await self._note_lines.by_credit_note_ids(org, note_ids)
        return [[CreditNoteLine.from_row(row) for row in grouped[i]] for i in note_ids]

    async def lines_by_ids(
        self, org: str, ids: Sequence[str]
    ) -> list[tuple[CreditNoteLine, str] | None]:
        """Lines by id, each with its credit note's customer, aligned with ``ids``."""
        found = await self._note_lines.by_ids(org, ids)
        return [
            (CreditNoteLine.from_row(found[i]), found[i]["customer_id"]) if i in found else None
            for i in ids
        ]

    async def of_invoices(self, org: str, invoice_ids: Sequence[str]) -> list[list[CreditNote]]:
        grouped = await self._notes.by_invoice_ids(org, invoice_ids)
        return [[CreditNote.from_row(row) for row in grouped[i]] for i in invoice_ids]


def _line_rows(org: str, note_id: str, totals: InvoiceTotals) -> list[dict[str, Any]]:
    return [
        {
            "organization_id": org,
            "id": new_id("cnl"),
            "credit_note_id": note_id,
            "position": position,
            "kind": line.kind.value,
            "description": line.description,
            "quantity": line.quantity,
            "unit_amount": line.unit_amount,
            "amount": line.amount,
            "tax_rate": line.tax_rate,
            "informational": line.informational,
        }
        for position, line in enumerate(totals.lines)
    ]
