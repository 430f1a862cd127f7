"""Invoices and credit notes as printed: what goes on the PDF, loaded for one caller.

A finalized document prints the customer and issuer it was issued to and by (snapshots), a draft
the current ones. ``app.invoicing.pdf`` (fpdf2, about 0.5 s to import) is imported by the first
rendering, and building and rendering run in a worker thread so they never block the event
loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.core.auth import Principal
from app.core.ids import has_prefix
from app.core.money import format_decimal
from app.customers import CustomerService
from app.invoicing.credit_notes import CreditNote, CreditNoteLine, CreditNoteService
from app.invoicing.math import InvoiceTotals, LineKind
from app.invoicing.model import Invoice, InvoiceLine, InvoiceStatus, customer_snapshot
from app.invoicing.numbering import InvoiceSettingsService
from app.invoicing.service import InvoiceService

if TYPE_CHECKING:
    from app.invoicing.pdf import InvoiceDocument

__all__ = ["DocumentServices", "RenderedPdf", "credit_note_pdf", "invoice_pdf"]


class DocumentServices(Protocol):
    """What printing reads, satisfied by the composition root's ``app.services.Services``."""

    @property
    def customers(self) -> CustomerService: ...

    @property
    def invoice_settings(self) -> InvoiceSettingsService: ...

    @property
    def invoices(self) -> InvoiceService: ...

    @property
    def credit_notes(self) -> CreditNoteService: ...


@dataclass(frozen=True, slots=True)
class RenderedPdf:
    filename: str
    content: bytes


def _visible(principal: Principal, customer_id: str) -> bool:
    return principal.customer_id in (None, customer_id)


def _party(snapshot: dict[str, Any]) -> tuple[str, list[str]]:
    address = list(snapshot.get("address") or [])
    return str(snapshot.get("name") or ""), address + list(snapshot.get("tax_ids") or [])


def _label(lines: tuple[Any, ...], kind: LineKind, default: str) -> str:
    for line in lines:
        if line.kind is kind:
            return str(line.description)
    return default


async def _parties(
    services: DocumentServices, org: str, customer_id: str, snapshots: tuple[Any, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    customer, issuer = snapshots
    if customer is None:
        (current,) = await services.customers.read.by_ids(org, [customer_id])
        customer = customer_snapshot(current) if current is not None else {}
    if issuer is None:
        issuer = (await services.invoice_settings.get(org)).issuer_snapshot()
    return customer, issuer


def _invoice_document(
    invoice: Invoice,
    lines: list[InvoiceLine],
    customer: dict[str, Any],
    issuer: dict[str, Any],
) -> InvoiceDocument:
    from app.invoicing.pdf import InvoiceDocument, document_lines

    totals = invoice.totals(lines)
    currency = invoice.currency
    customer_name, customer_address = _party(customer)
    issuer_name, issuer_address = _party(issuer)
    notes = []
    if invoice.reverse_charge:
        notes.append("Reverse charge: the customer accounts for the tax.")
    if invoice.status in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        reason = f": {invoice.status_reason}" if invoice.status_reason else ""
        notes.append(f"{invoice.status.value.capitalize()}{reason}")
    remaining = invoice.amount_remaining.amount
    settled = max(totals.total, 0) - remaining
    return InvoiceDocument(
        organization_name=issuer_name,
        organization_address=issuer_address,
        customer_name=customer_name,
        customer_email=str(customer.get("email") or ""),
        customer_address=customer_address,
        number=invoice.number or "DRAFT",
        issue_date=(invoice.finalized_at or invoice.created_at).date(),
        due_date=invoice.due_date,
        currency=currency,
        lines=document_lines(totals),
        subtotal=format_decimal(totals.subtotal, currency),
        discount=format_decimal(-totals.discount_total, currency),
        tax=format_decimal(totals.tax_total, currency),
        total=format_decimal(totals.total, currency),
        amount_paid=format_decimal(settled, currency),
        amount_due=format_decimal(remaining, currency),
        memo=invoice.memo,
        tax_note=" ".join(notes),
        discount_label=_label(totals.lines, LineKind.DISCOUNT, "Discount"),
        tax_label=_label(totals.lines, LineKind.TAX, "Tax"),
    )


def _note_totals(note: CreditNote, lines: list[CreditNoteLine]) -> InvoiceTotals:
    from app.invoicing.math import ComputedLine

    return InvoiceTotals(
        currency=note.currency,
        lines=tuple(
            ComputedLine(
                description=line.description,
                kind=line.kind,
                quantity=line.quantity,
                unit_amount=line.unit_amount.amount,
                amount=line.amount.amount,
                tax_rate=line.tax_rate,
                informational=line.informational,
            )
            for line in lines
        ),
        subtotal=note.subtotal.amount,
        discount_total=0,
        taxable_amount=note.subtotal.amount,
        tax_total=note.tax_total.amount,
        tax_inclusive=note.tax_inclusive,
        total=note.total.amount,
        balance_applied=0,
        amount_due=0,
        credit_to_balance=0,
    )


def _credit_note_document(
    note: CreditNote, lines: list[CreditNoteLine], invoice: Invoice | None
) -> InvoiceDocument:
    from app.invoicing.pdf import InvoiceDocument, document_lines

    totals = _note_totals(note, lines)
    currency = note.currency
    customer_name, customer_address = _party(note.customer_snapshot)
    issuer_name, issuer_address = _party(note.issuer_snapshot)

    def amount(value: int) -> str:
        return f"{format_decimal(value, currency)} {currency}"

    split = (
        f"Applied to the invoice: {amount(note.applied_to_invoice.amount)}. "
        f"Credited to the customer's balance: {amount(note.credited_to_balance.amount)}. "
        f"Refunded: {amount(note.refunded.amount)}."
    )
    memo = f"{note.memo}\n\n{split}" if note.memo else split
    credited = invoice.number if invoice is not None and invoice.number else note.invoice_id
    return InvoiceDocument(
        organization_name=issuer_name,
        organization_address=issuer_address,
        customer_name=customer_name,
        customer_email=str(note.customer_snapshot.get("email") or ""),
        customer_address=customer_address,
        number=note.number,
        issue_date=note.created_at.date(),
        due_date=None,
        currency=currency,
        lines=document_lines(totals),
        subtotal=format_decimal(totals.subtotal, currency),
        discount=format_decimal(0, currency),
        tax=format_decimal(totals.tax_total, currency),
        total=format_decimal(totals.total, currency),
        amount_paid=format_decimal(0, currency),
        amount_due=format_decimal(0, currency),
        memo=memo,
        tax_note=f"Credit note for invoice {credited} ({note.reason.value.replace('_', ' ')}).",
        tax_label=_label(totals.lines, LineKind.TAX, "Tax"),
    )


def _render_invoice(
    invoice: Invoice, lines: list[InvoiceLine], customer: dict[str, Any], issuer: dict[str, Any]
) -> bytes:
    from app.invoicing.pdf import render_pdf

    return render_pdf(_invoice_document(invoice, lines, customer, issuer), title="Invoice")


def _render_credit_note(
    note: CreditNote, lines: list[CreditNoteLine], invoice: Invoice | None
) -> bytes:
    from app.invoicing.pdf import render_pdf

    return render_pdf(_credit_note_document(note, lines, invoice), title="Credit note")


async def invoice_pdf(
    services: DocumentServices, principal: Principal, invoice_id: str
) -> RenderedPdf | None:
    """The invoice as PDF, or None when it does not exist for this caller (another
    organization's, or another customer's for a customer token)."""
    if not has_prefix(invoice_id, "inv"):
        return None
    org = principal.org
    (invoice,) = await services.invoices.read.by_ids(org, [invoice_id])
    if invoice is None or not _visible(principal, invoice.customer_id):
        return None
    (lines,) = await services.invoices.lines_of(org, [invoice_id])
    customer, issuer = await _parties(
        services, org, invoice.customer_id, (invoice.customer_snapshot, invoice.issuer_snapshot)
    )
    content = await asyncio.to_thread(_render_invoice, invoice, lines, customer, issuer)
    return RenderedPdf(f"{invoice.number or invoice.id}.pdf", content)


async def credit_note_pdf(
    services: DocumentServices, principal: Principal, note_id: str
) -> RenderedPdf | None:
    """The credit note as PDF, or None when it does not exist for this caller."""
    if not has_prefix(note_id, "cn"):
        return None
    org = principal.org
    (note,) = await services.credit_notes.read.by_ids(org, [note_id])
    if note is None or not _visible(principal, note.customer_id):
        return None
    (lines,) = await services.credit_notes.lines_of(org, [note_id])
    (invoice,) = await services.invoices.read.by_ids(org, [note.invoice_id])
    content = await asyncio.to_thread(_render_credit_note, note, lines, invoice)
    return RenderedPdf(f"{note.number}.pdf", content)
