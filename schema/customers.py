"""Customers: type, inputs, payloads, queries and mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.core.money import Money as DomainMoney
from app.customers import UPDATABLE, Address, CustomerDraft, TaxId
from app.customers import Customer as DomainCustomer
from app.invoicing import Invoice as DomainInvoice
from app.invoicing import InvoiceStatus
from app.subscriptions import Subscription as DomainSubscription
from resolvers import customers as resolve
from schema.base import INPUT, Info
from schema.enums import TaxExempt
from schema.errors import UserError, attempt
from schema.invoicing.invoices import Invoice, customer_balances, customer_invoices
from schema.money import Money
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    Connection,
    ListOrder,
    ordered,
    to_connection,
    window,
)
from schema.payments import PaymentConnection, customer_payments
from schema.permissions import AdminOrService, AnyRole

if TYPE_CHECKING:
    from schema.subscriptions import Subscription

__all__ = ["Customer", "CustomerMutations", "CustomerQueries"]


@strawberry.type(name="Address", description="A postal address.")
class AddressType:
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code, e.g. `FR`.")
    line1: str = strawberry.field(description="Street line 1; may be empty.")
    line2: str = strawberry.field(description="Street line 2; may be empty.")
    city: str = strawberry.field(description="City; may be empty.")
    region: str = strawberry.field(description="State, province or region; may be empty.")
    postal_code: str = strawberry.field(description="Postal code; may be empty.")


@strawberry.type(name="TaxId", description="A customer's tax registration number.")
class TaxIdType:
    type: str = strawberry.field(description="Kind of id, Stripe style: `eu_vat`, `gb_vat`, …")
    value: str = strawberry.field(description="The registration number.")


@strawberry.type(description="Someone you bill, mirrored as a Stripe Customer.")
class Customer(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `cus_…`.")

    is_type_of = serves(DomainCustomer)

    external_ref: str | None = strawberry.field(
        description="Your id for this customer (user or account id), unique per organization."
    )
    email: str = strawberry.field(description="Billing email.")
    name: str = strawberry.field(description="Name shown on invoices; may be empty.")
    address: AddressType | None = strawberry.field(description="Billing address (selects taxes).")
    preferred_currency: str | None = strawberry.field(description="ISO 4217 code, if set.")
    tax_ids: list[TaxIdType] = strawberry.field(description="Tax registration numbers.")
    tax_exempt: TaxExempt = strawberry.field(description="Tax status.")
    metadata: JSON = strawberry.field(description="Your string key-value pairs.")
    stripe_customer_id: str | None = strawberry.field(description="The mirrored Stripe Customer.")
    default_payment_method_id: str | None = strawberry.field(
        description="Stripe PaymentMethod charged for renewals and invoices, if set."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")

    @strawberry.field(
        description="This customer's payments, oldest first (one statement for all the "
        "customers of a page)."
    )
    async def payments(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
    ) -> PaymentConnection:
        return await customer_payments(info, self.id, window(first, after, last, before))

    @strawberry.field(
        description="This customer's subscriptions, oldest first.",
        graphql_type=list[Annotated["Subscription", strawberry.lazy("schema.subscriptions")]],
    )
    async def subscriptions(self, info: Info) -> list[DomainSubscription]:
        return await info.context.loaders.subscriptions_by_customer_id.load(self.id)

    @strawberry.field(
        description="This customer's invoices, oldest first (one statement for all the "
        "customers of a page).",
        graphql_type=Connection[Invoice],
    )
    async def invoices(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        status: Annotated[
            list[InvoiceStatus] | None,
            strawberry.argument(description="Only invoices in one of these statuses."),
        ] = None,
    ) -> Connection[DomainInvoice]:
        return await customer_invoices(info, self.id, window(first, after, last, before), status)

    @strawberry.field(
        description="Credit the customer has to spend, one amount per currency (from credit "
        "notes); its next invoices in that currency use it first.",
        graphql_type=list[Money],
    )
    async def credit_balances(self, info: Info) -> list[DomainMoney]:
        return await customer_balances(info, self.id)


@strawberry.input(description="A postal address.")
class AddressInput:
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 code, e.g. `DE`.")
    line1: str = strawberry.field(default="", description="Street line 1 (≤ 200 chars).")
    line2: str = strawberry.field(default="", description="Street line 2 (≤ 200 chars).")
    city: str = strawberry.field(default="", description="City (≤ 200 chars).")
    region: str = strawberry.field(default="", description="State or region (≤ 200 chars).")
    postal_code: str = strawberry.field(default="", description="Postal code (≤ 20 chars).")

    def to_domain(self) -> Address:
        return Address(
            country=self.country,
            line1=self.line1,
            line2=self.line2,
            city=self.city,
            region=self.region,
            postal_code=self.postal_code,
        )


@strawberry.input(description="A tax registration number.")
class TaxIdInput:
    type: str = strawberry.field(description="Kind, Stripe style: `eu_vat`, `gb_vat`, `us_ein`.")
    value: str = strawberry.field(description="The number, 1-64 characters.")


@strawberry.input(description="Filters for `customers`; omitted fields do not filter.")
class CustomerFilter:
    email: str | None = strawberry.field(default=None, description="Exact email, any case.")
    external_ref: str | None = strawberry.field(default=None, description="Your reference.")


@strawberry.input(description="A new customer; also created at Stripe.")
class CustomerCreateInput:
    email: str = strawberry.field(description="Billing email.")
    name: str = strawberry.field(default="", description="Name on invoices (≤ 200 chars).")
    external_ref: str | None = strawberry.field(
        default=None, description="Your id for this customer; unique per organization."
    )
    address: AddressInput | None = strawberry.field(default=None, description="Billing address.")
    preferred_currency: str | None = strawberry.field(
        default=None, description="ISO 4217 code for new subscriptions and invoices."
    )
    tax_ids: list[TaxIdInput] | None = strawberry.field(
        default=None, description="Up to 5 tax registration numbers."
    )
    tax_exempt: TaxExempt = strawberry.field(
        default=TaxExempt.NONE, description="Tax status (REVERSE for reverse-charge B2B)."
    )
    metadata: JSON | None = strawberry.field(
        default=None, description="Up to 50 string pairs (keys ≤ 40, values ≤ 500 chars)."
    )

    def to_draft(self) -> CustomerDraft:
        return CustomerDraft(
            email=self.email,
            name=self.name,
            external_ref=self.external_ref,
            address=self.address.to_domain() if self.address else None,
            preferred_currency=self.preferred_currency,
            tax_ids=[TaxId(t.type, t.value) for t in self.tax_ids or []],
            tax_exempt=self.tax_exempt,
            metadata=self.metadata or {},
        )


@strawberry.input(description="Changes to a customer; omitted fields stay as they are.")
class CustomerUpdateInput:
    id: strawberry.ID = strawberry.field(description="The customer to change.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="New email.")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    address: AddressInput | None = strawberry.field(
        default=strawberry.UNSET, description="New address; null removes it."
    )
    preferred_currency: str | None = strawberry.field(
        default=strawberry.UNSET, description="New preferred currency; null removes it."
    )
    tax_ids: list[TaxIdInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the tax ids."
    )
    tax_exempt: TaxExempt | None = strawberry.field(
        default=strawberry.UNSET, description="New tax status."
    )
    metadata: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the metadata."
    )

    def changes(self) -> dict[str, object]:
        nullable = {"address", "preferred_currency"}
        changes: dict[str, object] = {}
        for name in UPDATABLE:
            value = getattr(self, name)
            if value is strawberry.UNSET or (value is None and name not in nullable):
                continue
            if name == "address" and value is not None:
                value = value.to_domain()
            if name == "tax_ids":
                value = [TaxId(t.type, t.value) for t in value]
            changes[name] = value
        return changes


@strawberry.input(description="Attach a Stripe PaymentMethod and make it the default.")
class CustomerSetDefaultPaymentMethodInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer.")
    payment_method_id: str = strawberry.field(
        description="A Stripe PaymentMethod id (`pm_…`), e.g. from Stripe.js; Stripe validates it."
    )


@strawberry.type(description="Result of the customer mutations.")
class CustomerPayload:
    customer: DomainCustomer | None = strawberry.field(
        graphql_type=Customer | None, description="The customer; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class CustomerQueries:
    @strawberry.field(
        description="One customer by id; null if it does not exist or is not yours.",
        permission_classes=[AnyRole],
        graphql_type=Customer | None,
    )
    async def customer(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="`cus_…`")]
    ) -> DomainCustomer | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="Customers, oldest first. A customer token sees only itself.",
        permission_classes=[AnyRole],
        graphql_type=Connection[Customer],
    )
    async def customers(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[
            CustomerFilter | None, strawberry.argument(description="Filters.")
        ] = None,
    ) -> Connection[DomainCustomer]:
        page = window(first, after, last, before)
        filters = {}
        if filter is not None:
            filters = {"email": filter.email, "external_ref": filter.external_ref}
        nodes, has_next, count = await resolve.list_page(
            info.context,
            ordered(filters, ListOrder.OLDEST_FIRST, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(
        description="Create a customer and its Stripe Customer. A Stripe failure creates "
        "nothing (PAYMENT_PROVIDER_ERROR, also when Stripe does not answer within "
        "STRIPE_TIMEOUT_SECONDS). Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def customer_create(
        self,
        info: Info,
        input: Annotated[CustomerCreateInput, strawberry.argument(description=INPUT)],
    ) -> CustomerPayload:
        customer, errors = await attempt(resolve.create(info.context, input.to_draft()))
        return CustomerPayload(customer=customer, errors=errors)

    @strawberry.mutation(
        description="Change a customer; email, name and address are synced to Stripe. A Stripe "
        "failure changes nothing: PAYMENT_PROVIDER_ERROR when Stripe does not answer within "
        "STRIPE_TIMEOUT_SECONDS; OPERATION_IN_PROGRESS while another change to the same "
        "customer is still being sent to Stripe. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def customer_update(
        self,
        info: Info,
        input: Annotated[CustomerUpdateInput, strawberry.argument(description=INPUT)],
    ) -> CustomerPayload:
        customer, errors = await attempt(resolve.update(info.context, input.id, input.changes()))
        return CustomerPayload(customer=customer, errors=errors)

    @strawberry.mutation(
        description="Attach a card (Stripe PaymentMethod) to the customer and make it the default "
        "for renewals. A declined card is a CARD_DECLINED error; a Stripe failure changes "
        "nothing (PAYMENT_PROVIDER_ERROR, also past STRIPE_TIMEOUT_SECONDS; "
        "OPERATION_IN_PROGRESS while another change to the customer is being sent to Stripe). "
        "A customer may set its own.",
        permission_classes=[AnyRole],
    )
    async def customer_set_default_payment_method(
        self,
        info: Info,
        input: Annotated[
            CustomerSetDefaultPaymentMethodInput, strawberry.argument(description=INPUT)
        ],
    ) -> CustomerPayload:
        customer, errors = await attempt(
            resolve.set_default_payment_method(
                info.context, input.customer_id, input.payment_method_id
            )
        )
        return CustomerPayload(customer=customer, errors=errors)
