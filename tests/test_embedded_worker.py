"""`billing serve --with-worker` renews subscriptions with nobody calling the API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.core.settings import Settings
from app.stripe.emulator import free_port
from tests.schema.test_customers_api import SET_CARD
from tests.support import GraphQLClient

SUBSCRIBE = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id } errors { code } }
}"""
GET = "query($id: ID!) { subscription(id: $id) { status latestInvoiceId } }"


def spawn(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = ["serve", "--no-migrate", "--with-worker", "--port", str(port)]
    with log_path.open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", *command], env=env, stdout=log, stderr=log
        )


async def test_the_embedded_worker_renews_a_due_subscription(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    start = datetime(2027, 9, 1, tzinfo=UTC)
    await app_services.clock.advance(org, start)
    plan = await plan_factory()
    customer = await customer_factory()
    await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}}
    )
    made = await admin.data(
        SUBSCRIBE,
        {
            "input": {
                "customerId": customer["id"],
                "planId": plan["id"],
                "trialDays": 1,
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    subscription_id = made["subscriptionCreate"]["subscription"]["id"]
    # Move the clock without running anything: only the server's own worker can renew it.
    await app_services.clock.advance(org, start + timedelta(days=2))

    port = free_port()
    env = dict(os.environ)
    env.update(
        BILLING_HOME=str(tmp_path),
        DATABASE_URL=settings.database_url or "",
        STRIPE_API_KEY=settings.stripe_api_key or "",
        STRIPE_API_BASE=settings.stripe_api_base or "",
        JWT_SECRET=settings.jwt_secret or "",
        WORKER_IDLE_SECONDS="1",
    )
    server = spawn(port, env, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = (await admin.data(GET, {"id": subscription_id}))["subscription"]
            if status["status"] == "ACTIVE":
                break
            await asyncio.sleep(0.2)
        assert status is not None
        assert status["status"] == "ACTIVE", (tmp_path / "serve.log").read_text()
        assert status["latestInvoiceId"].startswith("inv_")
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)
