"""The customer self-service policy's rules, without a database: what a customer token may
choose when it subscribes, changes plan, pauses or resumes, and the settings behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.catalog.plans import IntervalUnit, Plan, Tier
from app.core.auth import Principal, Role
from app.core.errors import DomainError, ErrorCode
from app.core.money import Money
from app.organizations.policy import (
    CustomerPolicy,
    ProrationBehavior,
    change_refusals,
    create_refusals,
    is_customer,
    pause_refusals,
    policy_problems,
    resolved_behavior,
    resume_refusals,
    trial_days_at_create,
    trial_end_after_change,
)

NOW = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)
B = ProrationBehavior
CUSTOMER = Principal("cus_1", "acme", Role.CUSTOMER)
ADMIN = Principal("someone", "acme", Role.ADMIN)
SERVICE = Principal("svc", "acme", Role.SERVICE)


def plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {
        "id": "plan_1",
        "organization_id": "acme",
        "code": "pro-monthly",
        "family": "pro",
        "name": "Pro",
        "description": "",
        "tier": Tier.PRO,
        "price": Money(2500, "USD"),
        "interval": IntervalUnit.MONTH,
        "interval_count": 1,
        "trial_days": 14,
        "features": {},
        "credits_included": 0,
        "max_users": None,
        "max_storage_bytes": None,
        "active": True,
        "stripe_product_id": None,
        "stripe_price_id": None,
        "created_at": NOW,
        "updated_at": NOW,
        "archived_at": None,
    }
    values.update(overrides)
    return Plan(**values)


def where(errors: list[DomainError]) -> list[tuple[tuple[str, ...] | None, ErrorCode]]:
    return [(e.field, e.code) for e in errors]


def test_only_customer_tokens_are_held_to_the_policy() -> None:
    assert is_customer(CUSTOMER)
    assert not is_customer(ADMIN)
    assert not is_customer(SERVICE)


def test_a_customer_cannot_choose_a_trial_a_start_or_more_units() -> None:
    policy = CustomerPolicy()
    refused = create_refusals(policy, plan(), quantity=2, trial_days=730, start_at=NOW)
    assert where(refused) == [
        (("input", "quantity"), ErrorCode.NOT_PERMITTED),
        (("input", "trialDays"), ErrorCode.NOT_PERMITTED),
        (("input", "startAt"), ErrorCode.NOT_PERMITTED),
    ]
    assert refused[0].message == (
        "A customer token can subscribe to at most 1 unit; ask the organization for more."
    )
    assert create_refusals(policy, plan(), quantity=1, trial_days=None, start_at=None) == []
    assert create_refusals(policy, plan(), quantity=1, trial_days=0, start_at=None) == []
    assert create_refusals(policy, plan(), quantity=1, trial_days=1, start_at=None) != []
    roomy = CustomerPolicy(max_quantity=5)
    assert create_refusals(roomy, plan(), quantity=5, trial_days=None, start_at=None) == []
    assert where(create_refusals(roomy, plan(), quantity=6, trial_days=None, start_at=None)) == [
        (("input", "quantity"), ErrorCode.NOT_PERMITTED)
    ]


def test_a_custom_plan_is_assigned_by_staff() -> None:
    custom = plan(id="plan_custom", tier=Tier.CUSTOM)
    refused = create_refusals(CustomerPolicy(), custom, quantity=1, trial_days=None, start_at=None)
    assert where(refused) == [(("input", "planId"), ErrorCode.NOT_PERMITTED)]
    moving_in = change_refusals(
        CustomerPolicy(),
        custom,
        current_plan_id="plan_other",
        current_quantity=1,
        quantity=None,
        behavior=None,
    )
    assert where(moving_in) == [(("input", "planId"), ErrorCode.NOT_PERMITTED)]
    already_on_it = change_refusals(
        CustomerPolicy(),
        custom,
        current_plan_id="plan_custom",
        current_quantity=3,
        quantity=2,
        behavior=None,
    )
    assert already_on_it == []


def test_the_plans_trial_once_per_family_or_none_when_asked() -> None:
    assert trial_days_at_create(plan(trial_days=14), requested=None, first_in_family=True) == 14
    assert trial_days_at_create(plan(trial_days=14), requested=None, first_in_family=False) == 0
    assert trial_days_at_create(plan(trial_days=14), requested=0, first_in_family=True) == 0
    assert trial_days_at_create(plan(trial_days=0), requested=None, first_in_family=True) == 0


@pytest.mark.parametrize(
    ("current", "requested", "limit_hit"),
    [
        (1, None, False),  # keeps what it has
        (1, 1, False),
        (1, 2, True),  # above the organization's limit
        (40, 40, False),  # staff gave it 40: it may keep them
        (40, 12, False),  # or lower them
        (40, 41, True),  # but not raise them
    ],
)
def test_a_plan_change_keeps_quantities_within_the_limit_or_what_staff_gave(
    current: int, requested: int | None, limit_hit: bool
) -> None:
    refused = change_refusals(
        CustomerPolicy(max_quantity=1),
        plan(),
        current_plan_id="plan_0",
        current_quantity=current,
        quantity=requested,
        behavior=None,
    )
    expected = [(("input", "quantity"), ErrorCode.NOT_PERMITTED)] if limit_hit else []
    assert where(refused) == expected


@pytest.mark.parametrize(
    ("chosen", "requested", "allowed"),
    [
        (B.ALWAYS_INVOICE, None, True),
        (B.ALWAYS_INVOICE, B.ALWAYS_INVOICE, True),
        (B.ALWAYS_INVOICE, B.CREATE_PRORATIONS, False),  # a cancellation would skip the charge
        (B.ALWAYS_INVOICE, B.NONE, False),  # a free upgrade
        (B.CREATE_PRORATIONS, None, True),
        (B.CREATE_PRORATIONS, B.CREATE_PRORATIONS, True),
        (B.CREATE_PRORATIONS, B.ALWAYS_INVOICE, True),  # invoicing at once is always safe
        (B.CREATE_PRORATIONS, B.NONE, False),
    ],
)
def test_a_customers_plan_change_is_always_billed(
    chosen: ProrationBehavior, requested: ProrationBehavior | None, allowed: bool
) -> None:
    refused = change_refusals(
        CustomerPolicy(proration_behavior=chosen),
        plan(),
        current_plan_id="plan_0",
        current_quantity=1,
        quantity=None,
        behavior=requested,
    )
    assert where(refused) == ([] if allowed else [(("input", "prorationBehavior"), ENP)])


ENP = ErrorCode.NOT_PERMITTED


def test_the_behavior_used_when_none_is_asked_for() -> None:
    policy = CustomerPolicy(proration_behavior=B.CREATE_PRORATIONS)
    assert resolved_behavior(CUSTOMER, CustomerPolicy(), None) is B.ALWAYS_INVOICE
    assert resolved_behavior(CUSTOMER, policy, None) is B.CREATE_PRORATIONS
    assert resolved_behavior(ADMIN, None, None) is B.CREATE_PRORATIONS  # today's default
    assert resolved_behavior(SERVICE, None, B.NONE) is B.NONE  # staff keep their override
    assert resolved_behavior(CUSTOMER, policy, B.ALWAYS_INVOICE) is B.ALWAYS_INVOICE


def test_a_trial_moved_to_another_plan_never_outlasts_what_that_plan_offers() -> None:
    start, end = NOW, NOW + timedelta(days=30)

    def after(days: int, *, first: bool = True) -> datetime:
        return trial_end_after_change(
            trial_start=start, trial_end=end, plan_trial_days=days, first_in_family=first
        )

    assert after(14) == start + timedelta(days=14)
    assert after(30) == end
    assert after(365) == end, "a longer trial elsewhere does not lengthen this one"
    assert after(0) == start, "a plan without a trial ends it"
    assert after(14, first=False) == start, "a family used before gives no trial"


def test_pausing_and_resuming_follow_the_organizations_choice() -> None:
    closed, open_ = CustomerPolicy(), CustomerPolicy(can_pause=True)
    assert where(pause_refusals(closed, resumes_at=None)) == [(("input", "id"), ENP)]
    assert pause_refusals(open_, resumes_at=None) == []
    assert where(pause_refusals(open_, resumes_at=NOW)) == [(("input", "resumesAt"), ENP)]
    assert where(resume_refusals(closed)) == [(("input", "id"), ENP)]
    assert resume_refusals(open_) == []


def test_policy_settings_round_trip_with_safe_defaults() -> None:
    assert CustomerPolicy.from_settings({}) == CustomerPolicy(
        max_quantity=1, proration_behavior=B.ALWAYS_INVOICE, can_pause=False
    )
    changes = CustomerPolicy.settings_changes(
        max_quantity=25, proration_behavior=B.CREATE_PRORATIONS, can_pause=True
    )
    assert CustomerPolicy.from_settings(changes) == CustomerPolicy(25, B.CREATE_PRORATIONS, True)
    assert CustomerPolicy.settings_changes() == {}


def test_policy_problems() -> None:
    assert policy_problems(max_quantity=1, proration_behavior=B.CREATE_PRORATIONS) == []
    assert where(policy_problems(max_quantity=0, proration_behavior=B.NONE)) == [
        (("input", "customerMaxQuantity"), ErrorCode.INVALID),
        (("input", "customerProrationBehavior"), ErrorCode.INVALID),
    ]
    assert where(policy_problems(max_quantity=1_000_001, proration_behavior=None)) == [
        (("input", "customerMaxQuantity"), ErrorCode.INVALID)
    ]


@given(
    max_quantity=st.integers(1, 1_000_000),
    quantity=st.integers(1, 2_000_000),
    trial_days=st.one_of(st.none(), st.integers(0, 730)),
    start_at=st.one_of(st.none(), st.just(NOW)),
    tier=st.sampled_from(list(Tier)),
    first=st.booleans(),
    plan_trial=st.integers(0, 730),
)
def test_whatever_a_customer_sends_an_accepted_create_stays_within_the_catalog(
    max_quantity: int,
    quantity: int,
    trial_days: int | None,
    start_at: datetime | None,
    tier: Tier,
    first: bool,
    plan_trial: int,
) -> None:
    offered = plan(tier=tier, trial_days=plan_trial)
    policy = CustomerPolicy(max_quantity=max_quantity)
    refused = create_refusals(
        policy, offered, quantity=quantity, trial_days=trial_days, start_at=start_at
    )
    if refused:
        assert {e.code for e in refused} == {ErrorCode.NOT_PERMITTED}
        return
    assert quantity <= max_quantity
    assert start_at is None
    assert tier is not Tier.CUSTOM
    granted = trial_days_at_create(offered, requested=trial_days, first_in_family=first)
    assert granted == (plan_trial if first and trial_days is None else 0)
