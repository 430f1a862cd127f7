"""Credit notes: types, inputs, payloads, queries and mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from app.invoicing import CreditNote as DomainCreditNote
from app.invoicing import CreditNoteDraft, CreditNoteLineInput, CreditNoteReason, CreditSettlement
from app.invoicing import CreditNoteLine as DomainCreditNoteLine
from app.invoicing import Invoice as DomainInvoice
from resolvers.invoicing import credit_notes as resolve
from resolvers.invoicing.invoices import document_url
from schema.base import INPUT, Info
from schema.enums import expose
from schema.errors import UserError, attempt
from schema.invoicing.enums import LineKind
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
    ordered,
    to_connection,
    window,
)
from schema.permissions import AdminOrService, AnyRole
from schema.scalars import BigInt

if TYPE_CHECKING:
    from schema.invoicing.invoices import Invoice

__all__ = ["CreditNote", "CreditNoteMutations", "CreditNoteQueries"]

expose(
    CreditNoteReason,
    "CreditNoteReason",
    "Why a credit note was issued.",
    {
        CreditNoteReason.REFUND: "Money returned to the customer.",
        CreditNoteReason.PRORATION: "Unused time after a plan change or cancellation.",
        CreditNoteReason.GOODWILL: "A goodwill adjustment.",
        CreditNoteReason.DUPLICATE: "The invoice billed something twice.",
        CreditNoteReason.OTHER: "Another reason (say which in the memo).",
    },
)

expose(
    CreditSettlement,
    "CreditSettlement",
    "Where the credit goes once what an open invoice still owes is covered.",
    {
        CreditSettlement.BALANCE: "To the customer's credit balance, spent by its next invoices.",
        CreditSettlement.REFUND: (
            "Returned by a refund of the invoice's payment, which you make with refundCreate "
            "(the credit note records it and moves no money). Only for paid invoices; on an "
            "open invoice the rest goes to the balance."
        ),
    },
)


@strawberry.type(description="One line of a credit note; amounts are credits (positive).")
class CreditNoteLine(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `cnl_…`.")

    is_type_of = serves(DomainCreditNoteLine)
    kind: LineKind = strawberry.field(description="ONE_OFF for credited lines, TAX for the tax.")
    description: str = strawberry.field(description="Printed text.")
    quantity: BigInt = strawberry.field(description="Units credited.")
    unit_amount: Money = strawberry.field(description="Credit per unit.")
    amount: Money = strawberry.field(description="`quantity x unitAmount`.")
    tax_rate: int | None = strawberry.field(
        description="On the TAX line, the rate in millionths; null elsewhere."
    )
    informational: bool = strawberry.field(
        description="True for an inclusive tax line (already inside the other amounts)."
    )


@strawberry.type(
    description="A document reducing what a finalized invoice charges, numbered gaplessly "
    "(e.g. `ACME-CN-2026-000007`)."
)
class CreditNote(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `cn_…`.")

    is_type_of = serves(DomainCreditNote)

    number: str = strawberry.field(description="Gapless per organization.")
    invoice_id: strawberry.ID = strawberry.field(description="The invoice credited.")
    customer_id: strawberry.ID = strawberry.field(description="The invoice's customer.")
    currency: str = strawberry.field(description="The invoice's currency.")
    reason: CreditNoteReason = strawberry.field(description="Why it was issued.")
    settlement: CreditSettlement = strawberry.field(description="Where the rest went.")
    memo: str = strawberry.field(description="Note printed on it; may be empty.")
    subtotal: Money = strawberry.field(description="Sum of the credited lines.")
    tax_total: Money = strawberry.field(description="Tax credited, at the invoice's rate.")
    tax_inclusive: bool = strawberry.field(description="True when the lines include the tax.")
    total: Money = strawberry.field(description="The whole credit.")
    applied_to_invoice: Money = strawberry.field(
        description="Part that reduced what the (open) invoice still owed."
    )
    credited_to_balance: Money = strawberry.field(
        description="Part added to the customer's credit balance."
    )
    refunded: Money = strawberry.field(
        description="Part to be returned by a refund (REFUND settlement)."
    )
    created_at: datetime = strawberry.field(description="Issue time (UTC).")

    @strawberry.field(
        description="Its lines, then the tax line if any.", graphql_type=list[CreditNoteLine]
    )
    async def lines(
        self, info: Info, root: strawberry.Parent[DomainCreditNote]
    ) -> list[DomainCreditNoteLine]:
        return await resolve.lines_of(info.context, root)

    @strawberry.field(
        description="The invoice credited; null if not visible to you.",
        graphql_type=Annotated["Invoice", strawberry.lazy("schema.invoicing.invoices")] | None,
    )
    async def invoice(self, info: Info) -> DomainInvoice | None:
        return await info.context.loaders.invoice_by_id.load(self.invoice_id)

    @strawberry.field(description="Where to download it as PDF (GET with your bearer token).")
    def pdf_url(self, info: Info) -> str:
        return document_url(info.context, f"/credit-notes/{self.id}.pdf")


@strawberry.input(name="CreditNoteLineInput", description="A line to credit.")
class CreditNoteLineInputType:
    description: str = strawberry.field(description="Printed text, 1-1000 characters.")
    unit_amount: BigInt = strawberry.field(
        description="Credit per unit in minor units, > 0, priced like the invoice (tax "
        "included when its tax is inclusive)."
    )
    quantity: BigInt = strawberry.field(default=1, description="Units, ≥ 1 (default 1).")


@strawberry.input(description="A credit note against an open or paid invoice.")
class CreditNoteCreateInput:
    invoice_id: strawberry.ID = strawberry.field(description="The invoice to credit.")
    lines: list[CreditNoteLineInputType] = strawberry.field(
        description="What is credited (1-200 lines); tax is added at the invoice's rate. The "
        "total may not exceed what the invoice can still be credited."
    )
    reason: CreditNoteReason = strawberry.field(description="Why.")
    idempotency_key: str = strawberry.field(
        description="Your unique key for this request (1-255 chars); a retry with the same key "
        "and input returns the same credit note."
    )
    settlement: CreditSettlement = strawberry.field(
        default=CreditSettlement.BALANCE, description="Where the rest of the credit goes."
    )
    memo: str = strawberry.field(default="", description="Note printed on it (≤ 2000 chars).")

    def to_draft(self) -> CreditNoteDraft:
        return CreditNoteDraft(
            invoice_id=self.invoice_id,
            lines=[
                CreditNoteLineInput(line.description, line.unit_amount, line.quantity)
                for line in self.lines
            ],
            reason=self.reason,
            settlement=self.settlement,
            memo=self.memo,
        )


@strawberry.input(description="Filters for `creditNotes`; omitted fields do not filter.")
class CreditNoteFilter:
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this customer's credit notes."
    )
    invoice_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only those of this invoice."
    )

    def filters(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "invoice_id": self.invoice_id}


@strawberry.type(description="Result of `creditNoteCreate`.")
class CreditNotePayload:
    credit_note: DomainCreditNote | None = strawberry.field(
        graphql_type=CreditNote | None, description="The credit note; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class CreditNoteQueries:
    @strawberry.field(
        description="One credit note by id; null if it does not exist or is not yours.",
        permission_classes=[AnyRole],
        graphql_type=CreditNote | None,
    )
    async def credit_note(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="`cn_…`")]
    ) -> DomainCreditNote | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="Credit notes, oldest first. A customer token sees only its own.",
        permission_classes=[AnyRole],
        graphql_type=Connection[CreditNote],
    )
    async def credit_notes(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[
            CreditNoteFilter | None, strawberry.argument(description="Filters.")
        ] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> Connection[DomainCreditNote]:
        page = window(first, after, last, before)
        filters = ordered(filter.filters() if filter is not None else {}, order_by, page)
        nodes, has_next, count = await resolve.list_page(
            info.context,
            filters,
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class CreditNoteMutations:
    @strawberry.mutation(
        description="Issue a credit note against an open or paid invoice, with the next "
        "gapless credit note number. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def credit_note_create(
        self,
        info: Info,
        input: Annotated[CreditNoteCreateInput, strawberry.argument(description=INPUT)],
    ) -> CreditNotePayload:
        note, errors = await attempt(
            resolve.create(info.context, input.to_draft(), input.idempotency_key)
        )
        return CreditNotePayload(credit_note=note, errors=errors)
