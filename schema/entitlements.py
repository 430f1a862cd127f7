"""Entitlements: what a customer may use now (features, limits, included credits)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.entitlements import Entitlements as DomainEntitlements
from app.subscriptions import Subscription as DomainSubscription
from resolvers import entitlements as resolve
from schema.base import Info
from schema.money import Money
from schema.permissions import AnyRole
from schema.scalars import BigInt
from schema.subscriptions import Subscription

__all__ = ["EntitlementQueries", "Entitlements"]

MERGE_RULE = (
    "Merged from the plans of the customer's ACTIVE and TRIALING subscriptions (paused, past "
    "due and ended ones grant nothing): in `features`, `true` wins over `false`, the larger "
    "of two numbers wins, objects merge by the same rule, and any other value comes from the "
    "plan of the highest tier (ENTERPRISE, CUSTOM, PRO, BASIC, FREE), then the newest "
    "subscription; limits are the largest, and a plan without a limit makes it unlimited."
)


@strawberry.type(description="A subscription's included usage credits this period.")
class CreditAllowance:
    subscription_id: strawberry.ID = strawberry.field(description="`sub_…`.")
    included: Money = strawberry.field(description="The plan's `creditsIncluded`.")
    used: Money = strawberry.field(
        description="What this period's metered usage bills so far, up to `included`."
    )
    remaining: Money = strawberry.field(description="included - used.")
    period_end: datetime = strawberry.field(description="When the allowance renews.")


@strawberry.type(description="What a customer may use now. " + MERGE_RULE)
class Entitlements:
    customer_id: strawberry.ID = strawberry.field(description="`cus_…`.")
    features: JSON = strawberry.field(description="The merged feature flags (a JSON object).")
    max_users: int | None = strawberry.field(
        description="Seat limit; null: unlimited; 0 without a granting subscription."
    )
    max_storage_bytes: BigInt | None = strawberry.field(
        description="Storage limit in bytes; null: unlimited; 0 without a granting subscription."
    )
    credits: list[CreditAllowance] = strawberry.field(
        description="Included usage credits per subscription (not merged: each has its own "
        "currency and period)."
    )
    subscriptions: list[DomainSubscription] = strawberry.field(
        graphql_type=list[Subscription],
        description="The subscriptions that grant them (ACTIVE or TRIALING), oldest first.",
    )
    as_of: datetime = strawberry.field(
        description="When they were computed (the organization's clock)."
    )

    @classmethod
    def of(cls, found: DomainEntitlements) -> Entitlements:
        return cls(
            customer_id=strawberry.ID(found.customer_id),
            features=found.features,  # type: ignore[arg-type]
            max_users=found.max_users,
            max_storage_bytes=found.max_storage_bytes,  # type: ignore[arg-type]
            credits=[
                CreditAllowance(
                    subscription_id=strawberry.ID(c.subscription_id),
                    included=c.included,  # type: ignore[arg-type]
                    used=c.used,  # type: ignore[arg-type]
                    remaining=c.remaining,  # type: ignore[arg-type]
                    period_end=c.period_end,
                )
                for c in found.credits
            ],
            subscriptions=found.subscriptions,
            as_of=found.as_of,
        )


@strawberry.type
class EntitlementQueries:
    @strawberry.field(
        description="What the customer may use now, to gate features without polling (see "
        "`Live.entitlements`). Customers: their own; null when not yours.",
        permission_classes=[AnyRole],
    )
    async def entitlements(
        self,
        info: Info,
        customer_id: Annotated[strawberry.ID, strawberry.argument(description="`cus_…`.")],
    ) -> Entitlements | None:
        found = await resolve.of_customer(info.context, customer_id)
        return None if found is None else Entitlements.of(found)
