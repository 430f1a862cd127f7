"""The caller's organization and its settings (the refund approval policy, the customer
self-service policy, and the invoices of subscriptions that dunning cancels)."""

from __future__ import annotations

from typing import Annotated, TypeVar

import strawberry

from app.organizations import Organization as DomainOrganization
from app.organizations import ProrationBehavior
from resolvers import organizations as resolve
from schema.base import INPUT, Info
from schema.enums import EndedSubscriptionInvoices, LateUsage
from schema.errors import UserError, attempt
from schema.money import Money, MoneyInput
from schema.node import Node, serves
from schema.permissions import AdminOnly

__all__ = ["Organization", "OrganizationMutations", "OrganizationQueries"]

T = TypeVar("T")

_THRESHOLDS = (
    "Per currency: a refund waits for an admin's approval when the payment's cumulative "
    "refunded amount (refunds succeeded, in flight and awaiting approval, plus this refund) "
    "would be above this amount; at or below it the refund goes to Stripe at once. So several "
    "refunds of one payment are held once they add up to more than the threshold. A currency "
    "without a threshold sends its refunds to Stripe at once. Refunds asked for by a customer "
    "token always wait for approval."
)
_MAX_QUANTITY = (
    "The most units (seats) a customer token may put on a subscription with "
    "`subscriptionCreate` or `subscriptionChangePlan`, 1-1,000,000 (default 1). A customer may "
    "keep or lower a larger quantity staff gave it; more is refused with `NOT_PERMITTED`. "
    "Admin and service tokens are not limited by it."
)
_BEHAVIOR = (
    "How a customer token's plan change is billed when it omits `prorationBehavior`: "
    "`ALWAYS_INVOICE` (default: the difference is invoiced and charged at once; unpaid, the "
    "subscription goes `PAST_DUE`) or `CREATE_PRORATIONS` (added to the next renewal invoice, "
    "or to the final invoice if the subscription ends first, which is charged once and not "
    "retried by dunning: choose it only if you accept collecting later). A customer may always "
    "ask for `ALWAYS_INVOICE`, never for `NONE`."
)
_CAN_PAUSE = (
    "Whether customer tokens may pause (without `resumesAt`) and resume their own "
    "subscriptions (default false). A customer resuming a subscription whose current period "
    "began while it was paused is billed the rest of that period at once, prorated to the "
    "second. Undoing a cancellation at period end is always allowed."
)
_LATE_USAGE = (
    "What usage ingestion does with an event timestamped in a period already invoiced: "
    "`ADJUST` (default: recorded, and the next invoice bills or credits the difference on a "
    "line naming the original period) or `REFUSE` (refused with `USAGE_PERIOD_CLOSED`). "
    "See docs/usage.md."
)
_ENDED_INVOICES = (
    "What happens to a subscription's still-open invoices when dunning cancels it after its "
    "last failed retry (`DUNNING_FINAL_STATE` `canceled`): `UNCOLLECTIBLE` (default: written "
    "off, still payable with `invoicePay`) or `VOID` (nothing owed; a credit balance they used "
    "goes back to the customer). Applies from the next cancellation; invoices already closed "
    "stay as they are. An incomplete subscription that expires (its first charge never "
    "succeeded) always voids its first invoice, whatever this says."
)


@strawberry.type(description="Your organization (the token's tenant) and its settings.")
class Organization(Node):
    id: strawberry.ID = strawberry.field(
        description="The organization id (the token's `org`); `node(id:)` answers it to admins."
    )

    is_type_of = serves(DomainOrganization)
    refund_approval_thresholds: list[Money] = strawberry.field(description=_THRESHOLDS)

    @strawberry.field(description=_MAX_QUANTITY)
    def customer_max_quantity(self, root: strawberry.Parent[DomainOrganization]) -> int:
        return root.customer_policy.max_quantity

    @strawberry.field(description=_BEHAVIOR)
    def customer_proration_behavior(
        self, root: strawberry.Parent[DomainOrganization]
    ) -> ProrationBehavior:
        return root.customer_policy.proration_behavior

    @strawberry.field(description=_CAN_PAUSE)
    def customer_can_pause(self, root: strawberry.Parent[DomainOrganization]) -> bool:
        return root.customer_policy.can_pause

    @strawberry.field(description=_ENDED_INVOICES)
    def ended_subscription_invoices(
        self, root: strawberry.Parent[DomainOrganization]
    ) -> EndedSubscriptionInvoices:
        return root.ended_subscription_invoices

    @strawberry.field(description=_LATE_USAGE)
    def late_usage(self, root: strawberry.Parent[DomainOrganization]) -> LateUsage:
        return root.late_usage


@strawberry.input(description="Changes to the organization's settings; omitted fields stay.")
class OrganizationSettingsUpdateInput:
    refund_approval_thresholds: list[MoneyInput] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Replaces the refund approval thresholds (one per currency, ≥ 0 minor "
        "units; 0 holds every refund). Each applies to the cumulative amount refunded on a "
        "payment, this refund included. An empty list removes them all.",
    )
    customer_max_quantity: int | None = strawberry.field(
        default=strawberry.UNSET, description=_MAX_QUANTITY
    )
    customer_proration_behavior: ProrationBehavior | None = strawberry.field(
        default=strawberry.UNSET,
        description="New default for customers' plan changes: `ALWAYS_INVOICE` or "
        "`CREATE_PRORATIONS` (`NONE` is refused). " + _BEHAVIOR,
    )
    customer_can_pause: bool | None = strawberry.field(
        default=strawberry.UNSET, description=_CAN_PAUSE
    )
    ended_subscription_invoices: EndedSubscriptionInvoices | None = strawberry.field(
        default=strawberry.UNSET, description=_ENDED_INVOICES
    )
    late_usage: LateUsage | None = strawberry.field(
        default=strawberry.UNSET, description=_LATE_USAGE
    )


@strawberry.type(description="Result of `organizationSettingsUpdate`.")
class OrganizationPayload:
    organization: DomainOrganization | None = strawberry.field(
        graphql_type=Organization | None, description="The organization; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


def _given(value: T | None) -> T | None:
    """An input field's value; None when it was omitted or null (left unchanged)."""
    return None if value is strawberry.UNSET else value


@strawberry.type
class OrganizationQueries:
    @strawberry.field(
        description="Your organization and its settings. Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Organization,
    )
    async def organization(self, info: Info) -> DomainOrganization:
        return await resolve.get(info.context)


@strawberry.type
class OrganizationMutations:
    @strawberry.mutation(
        description="Change the organization's settings: the refund approval thresholds, "
        "the customer self-service policy and what dunning does with the open invoices of the "
        "subscriptions it cancels. All given fields are checked first; an invalid one changes "
        "nothing. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def organization_settings_update(
        self,
        info: Info,
        input: Annotated[OrganizationSettingsUpdateInput, strawberry.argument(description=INPUT)],
    ) -> OrganizationPayload:
        thresholds = _given(input.refund_approval_thresholds)
        organization, errors = await attempt(
            resolve.update_settings(
                info.context,
                refund_approval_thresholds=(
                    None if thresholds is None else [(t.amount, t.currency) for t in thresholds]
                ),
                customer_max_quantity=_given(input.customer_max_quantity),
                customer_proration_behavior=_given(input.customer_proration_behavior),
                customer_can_pause=_given(input.customer_can_pause),
                ended_subscription_invoices=_given(input.ended_subscription_invoices),
                late_usage=_given(input.late_usage),
            )
        )
        return OrganizationPayload(organization=organization, errors=errors)
