"""The double-entry ledger: postings of every money movement, and `billing verify`."""

from app.ledger.checks import verify
from app.ledger.postings import (
    Account,
    EntryKind,
    InvoicePosition,
    Ledger,
    LedgerEntry,
    Refs,
    RefundLimits,
)

__all__ = [
    "Account",
    "EntryKind",
    "InvoicePosition",
    "Ledger",
    "LedgerEntry",
    "Refs",
    "RefundLimits",
    "verify",
]
