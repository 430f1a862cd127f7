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

The invoice, its lines and drafts are in ``model.py``. This module stays over 500 lines because
``InvoiceService`` is the status machine: creating, repricing and finalizing a draft share the
checks and the locked read of the draft, and each status change is one conditional UPDATE
beside the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from app.catalog import AppliedCoupon, Coupon, CouponService, TaxChoice, TaxRateService
from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.idempotency import Claim, IdempotencyKeys, Stored
from app.core.ids import new_id
from app.core.listing import Listing
from app.core.money import normalize_currency
from app.core.pubsub import Event, publish
from app.customers import CreditBalances, Customer, CustomerService
from app.invoicing.math import InvoiceTotals, LineDraft, compute_totals
from app.invoicing.model import (
    _MAX_MEMO,
    _MAX_REASON,
    MAX_LINES,
    PAYABLE,
    Invoice,
    InvoiceDraft,
    InvoiceLine,
    InvoiceStatus,
    LineInput,
    _checked_lines,
    _line_draft,
    _line_rows,
    _pricing_values,
    _total_values,
    _utc,
    customer_snapshot,
    invoice_view,
)
from app.invoicing.numbering import InvoiceSettingsService, Series
from app.ledger import Ledger, Refs
from app.outgoing_webhooks import emit
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
            await emit(self._db, org, "invoice.finalized", invoice_view(invoice))
            if settled:
                await emit(self._db, org, "invoice.paid", invoice_view(invoice))
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
            await emit(self._db, org, "invoice.voided", invoice_view(invoice))
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

    async def lines_by_ids(
        self, org: str, ids: Sequence[str]
    ) -> list[tuple[InvoiceLine, str] | None]:
        """Lines by id, each with its invoice's customer (for visibility), aligned with ``ids``."""
        found = await self._lines.by_ids(org, ids)
        return [
            (InvoiceLine.from_row(found[i]), found[i]["customer_id"]) if i in found else None
            for i in ids
        ]

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
        newest: bool = False,
    ) -> list[tuple[list[Invoice], bool]]:
        rows = await self._invoices.pages_by_customer(
            org, customer_ids, first=first, after=after, statuses=statuses, newest=newest
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
