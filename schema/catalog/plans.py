"""Plan catalog: type, inputs, payloads, queries and mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.catalog import UPDATABLE, PlanDraft
from app.catalog import Plan as DomainPlan
from resolvers.catalog import plans as resolve
from schema.base import INPUT, Info
from schema.enums import IntervalUnit, Tier
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
from schema.permissions import AdminOnly, AnyRole
from schema.scalars import BigInt
from schema.usage import MeteredPrice, MeteredPriceInput, metered_prices_of, to_drafts

__all__ = ["Plan", "PlanMutations", "PlanQueries"]


@strawberry.type(description="A product offering that customers subscribe to, with its price.")
class Plan(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `plan_…`, sortable by creation.")

    is_type_of = serves(DomainPlan)

    code: str = strawberry.field(description="Your unique code for the plan (per organization).")
    family: str = strawberry.field(
        description="The product this plan sells: plans that are the same product at different "
        "intervals or prices share a family (the plan's `code` unless set). A customer token "
        "gets a plan's trial at most once per family: never if that customer ever had a "
        "subscription, in any status, on a plan of the same family."
    )
    name: str = strawberry.field(description="Display name.")
    description: str = strawberry.field(description="Longer description; may be empty.")
    tier: Tier = strawberry.field(description="Commercial tier.")
    price: Money = strawberry.field(description="Price per billing period (per unit).")
    interval: IntervalUnit = strawberry.field(description="Billing period unit.")
    interval_count: int = strawberry.field(description="Number of units per billing period.")
    trial_days: int = strawberry.field(description="Free trial length for new subscriptions.")
    features: JSON = strawberry.field(description="Free-form feature flags (a JSON object).")
    credits_included: BigInt = strawberry.field(
        description="Usage credits included per period, in the plan currency's minor units: "
        "taken off each period's metered charges (never below zero)."
    )
    max_users: int | None = strawberry.field(description="Seat limit; null means unlimited.")
    max_storage_bytes: BigInt | None = strawberry.field(
        description="Storage limit in bytes; null means unlimited."
    )
    active: bool = strawberry.field(description="False once archived: no new subscriptions.")
    stripe_product_id: str | None = strawberry.field(description="The mirrored Stripe Product.")
    stripe_price_id: str | None = strawberry.field(
        description="The mirrored recurring Stripe price (a Stripe Plan); null for one-time plans."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")
    archived_at: datetime | None = strawberry.field(description="When it was archived, if so.")

    @strawberry.field(
        description="The plan's metered components (usage-based prices), fixed with the plan."
    )
    async def metered_prices(
        self, info: Info, root: strawberry.Parent[DomainPlan]
    ) -> list[MeteredPrice]:
        return await metered_prices_of(info, root.id, root.price.currency)


@strawberry.input(description="Filters for `plans`; omitted fields do not filter.")
class PlanFilter:
    tier: Tier | None = strawberry.field(default=None, description="Only this tier.")
    active: bool | None = strawberry.field(
        default=None, description="Only active (true) or archived (false) plans."
    )
    currency: str | None = strawberry.field(
        default=None, description="Only plans priced in this ISO 4217 currency."
    )


@strawberry.input(description="A new plan. Price, currency and interval cannot change later.")
class PlanCreateInput:
    code: str = strawberry.field(
        description="Unique per organization: 1-64 letters, digits, `.`, `_`, `-`."
    )
    family: str | None = strawberry.field(
        default=None,
        description="The plan's family (1-64 letters, digits, `.`, `_`, `-`; shared, not "
        "unique): give sibling plans of one product the same family so a customer gets its "
        "trial once. Null or omitted: the plan's `code`.",
    )
    name: str = strawberry.field(description="Display name, 1-200 characters.")
    tier: Tier = strawberry.field(description="Commercial tier.")
    price: MoneyInput = strawberry.field(description="Price per period in minor units, ≥ 0.")
    interval: IntervalUnit = strawberry.field(description="Billing period unit.")
    interval_count: int = strawberry.field(
        default=1, description="Units per period, 1-365 (YEAR: 1-3; ONE_TIME: 1)."
    )
    description: str = strawberry.field(default="", description="Up to 2,000 characters.")
    trial_days: int = strawberry.field(default=0, description="Free trial length, 0-730 days.")
    features: JSON | None = strawberry.field(
        default=None, description="A JSON object of feature flags, at most 16 KiB."
    )
    credits_included: BigInt = strawberry.field(
        default=0,
        description="Usage credits included per period, ≥ 0, in the plan currency's minor "
        "units: taken off the period's metered charges (never below zero).",
    )
    max_users: int | None = strawberry.field(default=None, description="Seat limit; null = none.")
    max_storage_bytes: BigInt | None = strawberry.field(
        default=None, description="Storage limit in bytes; null = none."
    )
    metered_prices: list[MeteredPriceInput] | None = strawberry.field(
        default=None,
        description="Metered components (at most 20, one per metric), billed in arrears at "
        "each period's end with the next period's price. Fixed with the plan.",
    )

    def to_draft(self) -> PlanDraft:
        return PlanDraft(
            code=self.code,
            family=self.family,
            name=self.name,
            tier=self.tier,
            amount=self.price.amount,
            currency=self.price.currency,
            interval=self.interval,
            interval_count=self.interval_count,
            description=self.description,
            trial_days=self.trial_days,
            features={} if self.features is None else self.features,
            credits_included=self.credits_included,
            max_users=self.max_users,
            max_storage_bytes=self.max_storage_bytes,
        )


@strawberry.input(description="Changes to a plan; omitted fields stay as they are.")
class PlanUpdateInput:
    id: strawberry.ID = strawberry.field(description="The plan to change (must be active).")
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    family: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="New family (1-64 letters, digits, `.`, `_`, `-`). Customers keep the "
        "families they already used under the old name: renaming a family lets them trial the "
        "renamed one once more.",
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="New description."
    )
    tier: Tier | None = strawberry.field(default=strawberry.UNSET, description="New tier.")
    trial_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="New trial length for future subscriptions."
    )
    features: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces the feature object."
    )
    credits_included: BigInt | None = strawberry.field(
        default=strawberry.UNSET, description="New included credits."
    )
    max_users: int | None = strawberry.field(
        default=strawberry.UNSET, description="New seat limit; null removes the limit."
    )
    max_storage_bytes: BigInt | None = strawberry.field(
        default=strawberry.UNSET, description="New storage limit; null removes the limit."
    )

    def changes(self) -> dict[str, object]:
        nullable = {"max_users", "max_storage_bytes"}
        changes: dict[str, object] = {}
        for name in UPDATABLE:
            value = getattr(self, name)
            if value is strawberry.UNSET or (value is None and name not in nullable):
                continue
            changes[name] = value
        return changes


@strawberry.input(description="Archive a plan: it stays on existing subscriptions only.")
class PlanArchiveInput:
    id: strawberry.ID = strawberry.field(description="The plan to archive.")


@strawberry.type(description="Result of `planCreate`, `planUpdate` and `planArchive`.")
class PlanPayload:
    plan: DomainPlan | None = strawberry.field(
        graphql_type=Plan | None, description="The plan; null when `errors` is not empty."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class PlanQueries:
    @strawberry.field(
        description="One plan by id; null if it does not exist.",
        permission_classes=[AnyRole],
        graphql_type=Plan | None,
    )
    async def plan(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A `plan_…` id.")],
    ) -> DomainPlan | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="The plan catalog, oldest first, at most 100 per page.",
        permission_classes=[AnyRole],
        graphql_type=Connection[Plan],
    )
    async def plans(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[PlanFilter | None, strawberry.argument(description="Filters.")] = None,
    ) -> Connection[DomainPlan]:
        page = window(first, after, last, before)
        filters = {}
        if filter is not None:
            filters = {
                "tier": filter.tier.value if filter.tier is not None else None,
                "active": filter.active,
                "currency": filter.currency.strip().upper() if filter.currency else None,
            }
        nodes, has_next, count = await resolve.list_page(
            info.context,
            ordered(filters, ListOrder.OLDEST_FIRST, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class PlanMutations:
    @strawberry.mutation(
        description="Create a plan and its Stripe Product and recurring price. A Stripe failure "
        "creates nothing (PAYMENT_PROVIDER_ERROR, also when Stripe does not answer within "
        "STRIPE_TIMEOUT_SECONDS). Admin only.",
        permission_classes=[AdminOnly],
    )
    async def plan_create(
        self, info: Info, input: Annotated[PlanCreateInput, strawberry.argument(description=INPUT)]
    ) -> PlanPayload:
        plan, errors = await attempt(
            resolve.create(info.context, input.to_draft(), to_drafts(input.metered_prices))
        )
        return PlanPayload(plan=plan, errors=errors)

    @strawberry.mutation(
        description="Change a plan's descriptive fields and limits; the new name is synced to "
        "Stripe. A Stripe failure changes nothing: PAYMENT_PROVIDER_ERROR when Stripe does not "
        "answer within STRIPE_TIMEOUT_SECONDS; OPERATION_IN_PROGRESS while another change to "
        "the same plan is still being sent to Stripe. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def plan_update(
        self, info: Info, input: Annotated[PlanUpdateInput, strawberry.argument(description=INPUT)]
    ) -> PlanPayload:
        plan, errors = await attempt(resolve.update(info.context, input.id, input.changes()))
        return PlanPayload(plan=plan, errors=errors)

    @strawberry.mutation(
        description="Archive a plan: no new subscriptions, Stripe price deactivated. Final. A "
        "Stripe failure changes nothing (PAYMENT_PROVIDER_ERROR, also past "
        "STRIPE_TIMEOUT_SECONDS; OPERATION_IN_PROGRESS while another change to the plan is "
        "being sent to Stripe). Admin only.",
        permission_classes=[AdminOnly],
    )
    async def plan_archive(
        self, info: Info, input: Annotated[PlanArchiveInput, strawberry.argument(description=INPUT)]
    ) -> PlanPayload:
        plan, errors = await attempt(resolve.archive(info.context, input.id))
        return PlanPayload(plan=plan, errors=errors)
