"""The invoice and its lines as read from the database, the drafts a caller gives, the checks
of a draft's lines, and the values an invoice's totals, pricing and lines are stored as
(``InvoiceService`` in ``service.py`` reads and writes them)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from app.catalog import AppliedCoupon, TaxChoice
from app.core.errors import DomainError
from app.core.ids import new_id
from app.core.money import Money, row_money
from app.customers import Address, Customer
from app.invoicing.math import ComputedLine, InvoiceTotals, LineDraft, LineKind
from app.outgoing_webhooks import api_view
from db.connection import Row

__all__ = [
    "MAX_LINES",
    "PAYABLE",
    "Invoice",
    "InvoiceDraft",
    "InvoiceLine",
    "InvoiceStatus",
    "LineInput",
    "customer_snapshot",
    "invoice_view",
]

MAX_LINES = 1000
_MAX_MEMO = 2000
_MAX_REASON = 500
_GIVEN_KINDS = frozenset(
    {LineKind.SUBSCRIPTION, LineKind.PRORATION, LineKind.USAGE, LineKind.ONE_OFF}
)


class InvoiceStatus(enum.Enum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


PAYABLE = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)


@dataclass(frozen=True)
class LineInput:
    """A line as a caller gives it (validated into an ``app.invoicing.math.LineDraft``)."""

    description: str
    unit_amount: int
    quantity: int = 1
    kind: LineKind = LineKind.ONE_OFF
    period_start: datetime | None = None
    period_end: datetime | None = None
    taxable: bool = True
    discountable: bool = True


@dataclass(frozen=True)
class InvoiceDraft:
    customer_id: str
    currency: str
    lines: Sequence[LineInput]
    due_date: date | None = None
    memo: str = ""
    subscription_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    id: str
    invoice_id: str
    position: int
    kind: LineKind
    description: str
    quantity: int
    unit_amount: Money
    amount: Money
    discount_amount: Money
    taxable: bool
    discountable: bool
    tax_rate: int | None
    informational: bool
    period_start: datetime | None
    period_end: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> InvoiceLine:
        money = row_money(row)
        return cls(
            id=row["id"],
            invoice_id=row["invoice_id"],
            position=row["position"],
            kind=LineKind(row["kind"]),
            description=row["description"],
            quantity=row["quantity"],
            unit_amount=money("unit_amount"),
            amount=money("amount"),
            discount_amount=money("discount_amount"),
            taxable=row["taxable"],
            discountable=row["discountable"],
            tax_rate=row["tax_rate"],
            informational=row["informational"],
            period_start=row["period_start"],
            period_end=row["period_end"],
        )

    @property
    def given(self) -> bool:
        """A line the caller gave, as opposed to the computed discount and tax lines."""
        return self.kind in _GIVEN_KINDS

    def draft(self) -> LineDraft:
        return LineDraft(
            description=self.description,
            quantity=self.quantity,
            unit_amount=self.unit_amount.amount,
            kind=self.kind,
            period_start=self.period_start,
            period_end=self.period_end,
            taxable=self.taxable,
            discountable=self.discountable,
        )

    def computed(self) -> ComputedLine:
        return ComputedLine(
            description=self.description,
            kind=self.kind,
            quantity=self.quantity,
            unit_amount=self.unit_amount.amount,
            amount=self.amount.amount,
            discount_amount=self.discount_amount.amount,
            taxable=self.taxable,
            discountable=self.discountable,
            period_start=self.period_start,
            period_end=self.period_end,
            tax_rate=self.tax_rate,
            informational=self.informational,
        )


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    organization_id: str
    customer_id: str
    subscription_id: str | None
    status: InvoiceStatus
    number: str | None
    number_sequence: int | None
    currency: str
    memo: str
    due_date: date | None
    period_start: datetime | None
    period_end: datetime | None
    subtotal: Money
    discount_total: Money
    taxable_amount: Money
    tax_total: Money
    tax_inclusive: bool
    total: Money
    balance_applied: Money
    credit_to_balance: Money
    credit_applied: Money
    amount_credited: Money
    amount_due: Money
    amount_paid: Money
    tax_rate_id: str | None
    tax_name: str | None
    tax_rate: int | None
    reverse_charge: bool
    discount_id: str | None
    coupon_id: str | None
    payment_id: str | None
    payment_attempts: int
    last_payment_error_code: str | None
    last_payment_error_message: str | None
    payment_in_progress: bool
    customer_snapshot: dict[str, Any] | None
    issuer_snapshot: dict[str, Any] | None
    status_reason: str | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Invoice:
        currency = row["currency"]
        money = row_money(row)

        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            customer_id=row["customer_id"],
            subscription_id=row["subscription_id"],
            status=InvoiceStatus(row["status"]),
            number=row["number"],
            number_sequence=row["number_sequence"],
            currency=currency,
            memo=row["memo"],
            due_date=row["due_date"],
            period_start=row["period_start"],
            period_end=row["period_end"],
            subtotal=money("subtotal"),
            discount_total=money("discount_total"),
            taxable_amount=money("taxable_amount"),
            tax_total=money("tax_total"),
            tax_inclusive=row["tax_inclusive"],
            total=money("total"),
            balance_applied=money("balance_applied"),
            credit_to_balance=money("credit_to_balance"),
            credit_applied=money("credit_applied"),
            amount_credited=money("amount_credited"),
            amount_due=money("amount_due"),
            amount_paid=money("amount_paid"),
            tax_rate_id=row["tax_rate_id"],
            tax_name=row["tax_name"],
            tax_rate=row["tax_rate"],
            reverse_charge=row["reverse_charge"],
            discount_id=row["discount_id"],
            coupon_id=row["coupon_id"],
            payment_id=row["payment_id"],
            payment_attempts=row["payment_attempts"],
            last_payment_error_code=row["last_payment_error_code"],
            last_payment_error_message=row["last_payment_error_message"],
            payment_in_progress=row["payment_lease_token"] is not None,
            customer_snapshot=row["customer_snapshot"],
            issuer_snapshot=row["issuer_snapshot"],
            status_reason=row["status_reason"],
            finalized_at=row["finalized_at"],
            paid_at=row["paid_at"],
            voided_at=row["voided_at"],
            marked_uncollectible_at=row["marked_uncollectible_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def amount_remaining(self) -> Money:
        return self.amount_due - self.amount_paid

    def totals(self, lines: Sequence[InvoiceLine]) -> InvoiceTotals:
        """The stored figures in ``compute_totals``'s shape (for the PDF's table)."""
        return InvoiceTotals(
            currency=self.currency,
            lines=tuple(line.computed() for line in lines),
            subtotal=self.subtotal.amount,
            discount_total=self.discount_total.amount,
            taxable_amount=self.taxable_amount.amount,
            tax_total=self.tax_total.amount,
            tax_inclusive=self.tax_inclusive,
            total=self.total.amount,
            balance_applied=self.balance_applied.amount,
            amount_due=self.amount_due.amount,
            credit_to_balance=self.credit_to_balance.amount,
        )


_INVOICE_INTERNAL = frozenset(
    {
        "customer_snapshot",
        "issuer_snapshot",
        "number_sequence",
        "discount_id",
        "last_payment_error_code",
        "last_payment_error_message",
        "reverse_charge",
        "tax_name",
        "tax_rate",
        "tax_rate_id",
    }
)


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    """The invoice as the API shows it, for outgoing webhook events."""
    return api_view(
        invoice,
        typename="Invoice",
        hide=_INVOICE_INTERNAL,
        links={"payment_id": "payment", "coupon_id": "coupon"},
    )


def _address_lines(address: Address | None) -> list[str]:
    if address is None:
        return []
    city = " ".join(part for part in (address.postal_code, address.city) if part)
    parts = [address.line1, address.line2, city, address.region, address.country]
    return [part for part in parts if part]


def customer_snapshot(customer: Customer) -> dict[str, Any]:
    """The customer as printed on a finalized document (later edits do not change it)."""
    return {
        "name": customer.name or customer.email,
        "email": customer.email,
        "address": _address_lines(customer.address),
        "tax_ids": [f"{t.type.upper()} {t.value}" for t in customer.tax_ids],
    }


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _line_draft(line: LineInput, path: tuple[str, ...]) -> LineDraft:
    try:
        return LineDraft(
            description=line.description.strip(),
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            kind=line.kind,
            period_start=_utc(line.period_start),
            period_end=_utc(line.period_end),
            taxable=line.taxable,
            discountable=line.discountable,
        )
    except DomainError as exc:
        raise exc.at((*path, *(exc.field or ()))) from None


def _checked_lines(
    lines: Sequence[LineInput], path: tuple[str, ...]
) -> tuple[list[LineDraft], list[DomainError]]:
    drafts, errors = [], []
    for index, line in enumerate(lines):
        try:
            drafts.append(_line_draft(line, (*path, str(index))))
        except DomainError as exc:
            errors.append(exc)
    return drafts, errors


def _total_values(totals: InvoiceTotals) -> dict[str, Any]:
    return {
        "subtotal": totals.subtotal,
        "discount_total": totals.discount_total,
        "taxable_amount": totals.taxable_amount,
        "tax_total": totals.tax_total,
        "tax_inclusive": totals.tax_inclusive,
        "total": totals.total,
        "balance_applied": totals.balance_applied,
        "credit_to_balance": totals.credit_to_balance,
        "amount_due": totals.amount_due,
    }


def _pricing_values(tax: TaxChoice, applied: AppliedCoupon | None) -> dict[str, Any]:
    rate = tax.rate
    return {
        "tax_rate_id": rate.id if rate else None,
        "tax_name": rate.name if rate else None,
        "tax_rate": 0 if tax.reverse_charge else rate.rate if rate else None,
        "reverse_charge": tax.reverse_charge,
        "discount_id": applied.discount.id if applied else None,
        "coupon_id": applied.coupon.id if applied else None,
    }


def _line_rows(
    org: str, invoice_id: str, totals: InvoiceTotals, ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows for the computed lines; given lines keep their ids (``ids``, in order)."""
    rows = []
    for position, line in enumerate(totals.lines):
        rows.append(
            {
                "organization_id": org,
                "id": ids[position] if position < len(ids) else new_id("il"),
                "invoice_id": invoice_id,
                "position": position,
                "kind": line.kind.value,
                "description": line.description,
                "quantity": line.quantity,
                "unit_amount": line.unit_amount,
                "amount": line.amount,
                "discount_amount": line.discount_amount,
                "taxable": line.taxable,
                "discountable": line.discountable,
                "tax_rate": line.tax_rate,
                "informational": line.informational,
                "period_start": line.period_start,
                "period_end": line.period_end,
            }
        )
    return rows
