"""Billing workers as separate processes: any number of them bill each period exactly once,
and a worker killed mid-batch leaves nothing that its successor bills twice or misses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings
from tests.schema.test_customers_api import SET_CARD
from tests.support import GraphQLClient

COUNT = 200
START = datetime(2027, 6, 1, tzinfo=UTC)
CREATE = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id } errors { code } }
}"""


def worker_env(settings: Settings, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BILLING_HOME=str(home),
        DATABASE_URL=settings.database_url or "",
        STRIPE_API_KEY=settings.stripe_api_key or "",
        STRIPE_API_BASE=settings.stripe_api_base or "",
        JWT_SECRET=settings.jwt_secret or "",
        WORKER_LEASE_SECONDS="2",
        IDEMPOTENCY_LEASE_SECONDS="2",
        WORKER_IDLE_SECONDS="1",
    )
    return env


def start_worker(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", *args], env=env, stdout=out, stderr=out
        )


async def due_subscriptions(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    customer_factory: Callable[..., Any],
    plan_factory: Callable[..., Any],
) -> list[str]:
    """COUNT trialing subscriptions whose trial has ended by the organization's clock."""
    await app_services.clock.advance(org, START)
    plan = await plan_factory(price={"amount": 1500, "currency": "EUR"})

    async def one() -> str:
        customer = await customer_factory()
        await admin.data(
            SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}}
        )
        made = await admin.data(
            CREATE,
            {
                "input": {
                    "customerId": customer["id"],
                    "planId": plan["id"],
                    "trialDays": 1,
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
        assert made["subscriptionCreate"]["errors"] == []
        subscription_id: str = made["subscriptionCreate"]["subscription"]["id"]
        return subscription_id

    ids: list[str] = []
    for _ in range(COUNT // 20):
        ids += await asyncio.gather(*(one() for _ in range(20)))
    await app_services.clock.advance(org, START + timedelta(days=2))
    return ids


async def billed(app_services: Any, org: str) -> dict[str, Any]:
    db = app_services.db
    per_subscription = await db.fetch_all(
        "SELECT subscription_id, count(*) AS n FROM invoices WHERE organization_id = :org "
        "GROUP BY subscription_id",
        {"org": org},
    )
    per_invoice = await db.fetch_all(
        "SELECT count(*) AS n FROM payments WHERE organization_id = :org AND status = 'succeeded' "
        "GROUP BY metadata->>'invoice_id'",
        {"org": org},
    )
    statuses = await db.fetch_all(
        "SELECT status, count(*) AS n FROM subscriptions WHERE organization_id = :org "
        "GROUP BY status",
        {"org": org},
    )
    return {
        "invoices": {r["subscription_id"]: r["n"] for r in per_subscription},
        "charges_per_invoice": sorted({r["n"] for r in per_invoice}),
        "charged_invoices": len(per_invoice),
        "statuses": {r["status"]: r["n"] for r in statuses},
    }


@pytest.mark.slow
async def test_two_workers_bill_every_period_exactly_once(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    customer_factory: Callable[..., Any],
    plan_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ids = await due_subscriptions(admin, app_services, org, customer_factory, plan_factory)
    env = worker_env(settings, tmp_path)
    started = time.monotonic()
    workers = [start_worker(env, "--once", log=tmp_path / f"w{i}.log") for i in range(2)]
    for worker in workers:
        assert await asyncio.to_thread(worker.wait, 300) == 0, (tmp_path / "w0.log").read_text()
    elapsed = time.monotonic() - started
    result = await billed(app_services, org)
    assert result["invoices"] == dict.fromkeys(ids, 1)
    assert result["charged_invoices"] == COUNT
    assert result["charges_per_invoice"] == [1]
    assert result["statuses"] == {"active": COUNT}
    print(f"\n2 workers renewed {COUNT} subscriptions in {elapsed:.1f}s ({COUNT / elapsed:.0f}/s)")


@pytest.mark.slow
async def test_a_killed_worker_is_finished_by_the_next_one_exactly_once(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    customer_factory: Callable[..., Any],
    plan_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    ids = await due_subscriptions(admin, app_services, org, customer_factory, plan_factory)
    env = worker_env(settings, tmp_path)
    first = start_worker(env, log=tmp_path / "first.log")
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline:
        done = len((await billed(app_services, org))["invoices"])
        if done >= COUNT // 4:
            break
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    await asyncio.to_thread(first.wait, 30)
    partial = await billed(app_services, org)
    assert 0 < len(partial["invoices"]) < COUNT, "the kill must land mid-batch"

    await asyncio.sleep(2.5)  # the killed worker's leases run out
    second = start_worker(env, "--once", log=tmp_path / "second.log")
    assert await asyncio.to_thread(second.wait, 300) == 0, (tmp_path / "second.log").read_text()
    result = await billed(app_services, org)
    assert result["invoices"] == dict.fromkeys(ids, 1)
    assert result["charged_invoices"] == COUNT
    assert result["charges_per_invoice"] == [1]
    assert result["statuses"] == {"active": COUNT}


CHANGE = """mutation($input: SubscriptionChangePlanInput!) {
  subscriptionChangePlan(input: $input) { subscription { id } errors { code } }
}"""
CANCEL = """mutation($input: SubscriptionCancelInput!) {
  subscriptionCancel(input: $input) { subscription { id } errors { code } }
}"""
ENDING = 100


@pytest.mark.slow
async def test_two_workers_bill_each_final_invoice_exactly_once(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    customer_factory: Callable[..., Any],
    plan_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """ENDING subscriptions upgraded on day 10 of June with CREATE_PRORATIONS (10.00 -> 29.99:
    -6.67 and 19.99 pending) and canceled at period end: two worker processes end them on
    July 1, each with one final invoice of 13.32 charged once, and no renewal."""
    await app_services.clock.advance(org, START)
    basic = await plan_factory(price={"amount": 1000, "currency": "EUR"})
    pro = await plan_factory(price={"amount": 2999, "currency": "EUR"})

    async def subscribed() -> str:
        customer = await customer_factory()
        await admin.data(
            SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}}
        )
        made = await admin.data(
            CREATE,
            {
                "input": {
                    "customerId": customer["id"],
                    "planId": basic["id"],
                    "trialDays": 0,
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
        assert made["subscriptionCreate"]["errors"] == []
        subscription_id: str = made["subscriptionCreate"]["subscription"]["id"]
        return subscription_id

    async def upgraded_then_canceled(subscription_id: str) -> None:
        moved = await admin.data(
            CHANGE,
            {
                "input": {
                    "id": subscription_id,
                    "planId": pro["id"],
                    "prorationBehavior": "CREATE_PRORATIONS",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
        assert moved["subscriptionChangePlan"]["errors"] == []
        done = await admin.data(CANCEL, {"input": {"id": subscription_id, "atPeriodEnd": True}})
        assert done["subscriptionCancel"]["errors"] == []

    ids: list[str] = []
    for _ in range(ENDING // 20):
        ids += await asyncio.gather(*(subscribed() for _ in range(20)))
    await app_services.clock.advance(org, START + timedelta(days=10))
    for start in range(0, ENDING, 20):
        await asyncio.gather(*(upgraded_then_canceled(i) for i in ids[start : start + 20]))
    await app_services.clock.advance(org, datetime(2027, 7, 1, 1, tzinfo=UTC))

    env = worker_env(settings, tmp_path)
    workers = [start_worker(env, "--once", log=tmp_path / f"w{i}.log") for i in range(2)]
    for worker in workers:
        assert await asyncio.to_thread(worker.wait, 300) == 0, (tmp_path / "w0.log").read_text()
    result = await billed(app_services, org)
    assert result["invoices"] == dict.fromkeys(ids, 2)
    assert result["charged_invoices"] == 2 * ENDING
    assert result["charges_per_invoice"] == [1]
    assert result["statuses"] == {"canceled": ENDING}
    finals = await app_services.db.fetch_all(
        "SELECT total, status, count(*) AS n FROM invoices WHERE organization_id = :org "
        "AND period_start > :start GROUP BY total, status",
        {"org": org, "start": START},
    )
    assert [(r["total"], r["status"], r["n"]) for r in finals] == [(1332, "paid", ENDING)]
