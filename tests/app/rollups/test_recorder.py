"""What a payment change adds to the revenue statistics, without a database: a succeeded
payment contributes as a state (and stops if it ever left it), a decline is an event of the
transition into FAILED, keyed by the attempt, and never taken back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.rollups.recorder import decline_of, payment_contribution
from db.repositories.statistics import DeclineRow

AT = datetime(2027, 2, 10, 23, 37, 12, tzinfo=UTC)
BUCKET = datetime(2027, 2, 10, 23, 30, tzinfo=UTC)


def payment(status: str, **more: Any) -> dict[str, Any]:
    row = {
        "organization_id": "acme",
        "id": "pay_1",
        "customer_id": "cus_1",
        "currency": "USD",
        "amount": 2500,
        "amount_captured": 0,
        "status": status,
        "operation_key": None,
        "failure_code": None,
        "stripe_payment_intent_id": "pi_1",
        "succeeded_at": None,
        "failed_at": None,
    }
    row.update(more)
    return row


FAILED = payment("failed", failure_code="card_declined", failed_at=AT)


def test_entering_failed_is_one_decline_of_the_attempt_that_saw_it() -> None:
    confirming = payment("requires_confirmation", operation_key="billing-abc-confirm")
    assert decline_of(confirming, FAILED) == DeclineRow(
        organization_id="acme",
        payment_id="pay_1",
        attempt_key="billing-abc-confirm",
        customer_id="cus_1",
        currency="USD",
        amount=2500,
        failure_code="card_declined",
        declined_at=AT,
    )
    # Inserted already failed (Stripe never does this, but the row says so): its creation.
    created = decline_of(None, FAILED)
    assert created is not None
    assert created.attempt_key == "create"
    # A change recorded without an operation (none does today) is still one attempt, keyed by
    # the transition's time.
    bare = decline_of(payment("processing"), FAILED)
    assert bare is not None
    assert bare.attempt_key == f"processing:{AT.isoformat()}"


def test_leaving_failed_or_staying_there_declines_nothing() -> None:
    for after in ("canceled", "succeeded", "requires_payment_method", "requires_action"):
        assert decline_of(FAILED, payment(after, operation_key="k")) is None
    assert decline_of(FAILED, {**FAILED, "failure_code": "expired_card"}) is None
    assert decline_of(payment("requires_confirmation"), payment("succeeded")) is None


def test_only_a_succeeded_payment_contributes_as_a_state() -> None:
    assert payment_contribution(FAILED) == {}  # its decline was counted when it happened
    assert payment_contribution(payment("canceled")) == {}
    assert payment_contribution(None) == {}
    paid = payment("succeeded", amount_captured=2500, succeeded_at=AT)
    assert payment_contribution(paid) == {("USD", BUCKET): {"gross": 2500, "payments": 1}}
