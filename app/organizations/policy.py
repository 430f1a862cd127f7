"""The customer self-service policy: what a customer token may choose when it subscribes or
changes its own subscriptions.

Admins and services set trials, start dates, quantities and proration freely. A customer token
gets what the catalog offers and what the organization allows, nothing more:

* **Trial**: only the plan's own ``trial_days``, and only on the customer's first subscription
  on a plan of that plan's *family* (any status, ever: a canceled or expired one counts). It
  may send ``trialDays: 0`` to skip the trial; any other value is refused.
* **Start**: now. ``startAt`` (back-dating) is refused.
* **Quantity**: at most the organization's ``max_quantity``, or the quantity the subscription
  already has (staff may have granted more; the customer may keep or lower it).
* **Plan**: any active recurring plan except a ``CUSTOM``-tier one (a negotiated plan is
  assigned by staff), unless the subscription is already on it.
* **Plan change**: always billed. ``NONE`` (no proration) would give an upgrade for free for the
  rest of the period, so it is refused; ``CREATE_PRORATIONS`` defers the charge to the next
  renewal (or to the final invoice if the subscription ends first, which dunning does not
  retry), so it is allowed only when the organization chooses it. Omitted, the organization's
  choice applies (``ALWAYS_INVOICE`` unless changed). A change whose invoice is not paid leaves
  the subscription ``past_due`` (dunning), not active for free (for staff changes too). The
  credit for unused time is what was paid for it (``app.subscriptions.service_value``), so
  changing back and forth earns nothing.
* **Cancel**: a customer token may cancel its own subscriptions, now or at period end; now, the
  credit for the unused time it paid for goes to its credit balance (spent by its next
  invoices in that currency), unless it sends ``prorate: false``.
* **Trial and plan change**: a change during a trial cannot make the trial outlast what the new
  plan offers: it ends at ``min(current end, trial start + new plan's trial_days)``, at once if
  the new plan's family was already used by another of the customer's subscriptions; a trial
  that ends so starts the first paid period now.
* **Pause and resume**: only if the organization allows it, without an automatic resume
  (``resumesAt``), and resuming bills the rest of a period that began while paused.

The functions here are pure (the subscription service reads the data and calls them); every
refusal is a ``NOT_PERMITTED`` ``DomainError`` at the input field it concerns.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.catalog import Plan, Tier
from app.core.auth import Principal, Role
from app.core.errors import DomainError, ErrorCode

__all__ = [
    "CUSTOMER_BEHAVIORS",
    "MAX_QUANTITY",
    "CustomerPolicy",
    "EndedSubscriptionInvoices",
    "ProrationBehavior",
    "change_refusals",
    "create_refusals",
    "is_customer",
    "pause_refusals",
    "policy_problems",
    "resolved_behavior",
    "resume_refusals",
    "trial_days_at_create",
    "trial_end_after_change",
]


class ProrationBehavior(enum.Enum):
    CREATE_PRORATIONS = "create_prorations"
    ALWAYS_INVOICE = "always_invoice"
    NONE = "none"


class EndedSubscriptionInvoices(enum.Enum):
    """What happens to the invoices a subscription leaves open when dunning cancels it (an
    organization setting)."""

    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class LateUsage(enum.Enum):
    """What happens to a usage event timestamped in a period already invoiced (an
    organization setting; docs/usage.md)."""

    REFUSE = "refuse"
    ADJUST = "adjust"


MAX_QUANTITY = 1_000_000
# Behaviors a customer's plan change may use: both bill the change.
CUSTOMER_BEHAVIORS = (ProrationBehavior.ALWAYS_INVOICE, ProrationBehavior.CREATE_PRORATIONS)
# Today's default for admin and service tokens (the schema's default before this policy).
_STAFF_BEHAVIOR = ProrationBehavior.CREATE_PRORATIONS

# Keys of the policy in the organization's settings (top-level, so each is merged atomically).
_MAX_QUANTITY = "customer_max_quantity"
_BEHAVIOR = "customer_proration_behavior"
_CAN_PAUSE = "customer_can_pause"


@dataclass(frozen=True, slots=True)
class CustomerPolicy:
    """An organization's limits on customer tokens. The defaults are the safe ones."""

    max_quantity: int = 1
    proration_behavior: ProrationBehavior = ProrationBehavior.ALWAYS_INVOICE
    can_pause: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CustomerPolicy:
        default = cls()
        behavior = settings.get(_BEHAVIOR)
        return cls(
            max_quantity=int(settings.get(_MAX_QUANTITY) or default.max_quantity),
            proration_behavior=(
                ProrationBehavior(behavior) if behavior else default.proration_behavior
            ),
            can_pause=bool(settings.get(_CAN_PAUSE, default.can_pause)),
        )

    @staticmethod
    def settings_changes(
        *,
        max_quantity: int | None = None,
        proration_behavior: ProrationBehavior | None = None,
        can_pause: bool | None = None,
    ) -> dict[str, Any]:
        """The settings keys to merge for the given changes (None: unchanged)."""
        changes: dict[str, Any] = {}
        if max_quantity is not None:
            changes[_MAX_QUANTITY] = max_quantity
        if proration_behavior is not None:
            changes[_BEHAVIOR] = proration_behavior.value
        if can_pause is not None:
            changes[_CAN_PAUSE] = can_pause
        return changes


def policy_problems(
    *, max_quantity: int | None, proration_behavior: ProrationBehavior | None
) -> list[DomainError]:
    """What is wrong with a change of the policy (checked before anything is stored)."""
    errors: list[DomainError] = []
    if max_quantity is not None and not 1 <= max_quantity <= MAX_QUANTITY:
        errors.append(
            DomainError(
                ErrorCode.INVALID,
                f"customerMaxQuantity must be between 1 and {MAX_QUANTITY:,}.",
                field=("input", "customerMaxQuantity"),
            )
        )
    if proration_behavior is not None and proration_behavior not in CUSTOMER_BEHAVIORS:
        errors.append(
            DomainError(
                ErrorCode.INVALID,
                "Customers' plan changes must be billed: ALWAYS_INVOICE or CREATE_PRORATIONS.",
                field=("input", "customerProrationBehavior"),
            )
        )
    return errors


def is_customer(actor: Principal) -> bool:
    """The policy holds customer tokens only; admins and services keep their overrides."""
    return actor.role is Role.CUSTOMER


def _refused(name: str, message: str) -> DomainError:
    return DomainError(ErrorCode.NOT_PERMITTED, message, field=("input", name))


def _custom_plan() -> DomainError:
    return _refused(
        "planId",
        "A custom plan is assigned by the organization; a customer token cannot choose it.",
    )


def create_refusals(
    policy: CustomerPolicy,
    plan: Plan,
    *,
    quantity: int,
    trial_days: int | None,
    start_at: datetime | None,
) -> list[DomainError]:
    """Why a customer token may not make this ``subscriptionCreate`` (empty: it may)."""
    errors: list[DomainError] = []
    if plan.tier is Tier.CUSTOM:
        errors.append(_custom_plan())
    if quantity > policy.max_quantity:
        errors.append(
            _refused(
                "quantity",
                f"A customer token can subscribe to at most {policy.max_quantity:,} "
                f"unit{'s' if policy.max_quantity != 1 else ''}; ask the organization for more.",
            )
        )
    if trial_days not in (None, 0):
        errors.append(
            _refused(
                "trialDays",
                "A customer token cannot choose a trial: leave trialDays out to get the "
                "plan's trial (once per plan family) or send 0 for none.",
            )
        )
    if start_at is not None:
        errors.append(
            _refused(
                "startAt", "A customer token cannot choose a start; its subscriptions start now."
            )
        )
    return errors


def trial_days_at_create(plan: Plan, *, requested: int | None, first_in_family: bool) -> int:
    """The trial a customer token's new subscription gets: the plan's, on the customer's first
    subscription in the plan's family, unless it asked for none (``requested`` is None or 0;
    other values were refused by ``create_refusals``)."""
    if requested == 0 or not first_in_family:
        return 0
    return plan.trial_days


def change_refusals(
    policy: CustomerPolicy,
    plan: Plan,
    *,
    current_plan_id: str,
    current_quantity: int,
    quantity: int | None,
    behavior: ProrationBehavior | None,
) -> list[DomainError]:
    """Why a customer token may not make this ``subscriptionChangePlan`` (empty: it may)."""
    errors: list[DomainError] = []
    if plan.tier is Tier.CUSTOM and plan.id != current_plan_id:
        errors.append(_custom_plan())
    limit = max(policy.max_quantity, current_quantity)
    if quantity is not None and quantity > limit:
        errors.append(
            _refused(
                "quantity",
                f"A customer token can have at most {limit:,} unit{'s' if limit != 1 else ''} "
                "on this subscription (the organization's limit, or the quantity it already "
                "has); ask the organization for more.",
            )
        )
    if behavior is not None and behavior not in _allowed_behaviors(policy):
        if behavior is ProrationBehavior.NONE:
            message = (
                "A customer token's plan change is always billed: prorationBehavior NONE is "
                "for staff. Leave it out to use the organization's choice."
            )
        else:
            message = (
                f"This organization invoices customers' plan changes at once: use "
                f"{policy.proration_behavior.name} or leave prorationBehavior out."
            )
        errors.append(_refused("prorationBehavior", message))
    return errors


def _allowed_behaviors(policy: CustomerPolicy) -> frozenset[ProrationBehavior]:
    # Invoicing at once is always safe; deferring to the renewal only if the organization chose
    # it.
    chosen = {ProrationBehavior.ALWAYS_INVOICE, policy.proration_behavior}
    return frozenset(chosen & set(CUSTOMER_BEHAVIORS))


def resolved_behavior(
    actor: Principal, policy: CustomerPolicy | None, requested: ProrationBehavior | None
) -> ProrationBehavior:
    """The behavior a plan change uses: what was asked, else the customer policy's for customer
    tokens and ``CREATE_PRORATIONS`` for staff."""
    if requested is not None:
        return requested
    if is_customer(actor) and policy is not None:
        return policy.proration_behavior
    return _STAFF_BEHAVIOR


def trial_end_after_change(
    *,
    trial_start: datetime,
    trial_end: datetime,
    plan_trial_days: int,
    first_in_family: bool,
) -> datetime:
    """When a trial ends after a customer moves it to another plan: never later than it would
    have, nor than the new plan's trial allows from the same start; at its start (that is, it
    is over) when the new plan's family was already used by another subscription."""
    if not first_in_family:
        return trial_start
    return min(trial_end, trial_start + timedelta(days=plan_trial_days))


def pause_refusals(policy: CustomerPolicy, *, resumes_at: datetime | None) -> list[DomainError]:
    """Why a customer token may not pause (empty: it may)."""
    if not policy.can_pause:
        return [
            _refused("id", "This organization does not let customers pause their subscriptions.")
        ]
    if resumes_at is not None:
        return [
            _refused(
                "resumesAt",
                "A customer token pauses until it resumes the subscription itself; an "
                "automatic resume (resumesAt) is for staff.",
            )
        ]
    return []


def resume_refusals(policy: CustomerPolicy) -> list[DomainError]:
    """Why a customer token may not resume a paused subscription (empty: it may). Undoing a
    cancellation at period end is always allowed: the customer keeps paying."""
    if not policy.can_pause:
        return [
            _refused("id", "This organization does not let customers resume a paused subscription.")
        ]
    return []
