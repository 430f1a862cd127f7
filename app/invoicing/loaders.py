"""Invoices' and credit notes' batching loaders, scoped to one organization (assembled by
`app.context`)."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.invoicing.credit_notes import CreditNote, CreditNoteLine, CreditNoteService
from app.invoicing.service import Invoice, InvoiceLine, InvoiceService

__all__ = ["InvoiceCountKey", "InvoicePageKey", "InvoicingLoaders"]

# customer, first, after, statuses, newest first
InvoicePageKey = tuple[str, int, str | None, tuple[str, ...] | None, bool]
"""(customer id, first, after, statuses) of one customer's page of invoices."""

InvoiceCountKey = tuple[str, tuple[str, ...] | None]
"""(customer id, statuses) of one customer's count of invoices."""


class InvoicingLoaders:
    """Invoices and credit notes by id, their lines, invoices by subscription, credit notes by
    invoice, pages and counts of invoices by customer: one statement per batch (per distinct
    page shape or statuses for the pages and counts)."""

    def __init__(self, invoices: InvoiceService, credit_notes: CreditNoteService, org: str) -> None:
        async def invoices_by_ids(ids: list[str]) -> list[Invoice | None]:
            return await invoices.read.by_ids(org, ids)

        async def invoice_lines(invoice_ids: list[str]) -> list[list[InvoiceLine]]:
            return await invoices.lines_of(org, invoice_ids)

        async def invoice_pages(keys: list[InvoicePageKey]) -> list[tuple[list[Invoice], bool]]:
            """One statement per distinct (first, after, statuses, order) among the keys."""
            shapes: dict[tuple[int, str | None, tuple[str, ...] | None, bool], list[str]] = {}
            for customer_id, first, after, statuses, newest in keys:
                shapes.setdefault((first, after, statuses, newest), []).append(customer_id)
            found: dict[InvoicePageKey, tuple[list[Invoice], bool]] = {}
            for (first, after, statuses, newest), customer_ids in shapes.items():
                pages = await invoices.pages_by_customer(
                    org, customer_ids, first=first, after=after, statuses=statuses, newest=newest
                )
                for customer_id, page in zip(customer_ids, pages, strict=True):
                    found[(customer_id, first, after, statuses, newest)] = page
            return [found[key] for key in keys]

        async def invoice_counts(keys: list[InvoiceCountKey]) -> list[int]:
            """One statement per distinct statuses among the keys."""
            by_statuses: dict[tuple[str, ...] | None, list[str]] = {}
            for customer_id, statuses in keys:
                by_statuses.setdefault(statuses, []).append(customer_id)
            found: dict[InvoiceCountKey, int] = {}
            for statuses, customer_ids in by_statuses.items():
                counts = await invoices.counts_by_customer(org, customer_ids, statuses)
                found.update(((c, statuses), n) for c, n in zip(customer_ids, counts, strict=True))
            return [found[key] for key in keys]

        async def invoices_of_subscriptions(ids: list[str]) -> list[list[Invoice]]:
            return await invoices.of_subscriptions(org, ids)

        async def credit_notes_by_ids(ids: list[str]) -> list[CreditNote | None]:
            return await credit_notes.read.by_ids(org, ids)

        async def credit_notes_of_invoices(invoice_ids: list[str]) -> list[list[CreditNote]]:
            return await credit_notes.of_invoices(org, invoice_ids)

        async def credit_note_lines(ids: list[str]) -> list[list[CreditNoteLine]]:
            return await credit_notes.lines_of(org, ids)

        self.invoice_by_id: DataLoader[str, Invoice | None] = DataLoader(invoices_by_ids)
        self.lines_by_invoice_id: DataLoader[str, list[InvoiceLine]] = DataLoader(invoice_lines)
        self.invoices_by_customer_id: DataLoader[InvoicePageKey, tuple[list[Invoice], bool]] = (
            DataLoader(invoice_pages)
        )
        self.invoice_count_by_customer_id: DataLoader[InvoiceCountKey, int] = DataLoader(
            invoice_counts
        )
        self.invoices_by_subscription_id: DataLoader[str, list[Invoice]] = DataLoader(
            invoices_of_subscriptions
        )
        self.credit_note_by_id: DataLoader[str, CreditNote | None] = DataLoader(credit_notes_by_ids)
        self.credit_notes_by_invoice_id: DataLoader[str, list[CreditNote]] = DataLoader(
            credit_notes_of_invoices
        )
        self.lines_by_credit_note_id: DataLoader[str, list[CreditNoteLine]] = DataLoader(
            credit_note_lines
        )
