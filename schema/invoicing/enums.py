"""The invoice enums, registered before any type uses them (credit notes share LineKind)."""

from __future__ import annotations

from app.invoicing import InvoiceStatus, LineKind
from schema.enums import expose

__all__ = ["InvoiceStatus", "LineKind"]

expose(
    InvoiceStatus,
    "InvoiceStatus",
    "Where an invoice stands: DRAFT → OPEN → PAID | VOID | UNCOLLECTIBLE "
    "(UNCOLLECTIBLE → PAID | VOID).",
    {
        InvoiceStatus.DRAFT: "Being prepared: lines can change, totals are a preview, no number.",
        InvoiceStatus.OPEN: "Finalized and numbered; waiting for payment.",
        InvoiceStatus.PAID: "Nothing left to pay (charged, or covered by credit). Final.",
        InvoiceStatus.VOID: "Cancelled after finalization; keeps its number. Final.",
        InvoiceStatus.UNCOLLECTIBLE: "Written off as a bad debt; can still be paid or voided.",
    },
)

expose(
    LineKind,
    "InvoiceLineKind",
    "What an invoice line is for. DISCOUNT and TAX lines are computed, never given.",
    {
        LineKind.SUBSCRIPTION: "A subscription's price for a billing period.",
        LineKind.PRORATION: "A credit or charge for part of a period after a plan change.",
        LineKind.USAGE: "Metered usage.",
        LineKind.ONE_OFF: "A one-off charge (or credit, with a negative unit amount).",
        LineKind.DISCOUNT: "The coupon's discount (computed).",
        LineKind.TAX: "The tax, or the reverse-charge notice (computed).",
    },
)
