"""Subscriptions: the lifecycle state machine, trials, periods, plan changes with proration,
cancellation, pause and resume. Charging goes through ``app.subscriptions.billing``.

States and the transitions this module allows (the SQL update of each transition lists the
states it may start from, so a concurrent change cannot slip an illegal one through):

    trialing  -> active | past_due | canceled | paused
    active    -> active (renewal) | past_due | canceled | paused
    past_due  -> active | canceled | unpaid
    unpaid    -> active | canceled
    incomplete -> active | incomplete_expired | canceled
    paused    -> active | canceled
    canceled, incomplete_expired: final
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.catalog import IntervalUnit
from app.core.errors import DomainError, ErrorCode
from app.core.money import Money
from db.connection import Row

__all__ = [
    "LIVE",
    "Status",
    "Subscription",
    "invalid_state",
]


class Status(enum.Enum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    PAUSED = "paused"


LIVE = frozenset(
    {
        Status.TRIALING,
        Status.ACTIVE,
        Status.PAST_DUE,
        Status.UNPAID,
        Status.INCOMPLETE,
        Status.PAUSED,
    }
)

# How long a subscription whose first charge failed may still be paid before it expires.
INCOMPLETE_WINDOW = timedelta(hours=23)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    organization_id: str
    customer_id: str
    plan_id: str
    quantity: int
    status: Status
    price: Money
    interval: IntervalUnit
    interval_count: int
    billing_anchor: datetime
    period_index: int | None
    current_period_start: datetime
    current_period_end: datetime
    trial_start: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    cancel_reason: str | None
    cancel_feedback: str | None
    paused_at: datetime | None
    resumes_at: datetime | None
    dunning_attempts: int
    next_retry_at: datetime | None
    latest_invoice_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Subscription:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            customer_id=row["customer_id"],
            plan_id=row["plan_id"],
            quantity=row["quantity"],
            status=Status(row["status"]),
            price=Money(row["unit_amount"], row["currency"]),
            interval=IntervalUnit(row["interval_unit"]),
            interval_count=row["interval_count"],
            billing_anchor=row["billing_anchor"],
            period_index=row["period_index"],
            current_period_start=row["current_period_start"],
            current_period_end=row["current_period_end"],
            trial_start=row["trial_start"],
            trial_end=row["trial_end"],
            cancel_at_period_end=row["cancel_at_period_end"],
            canceled_at=row["canceled_at"],
            ended_at=row["ended_at"],
            cancel_reason=row["cancel_reason"],
            cancel_feedback=row["cancel_feedback"],
            paused_at=row["paused_at"],
            resumes_at=row["resumes_at"],
            dunning_attempts=row["dunning_attempts"],
            next_retry_at=row["next_retry_at"],
            latest_invoice_id=row["latest_invoice_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def period_amount(self) -> Money:
        """What one period costs: unit price times quantity."""
        return Money(self.price.amount * self.quantity, self.price.currency)


def invalid_state(status: Status | str, action: str) -> DomainError:
    value = status.value if isinstance(status, Status) else status
    return DomainError(
        ErrorCode.INVALID_STATE,
        f"A {value} subscription cannot {action}.",
        field=("input", "id"),
    )
