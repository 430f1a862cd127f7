"""What each caller sees of who asked for, approved and rejected a refund (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.auth import Principal, Role
from app.core.money import Money
from app.payments.refunds import Refund, RefundAudit, RefundReason, RefundStatus, audit_for

NOW = datetime(2027, 1, 31, tzinfo=UTC)


def refund(**overrides: Any) -> Refund:
    values: dict[str, Any] = {
        "id": "re_1",
        "organization_id": "acme",
        "payment_id": "pay_1",
        "customer_id": "cus_1",
        "amount": Money(1000, "USD"),
        "reason": RefundReason.OTHER,
        "note": "internal: third refund this month",
        "status": RefundStatus.REJECTED,
        "stripe_refund_id": None,
        "failure_reason": None,
        "requested_by": "alice@staff",
        "approved_by": None,
        "approved_at": None,
        "rejected_by": "bob@staff",
        "rejected_at": NOW,
        "rejection_reason": "looks like abuse",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return Refund(**values)


def test_staff_see_every_name_and_note() -> None:
    made = refund()
    for role in (Role.ADMIN, Role.SERVICE):
        assert audit_for(made, Principal("carol", "acme", role)) == RefundAudit(
            requested_by="alice@staff",
            note="internal: third refund this month",
            approved_by=None,
            rejected_by="bob@staff",
            rejection_reason="looks like abuse",
        )


def test_a_customer_sees_no_staff_identity_or_text() -> None:
    owner = Principal("cus_1", "acme", Role.CUSTOMER)
    assert audit_for(refund(), owner) == RefundAudit(None, None, None, None, None)
    approved = refund(
        status=RefundStatus.SUCCEEDED,
        approved_by="bob@staff",
        approved_at=NOW,
        rejected_by=None,
        rejected_at=None,
        rejection_reason=None,
    )
    assert audit_for(approved, owner) == RefundAudit(None, None, None, None, None)
    assert audit_for(refund(), None) == RefundAudit(None, None, None, None, None)


def test_a_customer_sees_its_own_request_but_not_who_handled_it() -> None:
    owner = Principal("cus_1", "acme", Role.CUSTOMER)
    own = refund(requested_by="cus_1", note="arrived broken", approved_by="bob@staff")
    assert audit_for(own, owner) == RefundAudit(
        requested_by="cus_1",
        note="arrived broken",
        approved_by=None,
        rejected_by=None,
        rejection_reason=None,
    )
