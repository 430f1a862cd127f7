"""Latency of create + confirm of a payment, next to the same two Stripe calls made directly.

Runs the app in-process against DATABASE_URL (or an embedded PostgreSQL it starts) and a
localstripe emulator it starts, and times, in one run:
  - baseline: `PaymentIntent.create` + `confirm` straight through the Stripe SDK (what the
    emulator and the SDK cost on their own),
  - ours: `paymentIntentCreate` + `paymentIntentConfirm` through GraphQL (idempotency keys,
    operation leases, the PaymentIntent calls and the recording transactions).
Prints p50, p99 and mean of each, and the ratio of ours to the baseline.

    .venv/bin/python bench/payments_latency.py [iterations]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from app.core.auth import Role, mint_token
from app.core.settings import Settings
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from app.stripe.gateway import StripeGateway
from app.web.app import create_app
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

CREATE_CUSTOMER = """mutation($input: CustomerCreateInput!) {
  customerCreate(input: $input) { customer { id stripeCustomerId } errors { code } } }"""
CREATE = """mutation($input: PaymentIntentCreateInput!) {
  paymentIntentCreate(input: $input) { payment { id status } errors { code } } }"""
CONFIRM = """mutation($input: PaymentIntentConfirmInput!) {
  paymentIntentConfirm(input: $input) { payment { id status } errors { code } } }"""
WARMUP = 10


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def baseline(gateway: StripeGateway, stripe_customer: str, iterations: int) -> list[float]:
    samples = []
    for n in range(WARMUP + iterations):
        started = time.perf_counter()
        intent = await gateway.create_payment_intent(
            idempotency_key=f"bench-{uuid.uuid4()}",
            amount=1999,
            currency="USD",
            customer=stripe_customer,
            payment_method="pm_card_visa",
            manual_capture=False,
            metadata={},
        )
        confirmed = await gateway.confirm_payment_intent(
            intent.id, idempotency_key=f"bench-{uuid.uuid4()}"
        )
        if confirmed.status != "succeeded":
            raise SystemExit(f"baseline: {confirmed.status}")
        if n >= WARMUP:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def ours(http: httpx.AsyncClient, customer_id: str, iterations: int) -> list[float]:
    samples = []
    for n in range(WARMUP + iterations):
        started = time.perf_counter()
        created = await http.post(
            "/graphql",
            json={
                "query": CREATE,
                "variables": {
                    "input": {
                        "customerId": customer_id,
                        "amount": {"amount": 1999, "currency": "USD"},
                        "paymentMethodId": "pm_card_visa",
                        "idempotencyKey": str(uuid.uuid4()),
                    }
                },
            },
        )
        payment = created.json()["data"]["paymentIntentCreate"]["payment"]
        confirmed = await http.post(
            "/graphql",
            json={
                "query": CONFIRM,
                "variables": {
                    "input": {"paymentId": payment["id"], "idempotencyKey": str(uuid.uuid4())}
                },
            },
        )
        status = confirmed.json()["data"]["paymentIntentConfirm"]["payment"]["status"]
        if status != "SUCCEEDED":
            raise SystemExit(f"ours: {confirmed.text[:300]}")
        if n >= WARMUP:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(iterations: int) -> None:
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
            stripe_max_network_retries=0,
            jwt_secret="b" * 48,
            rate_limit_restore_rate=0,
            rate_limit_anonymous_restore_rate=0,
        )
        org = f"bench{uuid.uuid4().hex[:8]}"
        bearer = mint_token(settings, org=org, role=Role.ADMIN, subject="bench")
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                headers={"authorization": f"Bearer {bearer}"},
            ) as http:
                made = await http.post(
                    "/graphql",
                    json={
                        "query": CREATE_CUSTOMER,
                        "variables": {"input": {"email": "bench@example.com"}},
                    },
                )
                customer = made.json()["data"]["customerCreate"]["customer"]
                gateway = StripeGateway(
                    EMULATOR_API_KEY, api_base=emulator.base_url, max_network_retries=0
                )
                try:
                    timings = {
                        "Stripe SDK only (baseline)": await baseline(
                            gateway, customer["stripeCustomerId"], iterations
                        ),
                        "GraphQL create + confirm": await ours(http, customer["id"], iterations),
                    }
                finally:
                    await gateway.close()
        base = statistics.median(timings["Stripe SDK only (baseline)"])
        print(f"create + confirm, {iterations} iterations (after {WARMUP} warm-up)")
        print(f"{'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'x baseline':>11}")
        for name, samples in timings.items():
            p50 = statistics.median(samples)
            print(
                f"{name:<28} {p50:>8.2f} {percentile(samples, 0.99):>8.2f} "
                f"{statistics.fmean(samples):>8.2f} {p50 / base:>11.2f}"
            )
    finally:
        emulator.stop()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
