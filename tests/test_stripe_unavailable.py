"""A Stripe that accepts connections and never answers: it slows only the calls that need it.

No transaction (or pooled connection) is held across a Stripe call, every call is bounded by
STRIPE_TIMEOUT_SECONDS, and a timeout is a payload error that leaves nothing behind; for money,
a timeout is an unknown outcome that a retry with the same key resolves by reading Stripe first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.errors import ProviderUnreachable
from app.core.settings import Settings
from app.stripe.emulator import EMULATOR_API_KEY
from app.stripe.gateway import ProviderTimeout, StripeGateway
from app.web.app import create_app
from db.connection import Database
from db.repositories.customers import CustomerRepository
from db.repositories.plans import PlanRepository
from tests.blackhole import BlackHole, until
from tests.conftest import CONFIRM_PAYMENT, CREATE_CUSTOMER, CREATE_PLAN, running
from tests.support import GraphQLClient, new_org, token

STRIPE_TIMEOUT = 5  # seconds: long enough for the reads below, short enough for a test
CALLS = 12

LIST_PLANS = "{ plans(first: 100) { totalCount edges { node { id code } } } }"
LIST_CUSTOMERS = "{ customers(first: 100) { totalCount edges { node { id email } } } }"
UPDATE_CUSTOMER = """mutation($input: CustomerUpdateInput!) {
  customerUpdate(input: $input) { customer { id name } errors { field code message } }
}"""


def _services(http: httpx.AsyncClient) -> Any:
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.services  # type: ignore[attr-defined]


async def _customer_row(db: Database, org: str, n: int, *, stripe_id: str | None) -> str:
    """A customer written straight to the database (this app cannot reach Stripe)."""
    customer_id = f"cus_{uuid.uuid4().hex[:20]}"
    row = await CustomerRepository(db).insert(
        {
            "organization_id": org,
            "id": customer_id,
            "email": f"c{n}@example.com",
            "name": f"Customer {n}",
            "stripe_customer_id": stripe_id,
        }
    )
    assert row is not None
    return customer_id


async def _plan_row(db: Database, org: str, code: str) -> str:
    plan_id = f"plan_{uuid.uuid4().hex[:20]}"
    repository = PlanRepository(db)
    # Plan families arrive with db/migrations/0009 (another change); name one if they exist.
    family = {"family": code} if "family" in repository.table.c else {}
    row = await repository.insert(
        {
            **family,
            "organization_id": org,
            "id": plan_id,
            "code": code,
            "name": code.title(),
            "description": "",
            "tier": "pro",
            "amount": 1000,
            "currency": "USD",
            "interval_unit": "month",
            "interval_count": 1,
            "trial_days": 0,
            "features": {},
            "credits_included": 0,
            "active": True,
            "stripe_product_id": f"prod_{code}",
            "stripe_price_id": f"price_{code}",
        }
    )
    assert row is not None
    return plan_id


async def test_a_frozen_stripe_does_not_starve_other_organizations(
    settings: Settings, database_url: str
) -> None:
    victim, bystander = new_org(), new_org()
    async with BlackHole() as hole:
        frozen = settings.with_overrides(
            stripe_api_base=hole.url,
            db_pool_min=1,
            db_pool_max=2,
            stripe_timeout_seconds=STRIPE_TIMEOUT,
        )
        async for http in running(create_app(frozen)):
            db = _services(http).db
            mine = [
                await _customer_row(db, victim, n, stripe_id=f"cus_remote{n}") for n in range(4)
            ]
            theirs = await _customer_row(db, bystander, 99, stripe_id="cus_remote99")
            their_plan = await _plan_row(db, bystander, "steady")
            admin = GraphQLClient(http, token(settings, victim))
            other = GraphQLClient(http, token(settings, bystander))

            calls = [
                admin.data(CREATE_CUSTOMER, {"input": {"email": f"new{n}@example.com"}})
                for n in range(4)
            ]
            calls += [
                admin.data(
                    CREATE_PLAN,
                    {
                        "input": {
                            "code": f"stuck-{n}",
                            "name": f"Stuck {n}",
                            "tier": "PRO",
                            "price": {"amount": 500, "currency": "USD"},
                            "interval": "MONTH",
                        }
                    },
                )
                for n in range(4)
            ]
            calls += [
                admin.data(UPDATE_CUSTOMER, {"input": {"id": customer_id, "name": "Renamed"}})
                for customer_id in mine
            ]
            assert len(calls) == CALLS
            tasks = [asyncio.create_task(call) for call in calls]
            try:
                # Every call reached Stripe at once, although the pool has two connections.
                await until(lambda: hole.open == CALLS, f"{CALLS} calls waiting at Stripe")

                plans, customers = await asyncio.gather(
                    other.data(LIST_PLANS), other.data(LIST_CUSTOMERS)
                )

                # The reads finished while every Stripe call was still pending.
                assert hole.open == CALLS
                assert not any(task.done() for task in tasks)
                assert [e["node"]["id"] for e in plans["plans"]["edges"]] == [their_plan]
                assert [e["node"]["id"] for e in customers["customers"]["edges"]] == [theirs]

                results = await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
            assert hole.accepted == CALLS

            payloads = [next(iter(result.values())) for result in results]
            actions = ["create the customer"] * 4 + ["create the product"] * 4
            actions += ["update the customer"] * 4
            for payload, action in zip(payloads, actions, strict=True):
                assert payload[next(k for k in payload if k != "errors")] is None
                assert payload["errors"] == [
                    {
                        "field": None,
                        "code": "PAYMENT_PROVIDER_ERROR",
                        "message": f"Stripe did not answer in time (within {STRIPE_TIMEOUT} "
                        f"seconds) to {action}; nothing was changed. Try again later.",
                    }
                ]

            # Nothing left behind: no half-created customer or plan, no renamed customer.
            rows = await db.fetch_all(
                "SELECT id, name, stripe_synced, stripe_sync_token FROM customers "
                "WHERE organization_id = :org ORDER BY id",
                {"org": victim},
            )
            assert sorted(r["id"] for r in rows) == sorted(mine)
            assert {r["name"] for r in rows} == {f"Customer {n}" for n in range(4)}
            # Stripe may have applied the renames: the rows say so, for the next write to repair.
            assert {(r["stripe_synced"], r["stripe_sync_token"]) for r in rows} == {(False, None)}
            plan_count = await db.fetch_val(
                "SELECT count(*) FROM plans WHERE organization_id = :org", {"org": victim}
            )
            assert plan_count == 0


async def test_a_timed_out_gateway_call_is_an_unknown_outcome_and_is_cancelled() -> None:
    async with BlackHole() as hole:
        gateway = StripeGateway(
            EMULATOR_API_KEY, api_base=hole.url, max_network_retries=2, timeout_seconds=1
        )
        try:
            with pytest.raises(ProviderTimeout) as money:
                await gateway.confirm_payment_intent("pi_123", idempotency_key="k-confirm")
            assert isinstance(money.value, ProviderUnreachable)
            assert money.value.message == (
                "Stripe did not answer in time (within 1 seconds), so whether it could confirm "
                "the payment is not known yet. Retry with the same idempotency key: the retry "
                "reads the provider's state before acting."
            )
            assert money.value.details == {"provider_code": "timeout"}
            with pytest.raises(ProviderTimeout) as mirror:
                await gateway.create_customer(
                    idempotency_key="k", email="a@example.com", name="", address=None, metadata={}
                )
            assert mirror.value.message == (
                "Stripe did not answer in time (within 1 seconds) to create the customer; "
                "nothing was changed. Try again later."
            )
            # The requests were abandoned, not left running (the SDK's retries included).
            await until(lambda: hole.open == 0, "the timed-out connections closed")
            assert hole.accepted == 2
        finally:
            await gateway.close()


async def test_a_payment_confirm_that_times_out_is_resumed_by_a_retry_with_its_key(
    settings: Settings,
    admin: GraphQLClient,
    org: str,
    payment_factory: Callable[..., Any],
) -> None:
    payment = await payment_factory()
    key = f"confirm-{uuid.uuid4()}"
    variables = {"input": {"paymentId": payment["id"], "idempotencyKey": key}}
    async with BlackHole() as hole:
        frozen = settings.with_overrides(stripe_api_base=hole.url, stripe_timeout_seconds=1)
        async for http in running(create_app(frozen)):
            stuck = await GraphQLClient(http, token(settings, org)).data(CONFIRM_PAYMENT, variables)
            db = _services(http).db
            row = await db.fetch_one(
                "SELECT status, operation, lease_until < now() AS expired FROM payments "
                "WHERE organization_id = :org AND id = :id",
                {"org": org, "id": payment["id"]},
            )
    errors = stuck["paymentIntentConfirm"]["errors"]
    assert [e["code"] for e in errors] == ["PAYMENT_PROVIDER_ERROR"]
    assert errors[0]["message"].startswith("Stripe did not answer in time (within 1 seconds)")
    # Not a failure that releases anything: the confirm stays marked, for a retry to read first.
    assert row is not None
    assert (row["status"], row["operation"], row["expired"]) == (
        "requires_confirmation",
        "confirm",
        True,
    )

    retried = (await admin.data(CONFIRM_PAYMENT, variables))["paymentIntentConfirm"]
    assert retried["errors"] == []
    assert retried["payment"]["status"] == "SUCCEEDED"
    again = (await admin.data(CONFIRM_PAYMENT, variables))["paymentIntentConfirm"]
    assert again == retried
