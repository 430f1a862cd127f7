"""Invoices: drafts, finalization with a gapless number, and the status machine.

``draft → open → paid | void | uncollectible`` (and ``uncollectible → paid | void``, for a debt
paid or written off later). A draft's lines can change and its totals are a preview; finalizing
fixes everything at once, in one transaction: the tax of the customer's billing address, the
coupon in force (its use recorded), the customer's credit balance (spent), the lines and totals
(``app.invoicing.math.compute_totals``, the only place totals are computed), the customer and
issuer as printed, and the number. An invoice with nothing left to pay is paid at once.

Every status change is one conditional UPDATE naming the statuses it may leave from (a trigger
in the database refuses any other), so concurrent calls cannot both win and an illegal change
leaves the row as it was.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.catalog import AppliedCoupon, Coupon, CouponService, TaxChoice, TaxRateService
from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.idempotency import Claim, IdempotencyKeys, Stored
from app.core.ids import new_id
from app.core.listing import Listing
from app.core.money import Money, normalize_currency
from app.core.pubsub import Event, publish
from app.customers import Address, CreditBalances, Customer, CustomerService
from app.invoicing.math import ComputedLine, InvoiceTotals, LineDraft, LineKind, compute_totals
from app.invoicing.numbering import InvoiceSettingsService, Series
from app.ledger import Ledger, Refs
from db.connection import Database, Row
from db.repositories.invoicing.invoices import InvoiceLineRepository, InvoiceRepository

__all__ = [
    "MAX_LINES",
    "Invoice",
    "InvoiceDraft",
    "InvoiceLine",
    "InvoiceService",
    "InvoiceStatus",
    "LineInput",
    "customer_snapshot",
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
        currency = row["currency"]
        return cls(
            id=row["id"],
            invoice_id=row["invoice_id"],
            position=row["position"],
            kind=LineKind(row["kind"]),
            description=row["description"],
            quantity=row["quantity"],
            unit_amount=Money(row["unit_amount"], currency),
            amount=Money(row["amount"], currency),
            discount_amount=Money(row["discount_amount"], currency),
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

        def money(name: str) -> Money:
            return Money(row[name], currency)

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


def _event(invoice: Invoice) -> Event:
    return Event(
        org=invoice.organization_id,
        kind="invoice",
        id=invoice.id,
        data={
            "status": invoice.status.value,
            "number": invoice.number,
            "customer_id": invoice.customer_id,
            "currency": invoice.currency,
            "total": invoice.total.amount,
            "amount_due": invoice.amount_due.amount,
            "amount_paid": invoice.amount_paid.amount,
        },
    )


class InvoiceService:
    def __init__(
        self,
        db: Database,
        *,
        customers: CustomerService,
        tax_rates: TaxRateService,
        coupons: CouponService,
        balances: CreditBalances,
        settings: InvoiceSettingsService,
        idempotency: IdempotencyKeys,
        ledger: Ledger,
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._customers = customers
        self._tax_rates = tax_rates
        self._coupons = coupons
        self._balances = balances
        self._settings = settings
        self._keys = idempotency
        self._invoices = InvoiceRepository(db)
        self._lines = InvoiceLineRepository(db)
        self.read = Listing(self._invoices, Invoice.from_row)

    # -- drafts ---------------------------------------------------------------------------

    async def create(self, org: str, draft: InvoiceDraft, *, idempotency_key: str) -> Invoice:
        """A one-off draft, at most once per idempotency key (the same key and input return
        the same draft; another input with the key is IDEMPOTENCY_KEY_REUSED)."""
        checked = await self._check_draft(org, draft)
        request = {
            "customer_id": draft.customer_id,
            "currency": checked.currency,
            "lines": [
                [
                    line.description,
                    line.quantity,
                    line.unit_amount,
                    line.kind.value,
                    line.period_start,
                    line.period_end,
                    line.taxable,
                    line.discountable,
                ]
                for line in checked.lines
            ],
            "due_date": draft.due_date,
            "memo": checked.memo,
            "period": [checked.period_start, checked.period_end],
        }

        async def work(claim: Claim) -> Invoice:
            async with self._db.transaction():
                invoice = await self._insert_draft(org, claim.resource_id, checked)
                await self._keys.complete(claim)
            return invoice

        async def replay(stored: Stored) -> Invoice:
            if stored.error is not None:
                raise stored.error
            return await self.get(org, stored.resource_id)

        return await self._keys.run(
            org,
            idempotency_key,
            operation="invoice.create",
            request=request,
            resource_id=new_id("inv"),
            work=work,
            replay=replay,
        )

    async def create_draft(
        self, org: str, draft: InvoiceDraft, *, invoice_id: str | None = None
    ) -> Invoice:
        """A draft without an idempotency key, for internal callers that guard their own
        retries (subscriptions bill a period once per billing key)."""
        checked = await self._check_draft(org, draft)
        async with self._db.transaction():
            return await self._insert_draft(org, invoice_id or new_id("inv"), checked)

    async def add_line(self, org: str, invoice_id: str, line: LineInput) -> Invoice:
        added = _line_draft(line, ("input", "line"))
        async with self._db.transaction():
            row = await self._lock_draft(org, invoice_id)
            current = await self._current_lines(org, invoice_id)
            if len(current) >= MAX_LINES:
                raise DomainError(
                    ErrorCode.INVALID,
                    f"An invoice has at most {MAX_LINES} lines.",
                    field=("input", "line"),
                )
            lines = [(item.id, item.draft()) for item in current]
            lines.append((new_id("il"), added))
            return await self._reprice(org, row, lines)

    async def remove_line(self, org: str, invoice_id: str, line_id: str) -> Invoice:
        async with self._db.transaction():
            row = await self._lock_draft(org, invoice_id)
            current = await self._current_lines(org, invoice_id)
            kept = [(item.id, item.draft()) for item in current if item.id != line_id]
            if len(kept) == len(current):
                raise NotFound("Invoice line", ("input", "lineId"))
            return await self._reprice(org, row, kept)

    # -- finalization and status changes ---------------------------------------------------

    async def finalize(
        self, org: str, invoice_id: str, *, period_index: int | None = None
    ) -> Invoice:
        """Fix the draft and give it its number (see the module docstring).

        ``period_index`` is the subscription's billing period, for coupons that last a number
        of periods (``CouponService.redeem``).
        """
        async with self._db.transaction():
            row = await self._lock_draft(org, invoice_id, "finalized")
            current = await self._current_lines(org, invoice_id)
            if not current:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    "An invoice needs at least one line to be finalized.",
                    field=("input", "invoiceId"),
                )
            customer = await self._customer(org, row["customer_id"])
            tax = await self._tax_rates.for_customer(org, customer)
            if tax.missing_tax_id:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    "The customer is billed by reverse charge but has no tax id to print on the "
                    "invoice; add one (customerUpdate) or change its tax status.",
                    field=("input", "invoiceId"),
                )
            currency = row["currency"]
            drafts = [line.draft() for line in current]

            def discounts(terms: Coupon) -> bool:
                return compute_totals(drafts, currency, coupon=terms).discount_total > 0

            applied = await self._coupons.redeem(
                org,
                customer_id=customer.id,
                subscription_id=row["subscription_id"],
                currency=currency,
                invoice_id=invoice_id,
                discounts=discounts,
                period_index=period_index,
            )
            balance = await self._balances.lock(org, customer.id, currency)
            totals = self._compute(drafts, currency, tax, applied, balance)
            await self._ledger.invoice_finalized(
                org,
                Refs(
                    customer.id,
                    currency,
                    invoice_id=invoice_id,
                    subscription_id=row["subscription_id"],
                ),
                total=totals.total,
                discount=totals.discount_total,
                tax=totals.tax_total,
                balance_applied=totals.balance_applied,
                credit_to_balance=totals.credit_to_balance,
            )
            settings = await self._settings.get(org)
            await self._lines.replace(
                org, invoice_id, _line_rows(org, invoice_id, totals, [i.id for i in current])
            )
            # Last: the counter row stays locked until commit, so keep that short.
            number = await self._settings.next_number(org, Series.INVOICE)
            due_date = row["due_date"]
            if due_date is None and settings.days_until_due is not None:
                due_date = number.assigned_at.date() + timedelta(days=settings.days_until_due)
            settled = totals.amount_due == 0
            values = {
                **_total_values(totals),
                **_pricing_values(tax, applied),
                "status": (InvoiceStatus.PAID if settled else InvoiceStatus.OPEN).value,
                "number": number.number,
                "number_sequence": number.sequence,
                "due_date": due_date,
                "customer_snapshot": customer_snapshot(customer),
                "issuer_snapshot": settings.issuer_snapshot(),
                "finalized_at": number.assigned_at,
                "paid_at": number.assigned_at if settled else None,
            }
            updated = await self._invoices.transition(
                org, invoice_id, allowed=[InvoiceStatus.DRAFT.value], values=values
            )
            assert updated is not None  # locked as a draft in this transaction
            invoice = Invoice.from_row(updated)
            await publish(self._db, _event(invoice))
        return invoice

    async def void(self, org: str, invoice_id: str, reason: str = "") -> Invoice:
        """Cancel an open or uncollectible invoice; it keeps its number, and everything it moved
        in the ledger is undone (the credit balance it used goes back to the customer)."""
        note = self._reason(reason)
        async with self._db.transaction():
            row = await self._invoices.transition(
                org,
                invoice_id,
                allowed=PAYABLE,
                values={
                    "status": InvoiceStatus.VOID.value,
                    "voided_at": _now(),
                    "status_reason": note,
                },
                idle=True,
            )
            if row is None:
                raise await self._refusal(org, invoice_id, "voided")
            invoice = Invoice.from_row(row)
            await self._ledger.invoice_voided(org, invoice.id)
            await publish(self._db, _event(invoice))
        return invoice

    async def mark_uncollectible(self, org: str, invoice_id: str, reason: str = "") -> Invoice:
        """Write an open invoice off as a bad debt; it can still be paid or voided later."""
        note = self._reason(reason)
        async with self._db.transaction():
            row = await self._invoices.transition(
                org,
                invoice_id,
                allowed=[InvoiceStatus.OPEN.value],
                values={
                    "status": InvoiceStatus.UNCOLLECTIBLE.value,
                    "marked_uncollectible_at": _now(),
                    "status_reason": note,
                },
                idle=True,
            )
            if row is None:
                raise await self._refusal(org, invoice_id, "marked uncollectible")
            invoice = Invoice.from_row(row)
            await self._ledger.invoice_uncollectible(
                org, Refs(invoice.customer_id, invoice.currency, invoice_id=invoice.id)
            )
            await publish(self._db, _event(invoice))
        return invoice

    # -- reads ------------------------------------------------------------------------------

    async def get(self, org: str, invoice_id: str) -> Invoice:
        (invoice,) = await self.read.by_ids(org, [invoice_id])
        if invoice is None:
            raise NotFound("Invoice", ("input", "invoiceId"))
        return invoice

    async def lines_of(self, org: str, invoice_ids: Sequence[str]) -> list[list[InvoiceLine]]:
        grouped = await self._lines.by_invoice_ids(org, invoice_ids)
        return [[InvoiceLine.from_row(row) for row in grouped[i]] for i in invoice_ids]

    async def of_subscriptions(
        self, org: str, subscription_ids: Sequence[str]
    ) -> list[list[Invoice]]:
        grouped: dict[str, list[Invoice]] = {i: [] for i in subscription_ids}
        for row in await self._invoices.by_subscription_ids(org, subscription_ids):
            grouped[row["subscription_id"]].append(Invoice.from_row(row))
        return [grouped[i] for i in subscription_ids]

    async def pages_by_customer(
        self,
        org: str,
        customer_ids: Sequence[str],
        *,
        first: int,
        after: str | None,
        statuses: Sequence[str] | None,
    ) -> list[tuple[list[Invoice], bool]]:
        rows = await self._invoices.pages_by_customer(
            org, customer_ids, first=first, after=after, statuses=statuses
        )
        grouped: dict[str, list[Invoice]] = {c: [] for c in customer_ids}
        for row in rows:
            grouped[row["customer_id"]].append(Invoice.from_row(row))
        return [(grouped[c][:first], len(grouped[c]) > first) for c in customer_ids]

    async def counts_by_customer(
        self, org: str, customer_ids: Sequence[str], statuses: Sequence[str] | None
    ) -> list[int]:
        counts = await self._invoices.counts_by_customer(org, customer_ids, statuses)
        return [counts.get(c, 0) for c in customer_ids]

    # -- helpers ----------------------------------------------------------------------------

    async def _check_draft(self, org: str, draft: InvoiceDraft) -> _CheckedDraft:
        """Every problem of a draft at once; the customer must exist in the organization."""
        path = ("input",)
        errors: list[DomainError] = []
        currency = ""
        try:
            currency = normalize_currency(draft.currency)
        except DomainError as exc:
            errors.append(exc.at((*path, "currency")))
        if len(draft.lines) > MAX_LINES:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    f"An invoice has at most {MAX_LINES} lines.",
                    field=(*path, "lines"),
                )
            )
            lines: list[LineDraft] = []
        else:
            lines, line_errors = _checked_lines(draft.lines, (*path, "lines"))
            errors += line_errors
        memo = draft.memo.strip()
        if len(memo) > _MAX_MEMO:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    f"The memo is at most {_MAX_MEMO} characters.",
                    field=(*path, "memo"),
                )
            )
        if draft.due_date is not None and draft.due_date < datetime.now(UTC).date():
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "The due date cannot be in the past.",
                    field=(*path, "dueDate"),
                )
            )
        start, end = _utc(draft.period_start), _utc(draft.period_end)
        if start is not None and end is not None and end < start:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "A billing period cannot end before it starts.",
                    field=(*path, "periodEnd"),
                )
            )
        if currency and not errors:
            try:
                compute_totals(lines, currency)
            except DomainError as exc:
                errors.append(exc.at((*path, "lines")))
        (customer,) = await self._customers.read.by_ids(org, [draft.customer_id])
        if customer is None:
            errors.append(NotFound("Customer", (*path, "customerId")))
        if errors:
            raise ValidationFailed(errors)
        return _CheckedDraft(
            customer_id=draft.customer_id,
            currency=currency,
            lines=lines,
            due_date=draft.due_date,
            memo=memo,
            subscription_id=draft.subscription_id,
            period_start=start,
            period_end=end,
        )

    async def _insert_draft(self, org: str, invoice_id: str, draft: _CheckedDraft) -> Invoice:
        row = await self._invoices.insert(
            {
                "organization_id": org,
                "id": invoice_id,
                "customer_id": draft.customer_id,
                "subscription_id": draft.subscription_id,
                "status": InvoiceStatus.DRAFT.value,
                "currency": draft.currency,
                "memo": draft.memo,
                "due_date": draft.due_date,
                "period_start": draft.period_start,
                "period_end": draft.period_end,
            }
        )
        assert row is not None  # a fresh id cannot conflict
        lines = [(new_id("il"), line) for line in draft.lines]
        return await self._reprice(org, row, lines)

    async def _reprice(self, org: str, row: Row, lines: Sequence[tuple[str, LineDraft]]) -> Invoice:
        """Recompute a draft's preview (tax and coupon as of now, no credit balance) and store
        its lines and totals."""
        customer = await self._customer(org, row["customer_id"])
        tax = await self._tax_rates.for_customer(org, customer)
        applied = await self._coupons.preview(
            org,
            customer_id=customer.id,
            subscription_id=row["subscription_id"],
            currency=row["currency"],
        )
        totals = self._compute([line for _, line in lines], row["currency"], tax, applied, 0)
        await self._lines.replace(
            org, row["id"], _line_rows(org, row["id"], totals, [i for i, _ in lines])
        )
        updated = await self._invoices.transition(
            org,
            row["id"],
            allowed=[InvoiceStatus.DRAFT.value],
            values={**_total_values(totals), **_pricing_values(tax, applied)},
        )
        assert updated is not None  # a draft locked (or inserted) by this transaction
        return Invoice.from_row(updated)

    @staticmethod
    def _compute(
        lines: Sequence[LineDraft],
        currency: str,
        tax: TaxChoice,
        applied: AppliedCoupon | None,
        balance: int,
    ) -> InvoiceTotals:
        try:
            return compute_totals(
                lines,
                currency,
                coupon=applied.terms if applied else None,
                tax_rate=tax.math_rate(),
                reverse_charge=tax.reverse_charge,
                customer_balance=balance,
            )
        except DomainError as exc:
            raise exc.at(("input", "lines")) from None

    async def _lock_draft(self, org: str, invoice_id: str, verb: str = "changed") -> Row:
        row = await self._invoices.lock_in(org, invoice_id, [InvoiceStatus.DRAFT.value])
        if row is None:
            raise await self._refusal(org, invoice_id, verb)
        return row

    async def _current_lines(self, org: str, invoice_id: str) -> list[InvoiceLine]:
        (lines,) = await self.lines_of(org, [invoice_id])
        return [line for line in lines if line.given]

    async def _customer(self, org: str, customer_id: str) -> Customer:
        (customer,) = await self._customers.read.by_ids(org, [customer_id])
        assert customer is not None  # invoices reference their customer (foreign key)
        return customer

    async def _refusal(self, org: str, invoice_id: str, verb: str) -> DomainError:
        """Why a conditional update matched nothing: no such invoice, its status, or a charge
        in flight."""
        (invoice,) = await self.read.by_ids(org, [invoice_id])
        if invoice is None:
            return NotFound("Invoice", ("input", "invoiceId"))
        if invoice.payment_in_progress and invoice.status.value in PAYABLE:
            return DomainError(
                ErrorCode.OPERATION_IN_PROGRESS,
                "A payment of this invoice is in flight; try again when it has finished.",
                field=("input", "invoiceId"),
            )
        article = "An" if invoice.status.value[0] in "aeiou" else "A"
        return DomainError(
            ErrorCode.INVALID_STATE,
            f"{article} {invoice.status.value} invoice cannot be {verb}.",
            field=("input", "invoiceId"),
        )

    @staticmethod
    def _reason(reason: str) -> str | None:
        note = reason.strip()
        if len(note) > _MAX_REASON:
            raise DomainError(
                ErrorCode.INVALID,
                f"A reason is at most {_MAX_REASON} characters.",
                field=("input", "reason"),
            )
        return note or None


@dataclass(frozen=True)
class _CheckedDraft:
    customer_id: str
    currency: str
    lines: list[LineDraft]
    due_date: date | None
    memo: str
    subscription_id: str | None
    period_start: datetime | None
    period_end: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)
