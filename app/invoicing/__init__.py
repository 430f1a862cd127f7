"""Invoices: the model and service, arithmetic, numbering, charging, credit notes, documents."""

from app.invoicing.billing import ChargeResult, InvoiceBilling
from app.invoicing.credit_notes import (
    CreditNote,
    CreditNoteDraft,
    CreditNoteLine,
    CreditNoteLineInput,
    CreditNoteReason,
    CreditNoteService,
    CreditSettlement,
)
from app.invoicing.documents import RenderedPdf, credit_note_pdf, invoice_pdf
from app.invoicing.loaders import InvoiceCountKey, InvoicePageKey, InvoicingLoaders
from app.invoicing.math import LineKind
from app.invoicing.numbering import UPDATABLE, InvoiceSettings, InvoiceSettingsService
from app.invoicing.service import (
    MAX_LINES,
    Invoice,
    InvoiceDraft,
    InvoiceLine,
    InvoiceService,
    InvoiceStatus,
    LineInput,
)

__all__ = [
    "MAX_LINES",
    "UPDATABLE",
    "ChargeResult",
    "CreditNote",
    "CreditNoteDraft",
    "CreditNoteLine",
    "CreditNoteLineInput",
    "CreditNoteReason",
    "CreditNoteService",
    "CreditSettlement",
    "Invoice",
    "InvoiceBilling",
    "InvoiceCountKey",
    "InvoiceDraft",
    "InvoiceLine",
    "InvoicePageKey",
    "InvoiceService",
    "InvoiceSettings",
    "InvoiceSettingsService",
    "InvoiceStatus",
    "InvoicingLoaders",
    "LineInput",
    "LineKind",
    "RenderedPdf",
    "credit_note_pdf",
    "invoice_pdf",
]
