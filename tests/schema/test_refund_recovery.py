"""A refund whose request died after Stripe made it but before we recorded it, and that no one
retried: the worker's housekeeping finds it at Stripe and records it, without refunding twice
(found by the multi-process fault test, where such a refund stayed pending with Stripe's money
already gone)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.settings import Settings
from tests.schema.test_refunds_api import CREATE, PAYMENT, stripe_refunds
from tests.support import GraphQLClient


class Crash(Exception):
    """Stands for the process dying right after Stripe answered."""


async def test_the_housekeeping_records_a_refund_stripe_made_for_a_dead_request(
    admin: GraphQLClient,
    org: str,
    settings: Settings,
    app_services: Any,
    payment_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payment = await payment_factory(confirm=True)
    gateway = app_services.refunds._stripe
    real_create = gateway.create_refund

    async def reach_stripe_then_die(**kwargs: Any) -> Any:
        await real_create(**kwargs)
        raise Crash

    monkeypatch.setattr(gateway, "create_refund", reach_stripe_then_die)
    died = await admin(
        CREATE,
        {
            "input": {
                "paymentId": payment["id"],
                "amount": {"amount": 3000, "currency": "USD"},
                "reason": "REQUESTED_BY_CUSTOMER",
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    assert died["data"] is None
    monkeypatch.setattr(gateway, "create_refund", real_create)
    assert len(await stripe_refunds(settings, payment)) == 1

    refunds = app_services.refunds
    # A live request's lease, or a refund younger than the grace period, is left alone.
    assert await refunds.send_unsent(org=org) == 0
    pending = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]["refunds"]
    assert [r["status"] for r in pending] == ["PENDING"]

    # Some minutes later the dead request's lease has run out.
    await app_services.db.execute(
        "UPDATE refunds SET lease_until = now() - interval '1 second', "
        "created_at = created_at - interval '10 minutes' WHERE organization_id = :org",
        {"org": org},
    )
    assert await refunds.send_unsent(org=org, older_than=timedelta(minutes=2)) == 1
    after = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert [(r["status"], r["amount"]["amount"]) for r in after["refunds"]] == [
        ("SUCCEEDED", "3000")
    ]
    assert after["amountRefunded"]["amount"] == "3000"
    assert len(await stripe_refunds(settings, payment)) == 1  # found, not made again
    assert await refunds.send_unsent(org=org) == 0
