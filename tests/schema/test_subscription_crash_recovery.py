"""Requests whose process died between committing a subscription change and charging for it:
the retry with the same key finishes the charge. Found by the multi-process fault test, where
a retried `subscriptionCreate` answered DUPLICATE and stranded the subscription incomplete (and
a retried invoiced plan change would have answered "already on this plan", leaving its
invoice open outside dunning)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.errors import DomainError, ErrorCode
from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    CHANGE,
    CREATE,
    JAN_31,
    advance,
    current,
    invoices_of,
    paying_customer,
)
from tests.support import GraphQLClient


class Crash(Exception):
    """Stands for the process dying: not a domain error, so the key is left claimed."""


async def test_a_retry_after_a_crash_before_the_first_charge_completes_the_subscription(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = await plan_factory(price={"amount": 1500, "currency": "USD"})
    customer = await paying_customer()
    request = await _created_then_died(admin, org, app_services, monkeypatch, plan, customer)
    retried = (await admin.data(CREATE, request))["subscriptionCreate"]
    assert retried["errors"] == []
    subscription = retried["subscription"]
    assert subscription["status"] == "ACTIVE"
    assert subscription["latestInvoiceId"] is not None
    invoices = await invoices_of(admin, customer["id"])
    assert [(i["status"], i["total"]["amount"]) for i in invoices] == [("PAID", "1500")]

    # And a third send replays the stored answer.
    again = (await admin.data(CREATE, request))["subscriptionCreate"]
    assert again["subscription"]["id"] == subscription["id"]
    assert again["subscription"]["status"] == "ACTIVE"


async def test_a_retry_after_a_crash_before_a_change_invoice_is_charged_charges_it(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    basic = await plan_factory(price={"amount": 3000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 9000, "currency": "USD"})
    customer = await paying_customer()
    created = await admin.data(
        CREATE,
        {
            "input": {
                "idempotencyKey": str(uuid.uuid4()),
                "customerId": customer["id"],
                "planId": basic["id"],
            }
        },
    )
    sub = created["subscriptionCreate"]["subscription"]
    service = app_services.subscriptions
    real_charge = service._charge_change

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    monkeypatch.setattr(service, "_charge_change", crash)
    request = {
        "input": {
            "id": sub["id"],
            "planId": pro["id"],
            "prorationBehavior": "ALWAYS_INVOICE",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    died = await admin(CHANGE, request)
    assert died["data"] is None
    monkeypatch.setattr(service, "_charge_change", real_charge)
    await _expire(app_services, org, request["input"]["idempotencyKey"])

    retried = (await admin.data(CHANGE, request))["subscriptionChangePlan"]
    assert retried["errors"] == []
    assert retried["subscription"]["plan"]["id"] == pro["id"]
    assert retried["subscription"]["status"] == "ACTIVE"
    invoices = await invoices_of(admin, customer["id"])
    proration = [i for i in invoices if any(line["kind"] == "PRORATION" for line in i["lines"])]
    (invoice,) = proration
    assert invoice["status"] == "PAID"
    assert retried["subscription"]["latestInvoiceId"] == invoice["id"]


async def _created_then_died(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    plan: dict[str, Any],
    customer: dict[str, Any],
) -> dict[str, Any]:
    """Send a subscriptionCreate whose process dies after committing the subscription and
    before charging it; its key's lease then runs out. Returns the request, to send again."""
    service = app_services.subscriptions
    real = service._bill_first_period

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash

    monkeypatch.setattr(service, "_bill_first_period", crash)
    request = {
        "input": {
            "idempotencyKey": str(uuid.uuid4()),
            "customerId": customer["id"],
            "planId": plan["id"],
        }
    }
    died = await admin(CREATE, request)
    assert died["data"] is None
    assert died["errors"][0]["message"] == "Unexpected error."
    monkeypatch.setattr(service, "_bill_first_period", real)
    await _expire(app_services, org, request["input"]["idempotencyKey"])
    return request


async def _expire(app_services: Any, org: str, key: str) -> None:
    """The dead request's lease runs out (as it does some time after a crash)."""
    await app_services.db.execute(
        "UPDATE idempotency_keys SET locked_until = now() - interval '1 second' "
        "WHERE organization_id = :org AND key = :key",
        {"org": org, "key": key},
    )


async def test_a_retry_that_finds_the_dead_requests_charge_in_flight_answers_incomplete(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The retry takes the key over but the first period's charge is still leased by the
    dead request: the subscription answers as incomplete (not DUPLICATE, which a freed key
    led to), the key keeps that answer, and the worker settles it with the same key."""
    await advance(admin, JAN_31)
    plan = await plan_factory(price={"amount": 1200, "currency": "USD"})
    customer = await paying_customer()
    request = await _created_then_died(admin, org, app_services, monkeypatch, plan, customer)

    billing = app_services.subscriptions._billing
    real_bill = billing.bill

    async def held(*args: Any, **kwargs: Any) -> Any:
        raise DomainError(ErrorCode.OPERATION_IN_PROGRESS, "a dead request holds this charge")

    monkeypatch.setattr(billing, "bill", held)
    retried = (await admin.data(CREATE, request))["subscriptionCreate"]
    monkeypatch.setattr(billing, "bill", real_bill)
    assert retried["errors"] == []
    subscription = retried["subscription"]
    assert subscription["status"] == "INCOMPLETE"

    again = (await admin.data(CREATE, request))["subscriptionCreate"]
    assert again["errors"] == []
    assert again["subscription"]["id"] == subscription["id"]

    await advance(admin, JAN_31 + timedelta(days=1))
    settled = await current(admin, subscription["id"])
    assert settled["status"] == "ACTIVE"
    invoices = await invoices_of(admin, customer["id"])
    assert [(i["status"], i["total"]["amount"]) for i in invoices] == [("PAID", "1200")]
