"""Reconciliation with Stripe: how fast `billing reconcile` reads and repairs payments whose
webhook was lost, next to the bare Stripe reads it cannot do without.

In one run, on a fresh database of DATABASE_URL's server (or of an embedded PostgreSQL it
starts) and a localstripe emulator it starts: PAYMENTS payments are created through the
service (PaymentIntents at the emulator, pending here), half of them confirmed at the emulator
behind our back (a lost webhook each). Then, timed:
  - reconcile: `Services.reconcile` (every open payment read from Stripe, the confirmed ones
    recorded with their ledger entries, statistics and outgoing events, each repair logged),
  - baseline: the same number of bare `PaymentIntent.retrieve` calls through our gateway.
Prints payments checked per second for both, the ratio, and the repairs found.

    .venv/bin/python bench/reconcile.py [--smoke] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.core.auth import Principal, Role
from app.core.settings import Settings
from app.customers import CustomerDraft
from app.payments import PaymentDraft
from app.services import Services
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def measure(url: str, emulator: StripeEmulator, payments: int) -> dict[str, Any]:
    await apply_migrations(url)
    settings = Settings(
        env="test",
        home=Path(tempfile.mkdtemp(prefix="bench-reconcile-")),
        database_url=url,
        stripe_api_key=EMULATOR_API_KEY,
        stripe_api_base=emulator.base_url,
        stripe_max_network_retries=0,
        jwt_secret="b" * 48,
    )
    org = f"bench{uuid.uuid4().hex[:8]}"
    admin = Principal(subject="bench", org=org, role=Role.ADMIN)
    async with Services.open(settings) as services:
        customer = await services.customers.create(org, CustomerDraft(email="b@example.com"))
        intents: list[str] = []
        for n in range(payments):
            made = await services.payments.create(
                org,
                admin,
                PaymentDraft(
                    customer_id=customer.id,
                    amount=1999,
                    currency="USD",
                    payment_method_id="pm_card_visa",
                ),
                idempotency_key=f"bench-{uuid.uuid4()}",
            )
            intents.append(made.stripe_payment_intent_id)
            if n % 2 == 0:  # completed at Stripe, its webhook lost
                await services.stripe.confirm_payment_intent(
                    made.stripe_payment_intent_id, idempotency_key=f"lost-{uuid.uuid4()}"
                )
        started = time.perf_counter()
        report = await services.reconcile(org=org, settle=timedelta(0))
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for intent in intents:
            await services.stripe.retrieve_payment_intent(intent)
        bare = time.perf_counter() - started
    if report.checked != payments or len(report.repairs) != (payments + 1) // 2:
        raise SystemExit(f"reconcile: {report}")
    return {
        "payments": payments,
        "repaired": len(report.repairs),
        "reconcile_seconds": ours,
        "reconcile_per_second": payments / ours,
        "bare_reads_per_second": payments / bare,
        "ratio": bare / ours,
    }


async def run(server: str, smoke: bool) -> dict[str, Any]:
    name = f"bench_reconcile_{uuid.uuid4().hex[:10]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    emulator = StripeEmulator()
    emulator.start()
    try:
        url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
        return await measure(url, emulator, 20 if smoke else 400)
    finally:
        emulator.stop()
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if url:
        result = asyncio.run(run(url, args.smoke))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-reconcile-pg-") as folder:
            server = EmbeddedPostgres(Path(folder) / "data")
            try:
                result = asyncio.run(run(server.start(), args.smoke))
            finally:
                server.stop()
    print(f"reconciliation of {result['payments']} open payments, {result['repaired']} lost")
    print(f"{'path':<40}{'payments/s':>12}")
    print(f"{'reconcile (read, record, log, announce)':<40}{result['reconcile_per_second']:12.1f}")
    print(f"{'bare PaymentIntent reads (baseline)':<40}{result['bare_reads_per_second']:12.1f}")
    print(f"ratio reconcile / baseline: {result['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
