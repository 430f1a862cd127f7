"""Invoice settings (number prefix, issuer printed on documents) and gapless document numbers.

Numbers look like ``ACME-2026-000042`` (credit notes ``ACME-CN-2026-000007``): the organization's
prefix, the year of issue (UTC) and a sequence per organization and series that never restarts,
so the sequence alone is unique. ``next_number`` increments a counter row inside the caller's
transaction: the row stays locked until that transaction ends, so concurrent finalizations in
any number of processes take consecutive numbers, and a transaction that rolls back gives its
number back. That is what makes the numbers gapless; a PostgreSQL SEQUENCE would not be (a
rolled-back ``nextval`` is lost).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.core.errors import DomainError, ErrorCode, ValidationFailed
from db.connection import Database, Row
from db.repositories.invoicing.invoice_settings import (
    DocumentCounterRepository,
    InvoiceSettingsRepository,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DocumentNumber",
    "InvoiceSettings",
    "InvoiceSettingsService",
    "Series",
    "format_number",
]

DEFAULT_PREFIX = "INV"
_PREFIX = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,19}$")
_MAX_ADDRESS_LINES = 6
UPDATABLE = ("number_prefix", "issuer_name", "issuer_address", "days_until_due")


class Series(enum.Enum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


@dataclass(frozen=True, slots=True)
class InvoiceSettings:
    organization_id: str
    number_prefix: str
    issuer_name: str
    issuer_address: list[str]
    days_until_due: int | None

    @classmethod
    def from_row(cls, org: str, row: Row | None) -> InvoiceSettings:
        if row is None:
            return cls(org, DEFAULT_PREFIX, "", [], None)
        return cls(
            organization_id=org,
            number_prefix=row["number_prefix"],
            issuer_name=row["issuer_name"],
            issuer_address=list(row["issuer_address"]),
            days_until_due=row["days_until_due"],
        )

    def issuer_snapshot(self) -> dict[str, Any]:
        """What finalized documents keep of the issuer, so later edits do not change them."""
        return {"name": self.issuer_name or self.organization_id, "address": self.issuer_address}


@dataclass(frozen=True, slots=True)
class DocumentNumber:
    sequence: int
    number: str
    assigned_at: datetime


def format_number(prefix: str, series: Series, year: int, sequence: int) -> str:
    middle = "-CN" if series is Series.CREDIT_NOTE else ""
    return f"{prefix}{middle}-{year:04d}-{sequence:06d}"


def _normalize(values: dict[str, Any]) -> list[DomainError]:
    errors: list[DomainError] = []

    def bad(name: str, message: str) -> None:
        errors.append(DomainError(ErrorCode.INVALID, message, field=("input", name)))

    if "number_prefix" in values:
        prefix = (values["number_prefix"] or "").strip().upper()
        if not _PREFIX.match(prefix):
            bad("numberPrefix", "A prefix is 1-20 letters, digits or '-', e.g. ACME.")
        values["number_prefix"] = prefix
    if "issuer_name" in values:
        values["issuer_name"] = (values["issuer_name"] or "").strip()
        if len(values["issuer_name"]) > 200:
            bad("issuerName", "The issuer name is at most 200 characters.")
    if "issuer_address" in values:
        lines = [line.strip() for line in values["issuer_address"] or [] if line.strip()]
        if len(lines) > _MAX_ADDRESS_LINES or any(len(line) > 200 for line in lines):
            bad(
                "issuerAddress",
                f"The address is at most {_MAX_ADDRESS_LINES} lines of 200 characters.",
            )
        values["issuer_address"] = lines
    if values.get("days_until_due") is not None and not 0 <= values["days_until_due"] <= 365:
        bad("daysUntilDue", "Days until due must be between 0 and 365.")
    return errors


class InvoiceSettingsService:
    def __init__(self, db: Database) -> None:
        self._settings = InvoiceSettingsRepository(db)
        self._counters = DocumentCounterRepository(db)

    async def get(self, org: str) -> InvoiceSettings:
        return InvoiceSettings.from_row(org, await self._settings.get(org))

    async def update(self, org: str, changes: Mapping[str, Any]) -> InvoiceSettings:
        """Change the settings; numbers already assigned keep their prefix."""
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = dict(changes)
        errors = _normalize(values)
        if errors:
            raise ValidationFailed(errors)
        if not values:
            return await self.get(org)
        return InvoiceSettings.from_row(org, await self._settings.merge(org, values))

    async def next_number(self, org: str, series: Series) -> DocumentNumber:
        """The next number of ``series``. Call it inside the transaction that stores the number,
        as late as possible: the counter row stays locked until that transaction ends."""
        settings = await self.get(org)
        sequence, at = await self._counters.next_number(org, series.value)
        return DocumentNumber(
            sequence, format_number(settings.number_prefix, series, at.year, sequence), at
        )
