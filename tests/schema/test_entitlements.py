"""Entitlements: merged from the plans of active and trialing subscriptions, as paused and
canceled ones stop granting, with included credits used by usage, and streamed live."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.context import Context
from app.core.auth import Principal, Role
from app.core.settings import Settings
from schema import schema
from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    CANCEL,
    CHANGE,
    PAUSE,
    RESUME,
    advance,
    paying_customer,
    subscribe,
)
from tests.schema.usage_support import event, metric, record_batch
from tests.support import GraphQLClient, token

ENTITLEMENTS = """query($id: ID!) {
  entitlements(customerId: $id) {
    customerId features maxUsers maxStorageBytes asOf
    credits { subscriptionId included { amount } used { amount } remaining { amount } }
    subscriptions { id plan { id } status }
  }
}"""
LIVE = """subscription($id: ID!) {
  entitlements(customerId: $id) { features maxUsers subscriptions { id status } }
}"""
MAR_1 = datetime(2027, 3, 1, tzinfo=UTC)


async def of(client: GraphQLClient, customer_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await client.data(ENTITLEMENTS, {"id": customer_id}))["entitlements"]
    return found


async def test_plans_merge_and_stop_granting_when_paused_or_ended(
    admin: GraphQLClient,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    base = await plan_factory(
        tier="BASIC",
        price={"amount": 1000, "currency": "USD"},
        features={"sso": False, "projects": 3, "support": "email", "api": {"rate": 10}},
        maxUsers=5,
        maxStorageBytes=1000,
    )
    addon = await plan_factory(
        tier="PRO",
        trialDays=14,
        price={"amount": 500, "currency": "USD"},
        features={"sso": True, "projects": 10, "support": "priority", "api": {"rate": 5, "x": 1}},
        maxUsers=2,
        maxStorageBytes=None,
    )
    customer = await paying_customer()
    assert (await of(admin, customer["id"]))["maxUsers"] == 0  # nothing granted yet
    first = await subscribe(admin, customerId=customer["id"], planId=base["id"])
    second = await subscribe(admin, customerId=customer["id"], planId=addon["id"])
    assert second["status"] == "TRIALING"

    found = await of(admin, customer["id"])
    # true wins, the larger number wins, objects merge, other values from the higher tier.
    assert found["features"] == {
        "api": {"rate": 10, "x": 1},
        "projects": 10,
        "sso": True,
        "support": "priority",
    }
    assert (found["maxUsers"], found["maxStorageBytes"]) == (5, None)
    assert [s["id"] for s in found["subscriptions"]] == [first["id"], second["id"]]

    # The customer sees its own, and nobody else's.
    own = admin.as_(token(settings, org, "customer", sub=customer["id"]))
    assert (await of(own, customer["id"]))["features"] == found["features"]
    stranger = await paying_customer()
    other = admin.as_(token(settings, org, "customer", sub=stranger["id"]))
    assert await of(other, customer["id"]) is None

    # Paused: the base plan grants nothing; the trial still does.
    paused = await admin.data(PAUSE, {"input": {"id": first["id"]}})
    assert paused["subscriptionPause"]["errors"] == []
    found = await of(admin, customer["id"])
    assert found["features"] == {
        "api": {"rate": 5, "x": 1},
        "projects": 10,
        "sso": True,
        "support": "priority",
    }
    assert (found["maxUsers"], found["maxStorageBytes"]) == (2, None)
    await admin.data(RESUME, {"input": {"id": first["id"]}})

    # Canceled at period end: it grants until the end, then nothing.
    await admin.data(CANCEL, {"input": {"id": second["id"], "atPeriodEnd": True}})
    assert len((await of(admin, customer["id"]))["subscriptions"]) == 2
    await advance(admin, datetime(2027, 3, 16, tzinfo=UTC))  # the trial ended: canceled
    found = await of(admin, customer["id"])
    assert [s["id"] for s in found["subscriptions"]] == [first["id"]]
    assert found["features"] == {
        "api": {"rate": 10},
        "projects": 3,
        "sso": False,
        "support": "email",
    }


async def test_included_credits_are_used_by_usage(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    await metric(admin, code="gb", name="GB", aggregation="SUM")
    plan = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        creditsIncluded=500,
        meteredPrices=[{"metric": "gb", "model": "PER_UNIT", "unitPrice": "0.1"}],
    )
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"])
    await advance(admin, datetime(2027, 3, 10, tzinfo=UTC))
    (credit,) = (await of(admin, customer["id"]))["credits"]
    assert (credit["included"], credit["used"], credit["remaining"]) == (
        {"amount": "500"},
        {"amount": "0"},
        {"amount": "500"},
    )
    events = [
        event(f"gb{n}", "gb", sub["id"], MAR_1 + timedelta(days=n), value="12") for n in range(3)
    ]
    await record_batch(admin, events)  # 36 GB x 10 cents = 360
    (credit,) = (await of(admin, customer["id"]))["credits"]
    assert (credit["used"], credit["remaining"]) == ({"amount": "360"}, {"amount": "140"})
    await record_batch(
        admin, [event("gb9", "gb", sub["id"], MAR_1 + timedelta(days=5), value="30")]
    )
    (credit,) = (await of(admin, customer["id"]))["credits"]
    assert (credit["used"], credit["remaining"]) == ({"amount": "500"}, {"amount": "0"})


@pytest.fixture
def watch(app_services: Any, org: str) -> Callable[..., Any]:
    async def results(customer_id: str, role: Role = Role.ADMIN) -> AsyncIterator[dict[str, Any]]:
        subject = customer_id if role is Role.CUSTOMER else "test-watcher"
        context = Context(app_services, principal=Principal(subject, org, role))
        stream = await schema.subscribe(
            LIVE, variable_values={"id": customer_id}, context_value=context
        )
        async for result in stream:  # type: ignore[union-attr]
            assert not result.errors, result.errors
            assert result.data is not None
            yield result.data["entitlements"]

    return results


async def test_the_live_stream_follows_changes(
    admin: GraphQLClient,
    watch: Callable[..., Any],
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    small = await plan_factory(price={"amount": 1000, "currency": "USD"}, maxUsers=3)
    large = await plan_factory(price={"amount": 3000, "currency": "USD"}, maxUsers=20)
    customer = await paying_customer()
    stream = watch(customer["id"], Role.CUSTOMER)
    assert (await asyncio.wait_for(anext(stream), 20))["subscriptions"] == []

    async def until(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            value: dict[str, Any] = await asyncio.wait_for(anext(stream), 20)
            if check(value):
                return value

    sub = await subscribe(admin, customerId=customer["id"], planId=small["id"])
    assert (await until(lambda v: v["maxUsers"] == 3))["subscriptions"][0]["id"] == sub["id"]
    changed = await admin.data(
        CHANGE,
        {"input": {"id": sub["id"], "planId": large["id"], "idempotencyKey": str(uuid.uuid4())}},
    )
    assert changed["subscriptionChangePlan"]["errors"] == []
    await until(lambda v: v["maxUsers"] == 20)
    # A plan update reaches the watchers of its customers.
    updated = await admin.data(
        "mutation($input: PlanUpdateInput!) { planUpdate(input: $input) { errors { code } } }",
        {"input": {"id": large["id"], "maxUsers": 25, "features": {"beta": True}}},
    )
    assert updated["planUpdate"]["errors"] == []
    assert (await until(lambda v: v["maxUsers"] == 25))["features"] == {"beta": True}
    await admin.data(CANCEL, {"input": {"id": sub["id"], "atPeriodEnd": False}})
    assert (await until(lambda v: v["subscriptions"] == []))["maxUsers"] == 0
    await stream.aclose()


async def test_a_customer_watches_only_its_own(
    app_services: Any, org: str, customer_factory: Callable[..., Any]
) -> None:
    mine, theirs = await customer_factory(), await customer_factory()
    context = Context(app_services, principal=Principal(mine["id"], org, Role.CUSTOMER))
    stream = await schema.subscribe(
        LIVE, variable_values={"id": theirs["id"]}, context_value=context
    )
    result = await asyncio.wait_for(anext(stream), 20)  # type: ignore[arg-type]
    assert result.errors
    assert result.errors[0].extensions["code"] == "FORBIDDEN"
