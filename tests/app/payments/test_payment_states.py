"""The payment and refund state machines: what Stripe's answers map to, and the database
refusing every transition the Python tables refuse (the SQL guard is the last word)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from app.payments import refunds
from app.payments.service import TRANSITIONS, PaymentStatus, _recorded, _status_of
from app.stripe.gateway import StripeIntent


def intent(status: str, **fields: Any) -> StripeIntent:
    values: dict[str, Any] = {
        "id": "pi_1",
        "status": status,
        "amount": 1000,
        "currency": "USD",
        "client_secret": None,
        "payment_method": "pm_1",
        "amount_received": None,
        "amount_capturable": None,
        "next_action": None,
        "error_code": None,
        "error_message": None,
    }
    values.update(fields)
    return StripeIntent(**values)


def test_a_payment_intent_back_to_requires_payment_method_after_an_attempt_is_failed() -> None:
    assert _status_of(intent("requires_payment_method")) is PaymentStatus.REQUIRES_PAYMENT_METHOD
    declined = intent("requires_payment_method", error_code="insufficient_funds")
    assert _status_of(declined) is PaymentStatus.FAILED
    assert _status_of(intent("succeeded")) is PaymentStatus.SUCCEEDED
    assert _status_of(intent("something_new")) is PaymentStatus.PROCESSING


def _row(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "pay_1",
        "status": status,
        "amount_captured": 0,
        "payment_method_id": None,
        "operation": None,
        "operation_amount": None,
        "failure_code": None,
        "failure_message": None,
        **fields,
    }


def test_recording_never_invents_success_or_an_illegal_transition() -> None:
    ok = _recorded(_row("requires_confirmation"), intent("succeeded", amount_received=1000))
    assert (ok["status"], ok["amount_captured"]) == ("succeeded", 1000)
    action = _recorded(_row("requires_confirmation"), intent("requires_action", next_action={}))
    assert (action["status"], action["amount_captured"]) == ("requires_action", 0)
    partial = _recorded(
        _row("requires_capture", operation="capture", operation_amount=600), intent("succeeded")
    )
    assert partial["amount_captured"] == 600
    backwards = _recorded(_row("succeeded", amount_captured=1000), intent("requires_confirmation"))
    assert (backwards["status"], backwards["amount_captured"]) == ("succeeded", 1000)
    failed = _recorded(
        _row("requires_confirmation"),
        intent("requires_payment_method", error_code="card_declined", error_message="No."),
    )
    assert (failed["status"], failed["failure_code"], failed["failure_message"]) == (
        "failed",
        "card_declined",
        "No.",
    )


class _Rollback(Exception):
    pass


async def _accepts(app_services: Any, table: str, row_id: str, old: str, new: str) -> bool:
    """Whether the database lets a row go from ``old`` to ``new`` (the row is first put in
    ``old`` with triggers off; everything is rolled back)."""
    db = app_services.db
    try:
        async with db.transaction():
            await db.execute("SET LOCAL session_replication_role = replica")
            await db.execute(
                f"UPDATE {table} SET status = :s WHERE id = :id", {"s": old, "id": row_id}
            )
            await db.execute("SET LOCAL session_replication_role = origin")
            await db.execute(
                f"UPDATE {table} SET status = :s WHERE id = :id", {"s": new, "id": row_id}
            )
            raise _Rollback
    except _Rollback:
        return True
    except asyncpg.CheckViolationError:
        return False


async def test_the_database_refuses_exactly_the_payment_transitions_python_refuses(
    payment_factory: Callable[..., Any], app_services: Any
) -> None:
    payment = await payment_factory()
    for old, new in itertools.permutations(PaymentStatus, 2):
        accepted = await _accepts(app_services, "payments", payment["id"], old.value, new.value)
        assert accepted == (new in TRANSITIONS[old]), (old, new)


async def test_the_database_refuses_changes_to_amounts_and_owners(
    payment_factory: Callable[..., Any], app_services: Any
) -> None:
    payment = await payment_factory(confirm=True)
    for change in ("amount = amount + 1", "currency = 'EUR'", "amount_refunded = 10001"):
        with pytest.raises(asyncpg.CheckViolationError):
            await app_services.db.execute(
                f"UPDATE payments SET {change} WHERE id = :id", {"id": payment["id"]}
            )
    assert await _accepts(app_services, "payments", payment["id"], "succeeded", "failed") is False


async def test_the_database_refuses_exactly_the_refund_transitions_python_refuses(
    payment_factory: Callable[..., Any], app_services: Any, org: str
) -> None:
    payment = await payment_factory(confirm=True)
    refund_id = f"re_{uuid.uuid4().hex[:26]}"
    await app_services.db.execute(
        "INSERT INTO refunds (organization_id, id, payment_id, customer_id, amount, currency, "
        "reason, status, requested_by, stripe_idempotency_key, stripe_refund_id, rejected_by, "
        "rejected_at) VALUES (:org, :id, :payment, :customer, 100, 'USD', 'other', "
        "'pending_approval', 'x', 'k', :stripe, 'x', now())",
        {
            "org": org,
            "id": refund_id,
            "payment": payment["id"],
            "customer": payment["customerId"],
            "stripe": f"re_stripe_{uuid.uuid4().hex}",
        },
    )
    for old, new in itertools.permutations(refunds.RefundStatus, 2):
        accepted = await _accepts(app_services, "refunds", refund_id, old.value, new.value)
        assert accepted == (new in refunds.TRANSITIONS[old]), (old, new)
