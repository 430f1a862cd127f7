"""The customer ledger: every money movement of a customer as double-entry ledger entries."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry

from app.core.money import Money as DomainMoney
from app.ledger import Account as DomainAccount
from app.ledger import EntryKind as DomainEntryKind
from app.ledger import LedgerEntry as DomainLedgerEntry
from resolvers import ledger as resolve
from resolvers.ledger import LedgerView
from schema.base import Info
from schema.money import Money
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    Connection,
    to_connection,
    window,
)
from schema.permissions import AnyRole

__all__ = ["LedgerQueries"]


@strawberry.enum(description="A ledger account, kept per customer and currency.")
class LedgerAccount(enum.Enum):
    RECEIVABLE = strawberry.enum_value(
        DomainAccount.RECEIVABLE.value, description="What the customer owes on invoices (asset)."
    )
    CASH = strawberry.enum_value(
        DomainAccount.CASH.value,
        description="Money received from the customer at Stripe, net of refunds (asset).",
    )
    CUSTOMER_CREDIT = strawberry.enum_value(
        DomainAccount.CUSTOMER_CREDIT.value,
        description="The customer's credit balance, spent by its next invoices (a liability: "
        "its balance is negative while the customer has credit).",
    )
    REFUNDS_PAYABLE = strawberry.enum_value(
        DomainAccount.REFUNDS_PAYABLE.value,
        description="Refunds credit notes owe the customer until Stripe pays them (liability).",
    )
    REVENUE = strawberry.enum_value(
        DomainAccount.REVENUE.value, description="Income, net of tax, before discounts. Staff only."
    )
    DISCOUNTS = strawberry.enum_value(
        DomainAccount.DISCOUNTS.value, description="Coupons given (contra income). Staff only."
    )
    TAX = strawberry.enum_value(
        DomainAccount.TAX.value, description="Tax collected for the authorities. Staff only."
    )
    BAD_DEBT = strawberry.enum_value(
        DomainAccount.BAD_DEBT.value, description="Invoices written off. Staff only."
    )
    OPENING = strawberry.enum_value(
        DomainAccount.OPENING.value,
        description="Balances carried in when the ledger was created. Staff only.",
    )


@strawberry.enum(description="What moved the money of a ledger transaction.")
class LedgerEntryKind(enum.Enum):
    INVOICE_FINALIZED = strawberry.enum_value(
        DomainEntryKind.INVOICE_FINALIZED.value, description="An invoice was finalized."
    )
    BALANCE_APPLIED = strawberry.enum_value(
        DomainEntryKind.BALANCE_APPLIED.value,
        description="Credit balance spent on an invoice at finalization.",
    )
    CREDIT_INVOICE = strawberry.enum_value(
        DomainEntryKind.CREDIT_INVOICE.value,
        description="An invoice with a negative total gave its credit to the balance.",
    )
    INVOICE_VOIDED = strawberry.enum_value(
        DomainEntryKind.INVOICE_VOIDED.value,
        description="An invoice was voided: everything it moved is undone.",
    )
    INVOICE_UNCOLLECTIBLE = strawberry.enum_value(
        DomainEntryKind.INVOICE_UNCOLLECTIBLE.value,
        description="An invoice was written off as uncollectible.",
    )
    INVOICE_COLLECTED = strawberry.enum_value(
        DomainEntryKind.INVOICE_COLLECTED.value,
        description="An invoice written off was paid after all.",
    )
    PAYMENT = strawberry.enum_value(
        DomainEntryKind.PAYMENT.value, description="A payment succeeded."
    )
    REFUND = strawberry.enum_value(
        DomainEntryKind.REFUND.value,
        description="A refund succeeded (or, negative, Stripe reversed one).",
    )
    CREDIT_NOTE = strawberry.enum_value(
        DomainEntryKind.CREDIT_NOTE.value, description="A credit note was issued."
    )
    CREDIT_NOTE_REFUND_FAILED = strawberry.enum_value(
        DomainEntryKind.CREDIT_NOTE_REFUND_FAILED.value,
        description="A credit note's refund failed or was rejected: its amount went to the "
        "credit balance instead.",
    )
    OPENING_BALANCE = strawberry.enum_value(
        DomainEntryKind.OPENING_BALANCE.value,
        description="A balance carried in when the ledger was created.",
    )


@strawberry.type(
    description="One entry of a balanced ledger transaction: its amounts sum to zero. Append-"
    "only: a correction is a new transaction."
)
class LedgerEntry(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `le_…` (sorts by time).")

    is_type_of = serves(DomainLedgerEntry)
    transaction_id: strawberry.ID = strawberry.field(
        description="The transaction, `lt_…`, whose entries balance to zero."
    )

    @strawberry.field(description="The account it moves.")
    def account(self, root: strawberry.Parent[DomainLedgerEntry]) -> LedgerAccount:
        return LedgerAccount(root.account.value)

    @strawberry.field(description="What moved it.")
    def kind(self, root: strawberry.Parent[DomainLedgerEntry]) -> LedgerEntryKind:
        return LedgerEntryKind(root.kind.value)

    @strawberry.field(
        description="Signed, in minor units: a debit is positive, a credit negative.",
        graphql_type=Money,
    )
    def amount(self, root: strawberry.Parent[DomainLedgerEntry]) -> DomainMoney:
        return DomainMoney(root.amount, root.currency)

    invoice_id: strawberry.ID | None = strawberry.field(description="The invoice, if any.")
    payment_id: strawberry.ID | None = strawberry.field(description="The payment, if any.")
    refund_id: strawberry.ID | None = strawberry.field(description="The refund, if any.")
    credit_note_id: strawberry.ID | None = strawberry.field(description="The credit note, if any.")
    subscription_id: strawberry.ID | None = strawberry.field(
        description="The subscription, if any."
    )
    occurred_at: datetime = strawberry.field(description="When it was posted (UTC).")


@strawberry.type(description="An account's balance: its debits minus its credits.")
class LedgerAccountBalance:
    account: LedgerAccount = strawberry.field(description="The account.")
    balance: DomainMoney = strawberry.field(
        graphql_type=Money,
        description="Debits minus credits, in minor units (negative for a credit balance, such "
        "as the customer's credit).",
    )


@strawberry.type(description="A customer's ledger in one currency.")
class CustomerLedger:
    customer_id: strawberry.ID = strawberry.field(description="The customer, `cus_…`.")
    currency: str = strawberry.field(description="ISO 4217 code.")

    @strawberry.field(
        description="Each account's balance over the entries before `to` (all of them without "
        "`to`), in the order of `LedgerAccount`."
    )
    async def balances(
        self, info: Info, root: strawberry.Parent[LedgerView]
    ) -> list[LedgerAccountBalance]:
        return [
            LedgerAccountBalance(account=LedgerAccount(account.value), balance=money)
            for account, money in await resolve.balances(info.context, root)
        ]

    @strawberry.field(
        description="The entries from `from` to `to`, oldest first.",
        graphql_type=Connection[LedgerEntry],
    )
    async def entries(
        self,
        info: Info,
        root: strawberry.Parent[LedgerView],
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
    ) -> Connection[DomainLedgerEntry]:
        page = window(first, after, last, before)
        nodes, has_next, count = await resolve.entries(
            info.context, root, first=page.size, after=page.cursor, newest=page.backward
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class LedgerQueries:
    @strawberry.field(
        description="A customer's double-entry ledger in one currency: every money movement "
        "(invoices finalized, payments, refunds, credit notes, credit balance spent or given, "
        "write-offs) as balanced entries. Admins and services see every account; a customer "
        "token sees its own ledger only (null for another customer), limited to its side of "
        "the books: RECEIVABLE, CUSTOMER_CREDIT, CASH and REFUNDS_PAYABLE.",
        permission_classes=[AnyRole],
        graphql_type=CustomerLedger | None,
    )
    async def ledger(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="`cus_…`")],
        currency: Annotated[str, strawberry.argument(description="ISO 4217 code, e.g. `USD`.")],
        from_: Annotated[
            datetime | None,
            strawberry.argument(name="from", description="Entries posted at or after this."),
        ] = None,
        to: Annotated[
            datetime | None,
            strawberry.argument(description="Entries posted before this; balances as of it."),
        ] = None,
    ) -> LedgerView | None:
        return await resolve.view(info.context, customer_id, currency, from_, to)
