"""Organization settings: the refund approval policy (a threshold per currency)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import DomainError, ErrorCode, ValidationFailed
from app.money import MAX_AMOUNT, Money
from db.connection import Database, Row
from db.repositories.organizations import OrganizationRepository

__all__ = ["Organization", "OrganizationService"]

_THRESHOLDS = "refund_approval_thresholds"
_MAX_CURRENCIES = 50


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    refund_approval_thresholds: list[Money]

    @classmethod
    def from_row(cls, org: str, row: Row | None) -> Organization:
        if row is None:
            return cls(id=org, name="", refund_approval_thresholds=[])
        stored: dict[str, int] = (row["settings"] or {}).get(_THRESHOLDS) or {}
        return cls(
            id=row["id"],
            name=row["name"],
            refund_approval_thresholds=[Money(int(stored[c]), c) for c in sorted(stored)],
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

    async def needs_refund_approval(self, org: str, amount: Money) -> bool:
        """Refunds above the organization's threshold for their currency wait for an admin."""
        threshold = (await self.get(org)).approval_threshold(amount.currency)
        return threshold is not None and amount.amount > threshold

    async def set_refund_approval_thresholds(
        self, org: str, thresholds: Sequence[tuple[int, str]]
    ) -> Organization:
        """Replace the thresholds. A currency without one sends its refunds to Stripe at once;
        a threshold of 0 makes every refund in that currency wait for approval."""
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
        row = await self._organizations.merge_settings(org, {_THRESHOLDS: by_currency})
        return Organization.from_row(org, row)
