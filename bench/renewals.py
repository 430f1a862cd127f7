"""Renewal throughput: subscriptions renewed per second by one in-process billing worker, next
to the Stripe emulator's own bare charge rate (PaymentIntent create + confirm through the SDK)
measured in the same run.

    .venv/bin/python bench/renewals.py [subscriptions]

Uses DATABASE_URL when set, otherwise an embedded PostgreSQL it starts (and stops).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import stripe

from app.core.auth import Role, mint_token
from app.core.settings import Settings
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from app.web.app import create_app
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

CUSTOMER = "mutation($i: CustomerCreateInput!) { customerCreate(input: $i) { customer { id } } }"
CARD = (
    "mutation($i: CustomerSetDefaultPaymentMethodInput!) "
    "{ customerSetDefaultPaymentMethod(input: $i) { errors { code } } }"
)
PLAN = "mutation($i: PlanCreateInput!) { planCreate(input: $i) { plan { id } } }"
SUBSCRIBE = (
    "mutation($i: SubscriptionCreateInput!) "
    "{ subscriptionCreate(input: $i) { subscription { id } errors { code } } }"
)


async def bare_charges(base_url: str, count: int) -> float:
    client = stripe.StripeClient(
        EMULATOR_API_KEY, base_addresses={"api": base_url}, http_client=stripe.HTTPXClient()
    )
    started = time.perf_counter()
    for _ in range(count):
        intent = await client.v1.payment_intents.create_async(
            params={"amount": 1500, "currency": "eur", "payment_method": "pm_card_visa"}
        )
        await client.v1.payment_intents.confirm_async(intent.id)
    return count / (time.perf_counter() - started)


async def main(count: int) -> None:
    folder = tempfile.mkdtemp(prefix="billing-bench-")
    postgres = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(Path(folder) / "pg")
        url = postgres.start()
    emulator = StripeEmulator()
    emulator.start()
    try:
        await apply_migrations(url)
        settings = Settings(
            env="test",
            home=Path(folder),
            database_url=url,
            stripe_api_key=EMULATOR_API_KEY,
            stripe_api_base=emulator.base_url,
            jwt_secret="r" * 48,
            rate_limit_restore_rate=0,
            rate_limit_anonymous_restore_rate=0,
        )
        org = f"bench{uuid.uuid4().hex[:8]}"
        app = create_app(settings)
        bearer = mint_token(settings, org=org, role=Role.ADMIN, subject="bench")
        async with app.router.lifespan_context(app):
            services = app.state.services
            start = datetime(2027, 6, 1, tzinfo=UTC)
            await services.clock.advance(org, start)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                headers={"authorization": f"Bearer {bearer}"},
            ) as http:

                async def gql(query: str, variables: dict[str, object]) -> dict[str, object]:
                    response = await http.post(
                        "/graphql", json={"query": query, "variables": variables}
                    )
                    body: dict[str, object] = response.json()
                    if "errors" in body:
                        raise SystemExit(str(body["errors"]))
                    return body

                plan = await gql(
                    PLAN,
                    {
                        "i": {
                            "code": "bench",
                            "name": "Bench",
                            "tier": "PRO",
                            "price": {"amount": 1500, "currency": "EUR"},
                            "interval": "MONTH",
                        }
                    },
                )
                plan_id = plan["data"]["planCreate"]["plan"]["id"]  # type: ignore[index]
                for n in range(count):
                    made = await gql(CUSTOMER, {"i": {"email": f"b{n}@example.com"}})
                    customer_id = made["data"]["customerCreate"]["customer"]["id"]  # type: ignore[index]
                    await gql(
                        CARD, {"i": {"customerId": customer_id, "paymentMethodId": "pm_card_visa"}}
                    )
                    await gql(
                        SUBSCRIBE,
                        {
                            "i": {
                                "customerId": customer_id,
                                "planId": plan_id,
                                "trialDays": 1,
                                "idempotencyKey": str(uuid.uuid4()),
                            }
                        },
                    )
            await services.clock.advance(org, start + timedelta(days=2))
            started = time.perf_counter()
            renewed = 0
            profile = None
            if os.environ.get("BENCH_PROFILE"):
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
            while (handled := await services.subscriptions.process_due(org=org)) > 0:
                renewed += handled
            renewal_rate = renewed / (time.perf_counter() - started)
            if profile is not None:
                profile.disable()
                profile.dump_stats(os.environ["BENCH_PROFILE"])
        charge_rate = await bare_charges(emulator.base_url, count)
        print(f"{'measure':<40} {'per second':>10}")
        print(f"{'emulator bare charges (create+confirm)':<40} {charge_rate:>10.1f}")
        print(f"{f'renewals by one worker ({renewed} subs)':<40} {renewal_rate:>10.1f}")
        print(f"{'ratio renewals / bare charges':<40} {renewal_rate / charge_rate:>10.2f}")
    finally:
        emulator.stop()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
