"""Organization settings: the refund approval policy (a threshold per currency, applied to the
cumulative amount refunded on a payment), the customer self-service policy
(``app.organizations.policy``), and what becomes of the open invoices of a subscription that dunning
cancels (``EndedSubscriptionInvoices``, default ``UNCOLLECTIBLE``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.core.errors import DomainError, ErrorCode, ValidationFailed
from app.core.money import MAX_AMOUNT, Money
from app.organizations.policy import (
    CustomerPolicy,
    EndedSubscriptionInvoices,
    LateUsage,
    ProrationBehavior,
    policy_problems,
)
from db.connection import Database, Row
from db.repositories.organizations import OrganizationRepository

__all__ = ["Organization", "OrganizationService"]

_THRESHOLDS = "refund_approval_thresholds"
_ENDED_INVOICES = "ended_subscription_invoices"
_DEFAULT_ENDED_INVOICES = EndedSubscriptionInvoices.UNCOLLECTIBLE
_LATE_USAGE = "late_usage"
_DEFAULT_LATE_USAGE = LateUsage.ADJUST
_MAX_CURRENCIES = 50


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    refund_approval_thresholds: list[Money]
    customer_policy: CustomerPolicy
    ended_subscription_invoices: EndedSubscriptionInvoices = _DEFAULT_ENDED_INVOICES
    late_usage: LateUsage = _DEFAULT_LATE_USAGE

    @classmethod
    def from_row(cls, org: str, row: Row | None) -> Organization:
        if row is None:
            return cls(
                id=org, name="", refund_approval_thresholds=[], customer_policy=CustomerPolicy()
            )
        settings = row["settings"] or {}
        stored: dict[str, int] = settings.get(_THRESHOLDS) or {}
        ended = settings.get(_ENDED_INVOICES)
        late = settings.get(_LATE_USAGE)
        return cls(
            id=row["id"],
            name=row["name"],
            refund_approval_thresholds=[Money(int(stored[c]), c) for c in sorted(stored)],
            customer_policy=CustomerPolicy.from_settings(settings),
            ended_subscription_invoices=(
                EndedSubscriptionInvoices(ended) if ended else _DEFAULT_ENDED_INVOICES
            ),
            late_usage=LateUsage(late) if late else _DEFAULT_LATE_USAGE,
        )

    def approval_threshold(self, currency: str) -> int | None:
        for threshold in self.refund_approval_thresholds:
            if threshold.currency == currency:
                return threshold.amount
        return None


class OrganizationService:
    def __init__(self, db: Database) -> None:
        self._organizations = OrganizationRepository(db)

    async def get(self, org: str) -> Organization:
        return Organization.from_row(org, await self._organizations.get(org))

    async def customer_policy(self, org: str) -> CustomerPolicy:
        return (await self.get(org)).customer_policy

    async def ended_subscription_invoices(self, org: str) -> EndedSubscriptionInvoices:
        """What dunning does with the open invoices of a subscription it cancels."""
        return (await self.get(org)).ended_subscription_invoices

    async def late_usage(self, org: str) -> LateUsage:
        """What usage ingestion does with events for periods already invoiced."""
        return (await self.get(org)).late_usage

    async def needs_refund_approval(self, org: str, cumulative: Money) -> bool:
        """A refund waits for an admin when ``cumulative`` (what the payment has refunded,
        has in flight or awaiting approval, plus this refund) is above the organization's
        threshold for its currency."""
        threshold = (await self.get(org)).approval_threshold(cumulative.currency)
        return threshold is not None and cumulative.amount > threshold

    async def set_refund_approval_thresholds(
        self, org: str, thresholds: Sequence[tuple[int, str]]
    ) -> Organization:
        """Replace the thresholds. A currency without one sends its refunds to Stripe at once;
        a threshold of 0 makes every refund in that currency wait for approval."""
        return await self.update_settings(org, refund_approval_thresholds=thresholds)

    async def update_settings(
        self,
        org: str,
        *,
        refund_approval_thresholds: Sequence[tuple[int, str]] | None = None,
        customer_max_quantity: int | None = None,
        customer_proration_behavior: ProrationBehavior | None = None,
        customer_can_pause: bool | None = None,
        ended_subscription_invoices: EndedSubscriptionInvoices | None = None,
        late_usage: LateUsage | None = None,
    ) -> Organization:
        """Change the given settings (None: unchanged) in one statement, after checking all of
        them: an invalid value changes nothing."""
        errors = policy_problems(
            max_quantity=customer_max_quantity, proration_behavior=customer_proration_behavior
        )
        changes = CustomerPolicy.settings_changes(
            max_quantity=customer_max_quantity,
            proration_behavior=customer_proration_behavior,
            can_pause=customer_can_pause,
        )
        if ended_subscription_invoices is not None:
            changes[_ENDED_INVOICES] = ended_subscription_invoices.value
        if late_usage is not None:
            changes[_LATE_USAGE] = late_usage.value
        if refund_approval_thresholds is not None:
            try:
                changes[_THRESHOLDS] = self._thresholds(refund_approval_thresholds)
            except ValidationFailed as exc:
                errors = exc.errors + errors
        if errors:
            raise ValidationFailed(errors)
        if not changes:
            return await self.get(org)
        row = await self._organizations.merge_settings(org, changes)
        return Organization.from_row(org, row)

    @staticmethod
    def _thresholds(thresholds: Sequence[tuple[int, str]]) -> dict[str, int]:
        errors: list[DomainError] = []
        by_currency: dict[str, int] = {}
        if len(thresholds) > _MAX_CURRENCIES:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    f"At most {_MAX_CURRENCIES} thresholds.",
                    field=("input", "refundApprovalThresholds"),
                )
            )
        for index, (amount, currency) in enumerate(thresholds):
            path = ("input", "refundApprovalThresholds", str(index))
            try:
                money = Money.of(amount, currency, field=path)
            except DomainError as exc:
                errors.append(exc)
                continue
            if not 0 <= money.amount <= MAX_AMOUNT:
                errors.append(
                    DomainError(
                        ErrorCode.INVALID,
                        "A threshold is zero or more minor units.",
                        field=(*path, "amount"),
                    )
                )
            elif money.currency in by_currency:
                errors.append(
                    DomainError(
                        ErrorCode.DUPLICATE,
                        f"{money.currency} has two thresholds.",
                        field=(*path, "currency"),
                    )
                )
            else:
                by_currency[money.currency] = money.amount
        if errors:
            raise ValidationFailed(errors)
        return by_currency
