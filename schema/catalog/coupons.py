"""Coupons and discounts: types, inputs, payloads, queries and mutations."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import strawberry

from app.catalog import CouponDraft, CouponDuration, CouponRecord
from app.catalog import Discount as DomainDiscount
from resolvers.catalog import coupons as resolve
from schema.base import INPUT, Info
from schema.enums import expose
from schema.errors import UserError, attempt
from schema.money import Money, MoneyInput
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

__all__ = ["Coupon", "CouponMutations", "CouponQueries", "Discount"]

expose(
    CouponDuration,
    "CouponDuration",
    "How many billing periods (invoices) a discount lasts once applied.",
    {
        CouponDuration.ONCE: "The next invoice only.",
        CouponDuration.REPEATING: "The next `durationPeriods` invoices (billing periods).",
        CouponDuration.FOREVER: "Every invoice.",
    },
)


@strawberry.type(description="A reusable discount offer: percentage or fixed amount off.")
class Coupon(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `coup_…`.")

    is_type_of = serves(CouponRecord)
    code: str = strawberry.field(description="Your unique code, e.g. `WELCOME10`.")
    name: str = strawberry.field(description="Printed on the discount line of invoices.")
    amount_off: Money | None = strawberry.field(
        description="Fixed amount off the subtotal (only on invoices in its currency)."
    )
    duration: CouponDuration = strawberry.field(description="How long a discount lasts.")
    duration_periods: int | None = strawberry.field(
        description="For REPEATING: the number of billing periods."
    )
    max_redemptions: int | None = strawberry.field(
        description="How many times it can be applied in all; null: no limit."
    )
    times_redeemed: int = strawberry.field(description="How many times it was applied.")
    redeem_by: datetime | None = strawberry.field(
        description="Last moment it can be applied; null: no expiry."
    )
    active: bool = strawberry.field(description="False once archived (no new applications).")
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    archived_at: datetime | None = strawberry.field(description="When it was archived, if so.")
    percent_off: strawberry.Private[int | None]

    @strawberry.field(
        name="percentOff", description='Percentage off the subtotal, e.g. "15" or "12.5".'
    )
    def percent_off_text(self) -> str | None:
        if self.percent_off is None:
            return None
        return f"{Decimal(self.percent_off) / 100:f}"


@strawberry.type(description="A coupon applied to a customer: it discounts its next invoices.")
class Discount(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `di_…`.")

    is_type_of = serves(DomainDiscount)
    customer_id: strawberry.ID = strawberry.field(description="The customer.")
    subscription_id: strawberry.ID | None = strawberry.field(
        description="The one subscription it is limited to; null: every invoice."
    )
    periods_used: int = strawberry.field(description="Invoices (billing periods) discounted.")
    created_at: datetime = strawberry.field(description="When the coupon was applied.")
    coupon_id: strawberry.Private[str]

    @strawberry.field(description="The coupon applied.", graphql_type=Coupon | None)
    async def coupon(self, info: Info) -> CouponRecord | None:
        return await resolve.coupon_of(info.context, self.coupon_id)


@strawberry.input(description="A new coupon: exactly one of `percentOff` and `amountOff`.")
class CouponCreateInput:
    code: str = strawberry.field(
        description="Unique per organization: 1-64 letters, digits, `.`, `_`, `-`."
    )
    name: str = strawberry.field(description="Printed on invoices, 1-200 characters.")
    duration: CouponDuration = strawberry.field(description="How long a discount lasts.")
    percent_off: str | None = strawberry.field(
        default=None, description='Percent off, > 0 and ≤ 100, at most 2 decimals: "15".'
    )
    amount_off: MoneyInput | None = strawberry.field(
        default=None, description="Fixed amount off, in minor units, > 0."
    )
    duration_periods: int | None = strawberry.field(
        default=None, description="For REPEATING only: 1-1200 billing periods."
    )
    max_redemptions: int | None = strawberry.field(
        default=None, description="How many times it can be applied in all (≥ 1)."
    )
    redeem_by: datetime | None = strawberry.field(
        default=None, description="Last moment it can be applied (in the future; UTC if no offset)."
    )

    def to_draft(self) -> CouponDraft:
        redeem_by = self.redeem_by
        if redeem_by is not None and redeem_by.tzinfo is None:
            redeem_by = redeem_by.replace(tzinfo=UTC)
        return CouponDraft(
            code=self.code,
            name=self.name,
            duration=self.duration,
            percent_off=self.percent_off,
            amount_off=self.amount_off.amount if self.amount_off else None,
            currency=self.amount_off.currency if self.amount_off else None,
            duration_periods=self.duration_periods,
            max_redemptions=self.max_redemptions,
            redeem_by=redeem_by,
        )


@strawberry.input(description="Archive a coupon: no new applications; discounts continue.")
class CouponArchiveInput:
    id: strawberry.ID = strawberry.field(description="The coupon, `coup_…`.")


@strawberry.input(
    description="Apply a coupon to a customer (by id or code); it replaces the customer's "
    "current discount."
)
class CouponApplyInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer.")
    coupon_id: strawberry.ID | None = strawberry.field(
        default=None, description="The coupon's id (or give `code`)."
    )
    code: str | None = strawberry.field(default=None, description="The coupon's code.")


@strawberry.input(description="Filters for `coupons`; omitted fields do not filter.")
class CouponFilter:
    active: bool | None = strawberry.field(
        default=None, description="Only active (true) or archived (false) coupons."
    )


@strawberry.type(description="Result of `couponCreate` and `couponArchive`.")
class CouponPayload:
    coupon: CouponRecord | None = strawberry.field(
        graphql_type=Coupon | None, description="The coupon; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type(description="Result of `couponApply`.")
class CouponApplyPayload:
    discount: DomainDiscount | None = strawberry.field(
        graphql_type=Discount | None, description="The discount; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class CouponQueries:
    @strawberry.field(
        description="This organization's coupons, oldest first. Admin or service.",
        permission_classes=[AdminOrService],
        graphql_type=Connection[Coupon],
    )
    async def coupons(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[CouponFilter | None, strawberry.argument(description="Filters.")] = None,
    ) -> Connection[CouponRecord]:
        page = window(first, after, last, before)
        filters = {"active": filter.active} if filter is not None else {}
        nodes, has_next, count = await resolve.list_page(
            info.context,
            ordered(filters, ListOrder.OLDEST_FIRST, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class CouponMutations:
    @strawberry.mutation(description="Create a coupon. Admin only.", permission_classes=[AdminOnly])
    async def coupon_create(
        self,
        info: Info,
        input: Annotated[CouponCreateInput, strawberry.argument(description=INPUT)],
    ) -> CouponPayload:
        coupon, errors = await attempt(resolve.create(info.context, input.to_draft()))
        return CouponPayload(coupon=coupon, errors=errors)

    @strawberry.mutation(
        description="Archive a coupon; discounts already applied continue. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def coupon_archive(
        self,
        info: Info,
        input: Annotated[CouponArchiveInput, strawberry.argument(description=INPUT)],
    ) -> CouponPayload:
        coupon, errors = await attempt(resolve.archive(info.context, input.id))
        return CouponPayload(coupon=coupon, errors=errors)

    @strawberry.mutation(
        description="Apply a coupon to a customer's next invoices (counts one redemption; "
        "refused once expired, archived or at its limit). Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def coupon_apply(
        self, info: Info, input: Annotated[CouponApplyInput, strawberry.argument(description=INPUT)]
    ) -> CouponApplyPayload:
        discount, errors = await attempt(
            resolve.apply(
                info.context, input.customer_id, coupon_id=input.coupon_id, code=input.code
            )
        )
        return CouponApplyPayload(discount=discount, errors=errors)
