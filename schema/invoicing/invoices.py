"""Invoices: types, inputs, payloads, queries and mutations; invoice settings.

Over 500 lines on purpose: the settings share the root classes ``InvoiceQueries`` and
``InvoiceMutations`` with the invoices, whose order of fields is the order of the committed
``schema.graphql``; splitting them would reorder the published schema for no reader's gain.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.catalog import CouponRecord, TaxRate
from app.core.money import Money as DomainMoney
from app.customers import Customer as DomainCustomer
from app.invoicing import MAX_LINES as _MAX_LINES
from app.invoicing import UPDATABLE as SETTINGS_UPDATABLE
from app.invoicing import CreditNote as DomainCreditNote
from app.invoicing import Invoice as DomainInvoice
from app.invoicing import InvoiceDraft, LineInput
from app.invoicing import InvoiceLine as DomainInvoiceLine
from app.invoicing import InvoiceSettings as DomainInvoiceSettings
from app.payments import Payment as DomainPayment
from resolvers.catalog import coupons as resolve_coupons
from resolvers.invoicing import credit_notes as resolve_credit_notes
from resolvers.invoicing import invoices as resolve
from schema.base import INPUT, Info
from schema.catalog.coupons import Coupon
from schema.errors import UserError, attempt
from schema.filters import as_utc, created_from, created_range, created_to
from schema.invoicing.credit_notes import CreditNote
from schema.invoicing.enums import InvoiceStatus, LineKind
from schema.money import Money
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    ORDER_BY,
    Connection,
    ListOrder,
    Window,
    ordered,
    to_connection,
    window,
)
from schema.permissions import AdminOnly, AdminOrService, AnyRole
from schema.scalars import BigInt

if TYPE_CHECKING:
    from schema.customers import Customer
    from schema.payments import Payment

__all__ = [
    "IDEMPOTENCY_KEY",
    "Invoice",
    "InvoiceMutations",
    "InvoiceQueries",
    "customer_balances",
    "customer_invoices",
]

IDEMPOTENCY_KEY = (
    "Your unique key for this request (1-255 chars, e.g. a UUID). Retrying with the same key "
    "and input returns the first result and never acts twice; the same key with another input "
    "is IDEMPOTENCY_KEY_REUSED. Kept 24 hours."
)


@strawberry.type(description="One line of an invoice; amounts in the invoice's currency.")
class InvoiceLine(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `il_…`.")

    is_type_of = serves(DomainInvoiceLine)
    kind: LineKind = strawberry.field(description="What the line is for.")
    description: str = strawberry.field(description="Text printed on the invoice.")
    quantity: BigInt = strawberry.field(description="Number of units, ≥ 0.")
    unit_amount: Money = strawberry.field(description="Price of one unit (negative for credits).")
    amount: Money = strawberry.field(description="`quantity x unitAmount`, exactly.")
    discount_amount: Money = strawberry.field(
        description="This line's share of the invoice discount (largest remainder method)."
    )
    taxable: bool = strawberry.field(description="Whether the invoice's tax applies to it.")
    discountable: bool = strawberry.field(
        description="Whether the invoice's coupon applies to it. False for credits for unused "
        "time: they are computed from what was paid for that time, after its own discount."
    )
    tax_rate: int | None = strawberry.field(
        description="On TAX lines, the rate in millionths (200000 = 20 %); null elsewhere."
    )
    informational: bool = strawberry.field(
        description="True for an inclusive tax line: printed, but already inside the other "
        "amounts and not added to the total."
    )
    period_start: datetime | None = strawberry.field(description="Start of the period billed.")
    period_end: datetime | None = strawberry.field(description="End of the period billed.")


@strawberry.type(description="The tax an invoice was (or would be) issued with.")
class InvoiceTax:
    name: str = strawberry.field(description="The rate's name, e.g. `VAT`.")
    percentage: str = strawberry.field(description='The rate in percent, e.g. "20", "8.875".')
    inclusive: bool = strawberry.field(description="True when prices include the tax.")
    reverse_charge: bool = strawberry.field(
        description="True when the customer accounts for the tax (zero-rate line)."
    )


def invoice_tax(
    name: str | None, rate: int | None, inclusive: bool, reverse_charge: bool
) -> InvoiceTax | None:
    """The tax an invoice (or its preview) carries, as the API shows it."""
    if reverse_charge:
        return InvoiceTax(
            name=name or "Reverse charge", percentage="0", inclusive=False, reverse_charge=True
        )
    if name is None or rate is None:
        return None
    terms = TaxRate(name, rate, inclusive)
    return InvoiceTax(
        name=terms.name, percentage=terms.percent, inclusive=terms.inclusive, reverse_charge=False
    )


@strawberry.type(description="Why the last charge of an invoice failed.")
class InvoicePaymentError:
    code: str | None = strawberry.field(
        description="Stripe's decline or error code, e.g. `card_declined`."
    )
    message: str | None = strawberry.field(description="Stripe's explanation.")


@strawberry.type(
    description="A bill to a customer. Amounts are Money in the invoice's currency; "
    "`total` equals the sum of the non-informational lines exactly."
)
class Invoice(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `inv_…`.")

    is_type_of = serves(DomainInvoice)

    number: str | None = strawberry.field(
        description="Gapless per organization, e.g. `ACME-2026-000042`; null for drafts."
    )
    status: InvoiceStatus = strawberry.field(description="Where it stands.")
    customer_id: strawberry.ID = strawberry.field(description="The customer billed, `cus_…`.")
    subscription_id: strawberry.ID | None = strawberry.field(
        description="The subscription it bills, if any."
    )
    currency: str = strawberry.field(description="ISO 4217 code of every amount.")
    memo: str = strawberry.field(description="Note printed on the invoice; may be empty.")
    due_date: date | None = strawberry.field(description="When payment is due; null: on receipt.")
    period_start: datetime | None = strawberry.field(description="Billing period start, if any.")
    period_end: datetime | None = strawberry.field(description="Billing period end, if any.")
    subtotal: Money = strawberry.field(description="Sum of the given lines.")
    discount_total: Money = strawberry.field(description="The coupon's discount (≥ 0).")
    taxable_amount: Money = strawberry.field(description="Tax base, net of tax.")
    tax_total: Money = strawberry.field(description="Tax (already included when inclusive).")
    tax_inclusive: bool = strawberry.field(description="True when prices include the tax.")
    total: Money = strawberry.field(
        description="subtotal - discount (+ tax when exclusive); may be negative (a credit)."
    )
    balance_applied: Money = strawberry.field(
        description="Customer credit balance spent on this invoice at finalization."
    )
    credit_to_balance: Money = strawberry.field(
        description="For a negative total, the credit added to the customer's balance."
    )
    amount_credited: Money = strawberry.field(description="Total of its credit notes.")
    credit_applied: Money = strawberry.field(
        description="Part of its credit notes that reduced the amount due."
    )
    amount_due: Money = strawberry.field(
        description="What the customer has to pay: max(total, 0) - balance applied - credit "
        "applied."
    )
    amount_paid: Money = strawberry.field(description="Paid so far (by a charge).")
    amount_remaining: Money = strawberry.field(description="amountDue - amountPaid.")
    payment_attempts: int = strawberry.field(description="Charges attempted (invoicePay).")
    payment_in_progress: bool = strawberry.field(
        description="True while a charge is in flight (it cannot be voided then)."
    )
    status_reason: str | None = strawberry.field(
        description="The reason given when it was voided or marked uncollectible."
    )
    finalized_at: datetime | None = strawberry.field(description="Issue time (UTC).")
    paid_at: datetime | None = strawberry.field(description="When it was paid.")
    voided_at: datetime | None = strawberry.field(description="When it was voided.")
    marked_uncollectible_at: datetime | None = strawberry.field(
        description="When it was marked uncollectible."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")
    tax_name: strawberry.Private[str | None]
    tax_rate: strawberry.Private[int | None]
    reverse_charge: strawberry.Private[bool]
    coupon_id: strawberry.Private[str | None]
    payment_id: strawberry.Private[str | None]
    last_payment_error_code: strawberry.Private[str | None]
    last_payment_error_message: strawberry.Private[str | None]

    @strawberry.field(
        description="Its lines in order: given lines, then discount, then tax.",
        graphql_type=list[InvoiceLine],
    )
    async def lines(
        self, info: Info, root: strawberry.Parent[DomainInvoice]
    ) -> list[DomainInvoiceLine]:
        return await resolve.lines_of(info.context, root)

    @strawberry.field(description="The tax applied; null when none (no rate, or exempt).")
    def tax(self) -> InvoiceTax | None:
        return invoice_tax(self.tax_name, self.tax_rate, self.tax_inclusive, self.reverse_charge)

    @strawberry.field(
        description="The coupon whose discount it carries, if any.", graphql_type=Coupon | None
    )
    async def coupon(self, info: Info) -> CouponRecord | None:
        return await resolve_coupons.coupon_of(info.context, self.coupon_id)

    @strawberry.field(description="Why the last charge failed; null if it did not.")
    def last_payment_error(self) -> InvoicePaymentError | None:
        if self.last_payment_error_code is None and self.last_payment_error_message is None:
            return None
        return InvoicePaymentError(
            code=self.last_payment_error_code, message=self.last_payment_error_message
        )

    @strawberry.field(
        description="The customer billed; null if not visible to you.",
        graphql_type=Annotated["Customer", strawberry.lazy("schema.customers")] | None,
    )
    async def customer(self, info: Info) -> DomainCustomer | None:
        return await info.context.loaders.customer_by_id.load(self.customer_id)

    @strawberry.field(
        description="The latest charge of this invoice (invoicePay), if any.",
        graphql_type=Annotated["Payment", strawberry.lazy("schema.payments")] | None,
    )
    async def payment(self, info: Info) -> DomainPayment | None:
        if self.payment_id is None:
            return None
        return await info.context.loaders.payment_by_id.load(self.payment_id)

    @strawberry.field(
        description="Credit notes issued against it, oldest first.",
        graphql_type=list[CreditNote],
    )
    async def credit_notes(self, info: Info) -> list[DomainCreditNote]:
        return await resolve_credit_notes.of_invoice(info.context, self.id)

    @strawberry.field(
        description="Where to download it as PDF (GET with the same bearer token as the API)."
    )
    def pdf_url(self, info: Info) -> str:
        return resolve.document_url(info.context, f"/invoices/{self.id}.pdf")


@strawberry.type(description="How this organization's invoices are numbered and who issues them.")
class InvoiceSettings:
    number_prefix: str = strawberry.field(
        description="Start of every number: `ACME` gives ACME-2026-000042 and, for credit "
        "notes, ACME-CN-2026-000007."
    )
    issuer_name: str = strawberry.field(description="Issuer printed on documents.")
    issuer_address: list[str] = strawberry.field(description="Issuer address lines.")
    days_until_due: int | None = strawberry.field(
        description="Due date of invoices finalized without one: this many days after issue; "
        "null: due on receipt."
    )


@strawberry.input(description="A line to bill.")
class InvoiceLineInput:
    description: str = strawberry.field(description="Printed text, 1-1000 characters.")
    unit_amount: BigInt = strawberry.field(
        description="Price of one unit in minor units of the invoice currency; negative for a "
        "credit."
    )
    quantity: BigInt = strawberry.field(default=1, description="Units, ≥ 0 (default 1).")
    kind: LineKind = strawberry.field(
        default=LineKind.ONE_OFF, description="What the line is for (not DISCOUNT or TAX)."
    )
    period_start: datetime | None = strawberry.field(
        default=None, description="Start of the period billed (UTC when no offset is given)."
    )
    period_end: datetime | None = strawberry.field(
        default=None, description="End of the period billed (UTC when no offset is given)."
    )
    taxable: bool = strawberry.field(default=True, description="Whether tax applies.")
    discountable: bool = strawberry.field(
        default=True, description="Whether the invoice's coupon applies to it."
    )

    def to_domain(self) -> LineInput:
        return LineInput(
            description=self.description,
            unit_amount=self.unit_amount,
            quantity=self.quantity,
            kind=self.kind,
            period_start=as_utc(self.period_start),
            period_end=as_utc(self.period_end),
            taxable=self.taxable,
            discountable=self.discountable,
        )


@strawberry.input(description="A one-off draft invoice.")
class InvoiceCreateInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer to bill.")
    currency: str = strawberry.field(description="ISO 4217 code of every amount.")
    lines: list[InvoiceLineInput] = strawberry.field(
        description=f"The lines (at most {_MAX_LINES}); more can be added while a draft."
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    due_date: date | None = strawberry.field(
        default=None, description="Due date (not in the past); default from the settings."
    )
    memo: str = strawberry.field(default="", description="Note printed on it (≤ 2000 chars).")
    period_start: datetime | None = strawberry.field(
        default=None, description="Billing period start, if it bills one."
    )
    period_end: datetime | None = strawberry.field(
        default=None, description="Billing period end, if it bills one."
    )

    def to_draft(self) -> InvoiceDraft:
        return InvoiceDraft(
            customer_id=self.customer_id,
            currency=self.currency,
            lines=[line.to_domain() for line in self.lines],
            due_date=self.due_date,
            memo=self.memo,
            period_start=as_utc(self.period_start),
            period_end=as_utc(self.period_end),
        )


@strawberry.input(description="Add a line to a draft.")
class InvoiceAddLineInput:
    invoice_id: strawberry.ID = strawberry.field(description="The draft invoice.")
    line: InvoiceLineInput = strawberry.field(description="The line to add (last).")


@strawberry.input(description="Remove a line from a draft.")
class InvoiceRemoveLineInput:
    invoice_id: strawberry.ID = strawberry.field(description="The draft invoice.")
    line_id: strawberry.ID = strawberry.field(description="The line, `il_…` (not discount/tax).")


@strawberry.input(description="Finalize a draft.")
class InvoiceFinalizeInput:
    invoice_id: strawberry.ID = strawberry.field(description="The draft invoice.")


@strawberry.input(description="Charge what an invoice still owes.")
class InvoicePayInput:
    invoice_id: strawberry.ID = strawberry.field(description="An open or uncollectible invoice.")
    payment_method_id: str | None = strawberry.field(
        default=None,
        description="A Stripe PaymentMethod (`pm_…`) to charge; default: the customer's "
        "default payment method.",
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.input(description="Void an open or uncollectible invoice.")
class InvoiceVoidInput:
    invoice_id: strawberry.ID = strawberry.field(description="The invoice.")
    reason: str = strawberry.field(default="", description="Why (≤ 500 chars), kept on it.")


@strawberry.input(description="Write an open invoice off as a bad debt.")
class InvoiceMarkUncollectibleInput:
    invoice_id: strawberry.ID = strawberry.field(description="The open invoice.")
    reason: str = strawberry.field(default="", description="Why (≤ 500 chars), kept on it.")


@strawberry.input(description="Filters for `invoices`; omitted fields do not filter.")
class InvoiceFilter:
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this customer's invoices."
    )
    status: list[InvoiceStatus] | None = strawberry.field(
        default=None, description="Only invoices in one of these statuses."
    )
    from_: datetime | None = created_from()
    to: datetime | None = created_to()

    def filters(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "statuses": [s.value for s in self.status] if self.status else None,
            **created_range(self.from_, self.to),
        }


@strawberry.input(description="Changes to the invoice settings; omitted fields stay.")
class InvoiceSettingsUpdateInput:
    number_prefix: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="1-20 letters, digits or `-` (upper-cased); used by numbers assigned from "
        "now on.",
    )
    issuer_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Issuer name (≤ 200 chars)."
    )
    issuer_address: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Up to 6 address lines (≤ 200 chars each)."
    )
    days_until_due: int | None = strawberry.field(
        default=strawberry.UNSET, description="0-365 days; null: due on receipt."
    )

    def changes(self) -> dict[str, object]:
        changes: dict[str, object] = {}
        for name in SETTINGS_UPDATABLE:
            value = getattr(self, name)
            if value is strawberry.UNSET or (value is None and name != "days_until_due"):
                continue
            changes[name] = value
        return changes


@strawberry.type(description="Result of the invoice mutations.")
class InvoicePayload:
    invoice: DomainInvoice | None = strawberry.field(
        graphql_type=Invoice | None,
        description="The invoice; null on errors, except after a declined charge (CARD_DECLINED), "
        "which returns the invoice left open.",
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type(description="Result of `invoiceSettingsUpdate`.")
class InvoiceSettingsPayload:
    settings: DomainInvoiceSettings | None = strawberry.field(
        graphql_type=InvoiceSettings | None, description="The settings; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


async def customer_invoices(
    info: Info, customer_id: str, page: Window, status: list[InvoiceStatus] | None
) -> Connection[DomainInvoice]:
    """``Customer.invoices``, batched across the customers of a response."""
    nodes, has_next, count = await resolve.of_customer(
        info.context,
        customer_id,
        first=page.size,
        after=page.cursor,
        statuses=[s.value for s in status] if status else None,
        newest=page.backward,
    )
    return to_connection(nodes, has_next, count, page)


async def customer_balances(info: Info, customer_id: str) -> list[DomainMoney]:
    """``Customer.creditBalances``."""
    return await info.context.loaders.balances_by_customer_id.load(customer_id)


@strawberry.type
class InvoiceQueries:
    @strawberry.field(
        description="One invoice by id; null if it does not exist or is not yours.",
        permission_classes=[AnyRole],
        graphql_type=Invoice | None,
    )
    async def invoice(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="`inv_…`")]
    ) -> DomainInvoice | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="Invoices, oldest first. A customer token sees only its own.",
        permission_classes=[AnyRole],
        graphql_type=Connection[Invoice],
    )
    async def invoices(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[InvoiceFilter | None, strawberry.argument(description="Filters.")] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> Connection[DomainInvoice]:
        page = window(first, after, last, before)
        filters = ordered(filter.filters() if filter is not None else {}, order_by, page)
        nodes, has_next, count = await resolve.list_page(
            info.context,
            filters,
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)

    @strawberry.field(
        description="How invoices are numbered and who issues them. Admin or service.",
        permission_classes=[AdminOrService],
        graphql_type=InvoiceSettings,
    )
    async def invoice_settings(self, info: Info) -> DomainInvoiceSettings:
        return await resolve.settings(info.context)


@strawberry.type
class InvoiceMutations:
    @strawberry.mutation(
        description="Create a one-off draft invoice (no number yet; totals are a preview). "
        "Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def invoice_create(
        self,
        info: Info,
        input: Annotated[InvoiceCreateInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        invoice, errors = await attempt(
            resolve.create(info.context, input.to_draft(), input.idempotency_key)
        )
        return InvoicePayload(invoice=invoice, errors=errors)

    @strawberry.mutation(
        description="Add a line to a draft and recompute its preview. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def invoice_add_line(
        self,
        info: Info,
        input: Annotated[InvoiceAddLineInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        invoice, errors = await attempt(
            resolve.add_line(info.context, input.invoice_id, input.line.to_domain())
        )
        return InvoicePayload(invoice=invoice, errors=errors)

    @strawberry.mutation(
        description="Remove a line from a draft and recompute its preview. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def invoice_remove_line(
        self,
        info: Info,
        input: Annotated[InvoiceRemoveLineInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        invoice, errors = await attempt(
            resolve.remove_line(info.context, input.invoice_id, input.line_id)
        )
        return InvoicePayload(invoice=invoice, errors=errors)

    @strawberry.mutation(
        description="Finalize a draft: tax of the customer's address, coupon in force, credit "
        "balance spent, and the next gapless number. OPEN, or PAID when nothing is left to pay. "
        "Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def invoice_finalize(
        self,
        info: Info,
        input: Annotated[InvoiceFinalizeInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        invoice, errors = await attempt(resolve.finalize(info.context, input.invoice_id))
        return InvoicePayload(invoice=invoice, errors=errors)

    @strawberry.mutation(
        description="Charge what an open or uncollectible invoice still owes (the given card "
        "or the customer's default one) through a Stripe payment; it is marked PAID only when "
        "Stripe reports success. A decline is a CARD_DECLINED error, returned with the invoice "
        "left OPEN and `lastPaymentError` set. A customer may pay its own invoices.",
        permission_classes=[AnyRole],
    )
    async def invoice_pay(
        self,
        info: Info,
        input: Annotated[InvoicePayInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        result, errors = await attempt(
            resolve.pay(
                info.context, input.invoice_id, input.payment_method_id, input.idempotency_key
            )
        )
        if result is None:
            return InvoicePayload(invoice=None, errors=errors)
        declined = [UserError.from_domain(result.declined)] if result.declined else []
        return InvoicePayload(invoice=result.invoice, errors=declined)

    @strawberry.mutation(
        description="Void an open or uncollectible invoice; it keeps its number and the credit "
        "balance it used goes back to the customer. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def invoice_void(
        self,
        info: Info,
        input: Annotated[InvoiceVoidInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        invoice, errors = await attempt(resolve.void(info.context, input.invoice_id, input.reason))
        return InvoicePayload(invoice=invoice, errors=errors)

    @strawberry.mutation(
        description="Mark an open invoice uncollectible (it can still be paid or voided). "
        "Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def invoice_mark_uncollectible(
        self,
        info: Info,
        input: Annotated[InvoiceMarkUncollectibleInput, strawberry.argument(description=INPUT)],
    ) -> InvoicePayload:
        invoice, errors = await attempt(
            resolve.mark_uncollectible(info.context, input.invoice_id, input.reason)
        )
        return InvoicePayload(invoice=invoice, errors=errors)

    @strawberry.mutation(
        description="Change how invoices are numbered and who issues them. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def invoice_settings_update(
        self,
        info: Info,
        input: Annotated[InvoiceSettingsUpdateInput, strawberry.argument(description=INPUT)],
    ) -> InvoiceSettingsPayload:
        settings, errors = await attempt(resolve.update_settings(info.context, input.changes()))
        return InvoiceSettingsPayload(settings=settings, errors=errors)
