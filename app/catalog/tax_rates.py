"""Tax rates per organization and jurisdiction, and the tax that applies to a customer.

A rate belongs to a country and optionally a region (state, province) and is either included in
prices or added to them. One active rate per jurisdiction: to change a rate, archive it and
create the new one (finalized invoices keep the rate they were issued with).

The tax of an invoice follows the customer:

* ``tax_exempt = exempt``: no tax;
* ``tax_exempt = reverse``: a zero "Reverse charge" line (the customer accounts for the tax).
  Reverse charge needs the customer's tax id on the invoice, so finalizing refuses a
  reverse-charge customer without one;
* otherwise the rate of the billing address: the region's rate when there is one, else the
  country's; no address or no rate means no tax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from app.catalog.terms import TaxRate
from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.listing import Listing
from app.customers import Customer, TaxExempt
from db.connection import Database, Row
from db.repositories.tax_rates import TaxRateRepository

__all__ = ["TaxChoice", "TaxRateDraft", "TaxRateRecord", "TaxRateService"]

_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True, slots=True)
class TaxRateRecord:
    id: str
    organization_id: str
    name: str
    rate: int  # millionths, see app.invoicing.math.RATE_SCALE
    inclusive: bool
    country: str
    region: str
    active: bool
    created_at: datetime
    archived_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> TaxRateRecord:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            name=row["name"],
            rate=row["rate"],
            inclusive=row["inclusive"],
            country=row["country"],
            region=row["region"],
            active=row["active"],
            created_at=row["created_at"],
            archived_at=row["archived_at"],
        )

    def as_rate(self) -> TaxRate:
        return TaxRate(self.name, self.rate, self.inclusive)

    @property
    def percentage(self) -> str:
        return self.as_rate().percent


@dataclass(frozen=True)
class TaxRateDraft:
    name: str
    percentage: str
    country: str
    inclusive: bool = False
    region: str = ""


@dataclass(frozen=True, slots=True)
class TaxChoice:
    """The tax of one invoice: a rate, reverse charge, or nothing."""

    rate: TaxRateRecord | None = None
    reverse_charge: bool = False
    exempt: bool = False
    missing_tax_id: bool = False

    def math_rate(self) -> TaxRate | None:
        return self.rate.as_rate() if self.rate is not None else None


class TaxRateService:
    def __init__(self, db: Database) -> None:
        self._rates = TaxRateRepository(db)
        self.read = Listing(self._rates, TaxRateRecord.from_row)

    async def create(self, org: str, draft: TaxRateDraft) -> TaxRateRecord:
        errors: list[DomainError] = []
        name = draft.name.strip()
        country = draft.country.strip().upper()
        region = draft.region.strip().upper()
        rate = None
        if not 1 <= len(name) <= 100:
            errors.append(
                DomainError(
                    ErrorCode.REQUIRED if not name else ErrorCode.INVALID,
                    "A tax rate needs a name of 1-100 characters, e.g. VAT.",
                    field=("input", "name"),
                )
            )
        try:
            rate = TaxRate.parse(name or "tax", draft.percentage, inclusive=draft.inclusive)
        except DomainError as exc:
            errors.append(exc.at(("input", "percentage")))
        except ArithmeticError:  # TaxRate.parse lets Decimal's overflow through ("1e999999999")
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "A tax rate must be between 0 and 100 percent.",
                    field=("input", "percentage"),
                )
            )
        if not _COUNTRY.match(country):
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "Country must be an ISO 3166-1 alpha-2 code such as FR.",
                    field=("input", "country"),
                )
            )
        if len(region) > 100:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "Region must be at most 100 characters.",
                    field=("input", "region"),
                )
            )
        if errors or rate is None:
            raise ValidationFailed(errors)
        row = await self._rates.insert(
            {
                "organization_id": org,
                "id": new_id("txr"),
                "name": name,
                "rate": rate.rate,
                "inclusive": draft.inclusive,
                "country": country,
                "region": region,
            }
        )
        if row is None:
            where = f"{country}-{region}" if region else country
            raise DomainError(
                ErrorCode.DUPLICATE,
                f"{where} already has an active tax rate; archive it first.",
                field=("input", "country"),
            )
        return TaxRateRecord.from_row(row)

    async def archive(self, org: str, rate_id: str) -> TaxRateRecord:
        row = await self._rates.archive(org, rate_id)
        if row is not None:
            return TaxRateRecord.from_row(row)
        (existing,) = await self._rates.by_ids(org, [rate_id])
        if existing is None:
            raise NotFound("Tax rate", ("input", "id"))
        raise DomainError(
            ErrorCode.INVALID_STATE, "The tax rate is already archived.", field=("input", "id")
        )

    async def for_customer(self, org: str, customer: Customer) -> TaxChoice:
        if customer.tax_exempt is TaxExempt.EXEMPT:
            return TaxChoice(exempt=True)
        rate = None
        if customer.address is not None:
            row = await self._rates.for_jurisdiction(
                org, customer.address.country, customer.address.region.strip().upper()
            )
            rate = TaxRateRecord.from_row(row) if row is not None else None
        if customer.tax_exempt is TaxExempt.REVERSE:
            return TaxChoice(rate=rate, reverse_charge=True, missing_tax_id=not customer.tax_ids)
        return TaxChoice(rate=rate)
