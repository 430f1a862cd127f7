"""Tax rates: type, inputs, payloads, queries and mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.catalog import TaxRateDraft, TaxRateRecord
from resolvers.catalog import tax_rates as resolve
from schema.base import INPUT, Info
from schema.errors import UserError, attempt
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
from schema.permissions import AdminOnly, AdminOrService

__all__ = ["TaxRate", "TaxRateMutations", "TaxRateQueries"]


@strawberry.type(
    description="A tax rate of one jurisdiction. Invoices use the rate of the customer's "
    "billing address: its region's, else its country's."
)
class TaxRate(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `txr_…`.")

    is_type_of = serves(TaxRateRecord)
    name: str = strawberry.field(description="Printed name, e.g. `VAT` or `Sales tax`.")
    percentage: str = strawberry.field(description='The rate in percent, e.g. "20", "8.875".')
    inclusive: bool = strawberry.field(
        description="True when prices include the tax; false when it is added to them."
    )
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country code.")
    region: str = strawberry.field(
        description="Region (state, province), upper case; empty for the whole country."
    )
    active: bool = strawberry.field(description="False once archived: no longer chosen.")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    archived_at: datetime | None = strawberry.field(description="When it was archived, if so.")


@strawberry.input(description="A new tax rate (one active rate per jurisdiction).")
class TaxRateCreateInput:
    name: str = strawberry.field(description="Printed name, 1-100 characters.")
    percentage: str = strawberry.field(
        description='Percent as a decimal string, 0-100, at most 4 decimals: "20", "8.875".'
    )
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 code, e.g. `FR`.")
    region: str = strawberry.field(
        default="",
        description="Region as written in customers' addresses (compared case-insensitively); "
        "empty for the whole country.",
    )
    inclusive: bool = strawberry.field(
        default=False, description="True when prices include the tax."
    )

    def to_draft(self) -> TaxRateDraft:
        return TaxRateDraft(
            name=self.name,
            percentage=self.percentage,
            country=self.country,
            inclusive=self.inclusive,
            region=self.region,
        )


@strawberry.input(description="Archive a tax rate; invoices already issued keep it.")
class TaxRateArchiveInput:
    id: strawberry.ID = strawberry.field(description="The rate, `txr_…`.")


@strawberry.input(description="Filters for `taxRates`; omitted fields do not filter.")
class TaxRateFilter:
    country: str | None = strawberry.field(default=None, description="Only this country.")
    active: bool | None = strawberry.field(
        default=None, description="Only active (true) or archived (false) rates."
    )


@strawberry.type(description="Result of `taxRateCreate` and `taxRateArchive`.")
class TaxRatePayload:
    tax_rate: TaxRateRecord | None = strawberry.field(
        graphql_type=TaxRate | None, description="The rate; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class TaxRateQueries:
    @strawberry.field(
        description="This organization's tax rates, oldest first. Admin or service.",
        permission_classes=[AdminOrService],
        graphql_type=Connection[TaxRate],
    )
    async def tax_rates(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[TaxRateFilter | None, strawberry.argument(description="Filters.")] = None,
    ) -> Connection[TaxRateRecord]:
        page = window(first, after, last, before)
        filters = {}
        if filter is not None:
            filters = {
                "country": filter.country.strip().upper() if filter.country else None,
                "active": filter.active,
            }
        nodes, has_next, count = await resolve.list_page(
            info.context,
            ordered(filters, ListOrder.OLDEST_FIRST, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class TaxRateMutations:
    @strawberry.mutation(
        description="Create a tax rate for a country or region. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def tax_rate_create(
        self,
        info: Info,
        input: Annotated[TaxRateCreateInput, strawberry.argument(description=INPUT)],
    ) -> TaxRatePayload:
        rate, errors = await attempt(resolve.create(info.context, input.to_draft()))
        return TaxRatePayload(tax_rate=rate, errors=errors)

    @strawberry.mutation(
        description="Archive a tax rate (to replace it, archive it then create the new one). "
        "Admin only.",
        permission_classes=[AdminOnly],
    )
    async def tax_rate_archive(
        self,
        info: Info,
        input: Annotated[TaxRateArchiveInput, strawberry.argument(description=INPUT)],
    ) -> TaxRatePayload:
        rate, errors = await attempt(resolve.archive(info.context, input.id))
        return TaxRatePayload(tax_rate=rate, errors=errors)
