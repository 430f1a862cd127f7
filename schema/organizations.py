"""The caller's organization and its settings (the refund approval policy)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import organizations as resolve
from schema.base import INPUT, Info
from schema.errors import UserError, attempt
from schema.money import Money, MoneyInput
from schema.permissions import AdminOnly

__all__ = ["Organization", "OrganizationMutations", "OrganizationQueries"]


@strawberry.type(description="Your organization (the token's tenant) and its settings.")
class Organization:
    id: strawberry.ID = strawberry.field(description="The organization id (the token's `org`).")
    refund_approval_thresholds: list[Money] = strawberry.field(
        description="Per currency: refunds above this amount wait for an admin's approval. A "
        "currency without a threshold sends its refunds to Stripe at once."
    )


@strawberry.input(description="Changes to the organization's settings; omitted fields stay.")
class OrganizationSettingsUpdateInput:
    refund_approval_thresholds: list[MoneyInput] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the refund approval thresholds (one per currency, ≥ 0 minor "
        "units; 0 holds every refund). An empty list removes them all.",
    )


@strawberry.type(description="Result of `organizationSettingsUpdate`.")
class OrganizationPayload:
    organization: Organization | None = strawberry.field(
        description="The organization; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class OrganizationQueries:
    @strawberry.field(
        description="Your organization and its settings. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def organization(self, info: Info) -> Organization:
        return await resolve.get(info.context)  # type: ignore[return-value]


@strawberry.type
class OrganizationMutations:
    @strawberry.mutation(
        description="Change the organization's settings, such as the refund approval "
        "thresholds. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def organization_settings_update(
        self,
        info: Info,
        input: Annotated[OrganizationSettingsUpdateInput, strawberry.argument(description=INPUT)],
    ) -> OrganizationPayload:
        thresholds = input.refund_approval_thresholds
        if thresholds is strawberry.UNSET or thresholds is None:
            organization, errors = await attempt(resolve.get(info.context))
        else:
            pairs = [(t.amount, t.currency) for t in thresholds]
            organization, errors = await attempt(
                resolve.set_refund_approval_thresholds(info.context, pairs)
            )
        return OrganizationPayload(organization=organization, errors=errors)  # type: ignore[arg-type]
