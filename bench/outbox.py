"""Outgoing webhooks: what the outbox adds to a payment's transaction, and how many events a
worker delivers per second to a receiver on loopback.

In one run, on a fresh database of DATABASE_URL's server (or of an embedded PostgreSQL it
starts), dropped after:
  1. Added cost per payment transaction, alternating:
       - without: the transaction that records a payment's change (an UPDATE … RETURNING of the
         payment row, read into the domain object),
       - with: the same plus the outbox write (the object rendered as the API shows it, the
         event and a delivery per subscribed endpoint in one INSERT; 2 endpoints subscribed).
     p50 / p99 in ms and what the outbox adds at the median.
  2. Throughput: EVENTS events written, then delivered by one `WebhookSender` (claims of 16,
     8 requests at a time, the worker's settings) to a receiver on 127.0.0.1 that answers 200,
     every delivery signed and recorded with its attempt; next to the baseline of the same
     number of bare POSTs of the same bodies at the same concurrency (no database).

    .venv/bin/python bench/outbox.py [--smoke] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from app.core.ids import new_id
from app.outgoing_webhooks import DeliveryPolicy, WebhookSender, api_view, emit
from app.payments import Payment
from db.connection import Database
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

CONCURRENCY = 8


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


class Sink:
    """A receiver on loopback that answers 200 to everything (HTTP/1.1 keep-alive)."""

    def __init__(self) -> None:
        self.received = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.received += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _setup(db: Database, org: str, url: str, endpoints: int) -> str:
    customer = new_id("cus")
    await db.execute(
        "INSERT INTO customers (organization_id, id, email, name) "
        "VALUES (:org, :id, 'bench@example.com', 'Bench')",
        {"org": org, "id": customer},
    )
    for _ in range(endpoints):
        await db.execute(
            "INSERT INTO webhook_endpoints (organization_id, id, url, event_types, secret) "
            "VALUES (:org, :id, :url, ARRAY['payment.succeeded'], :secret)",
            {"org": org, "id": new_id("we"), "url": url, "secret": f"whsec_{uuid.uuid4().hex}"},
        )
    return customer


async def transaction_cost(db: Database, url: str, iterations: int, warmup: int) -> dict[str, Any]:
    org = f"bench{uuid.uuid4().hex[:8]}"
    customer = await _setup(db, org, url, endpoints=2)
    payment_id = new_id("pay")
    await db.execute(
        "INSERT INTO payments (organization_id, id, customer_id, amount, currency, status, "
        "capture_method, description, metadata, stripe_payment_intent_id, amount_capturable, "
        "amount_captured, amount_refunded) VALUES (:org, :id, :customer, 1999, 'USD', "
        "'requires_confirmation', 'automatic', 'bench', '{}', :pi, 0, 0, 0)",
        {"org": org, "id": payment_id, "customer": customer, "pi": f"pi_{uuid.uuid4().hex}"},
    )
    change = (
        "UPDATE payments SET description = :d, updated_at = now() "
        "WHERE organization_id = :org AND id = :id RETURNING *"
    )

    async def without() -> None:
        async with db.transaction():
            row = await db.fetch_one(change, {"d": "x", "org": org, "id": payment_id})
            assert row is not None
            Payment.from_row(row)

    async def with_outbox() -> None:
        async with db.transaction():
            row = await db.fetch_one(change, {"d": "y", "org": org, "id": payment_id})
            assert row is not None
            view = api_view(Payment.from_row(row), typename="Payment")
            await emit(db, org, "payment.succeeded", view)

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "without outbox": without,
        "with outbox": with_outbox,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for n in range(warmup + iterations):
        for name, variant in variants.items():
            started = time.perf_counter()
            await variant()
            if n >= warmup:
                samples[name].append((time.perf_counter() - started) * 1000)
    # the deliveries this made are not for the throughput part
    await db.execute("DELETE FROM webhook_deliveries WHERE organization_id = :org", {"org": org})
    base = statistics.median(samples["without outbox"])
    return {
        name: {
            "p50_ms": statistics.median(values),
            "p99_ms": percentile(values, 0.99),
            "added_p50_ms": statistics.median(values) - base,
        }
        for name, values in samples.items()
    }


async def throughput(db: Database, sink: Sink, events: int) -> dict[str, Any]:
    org = f"bench{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{sink.port}/hooks"
    await _setup(db, org, url, endpoints=1)
    bodies: list[bytes] = []
    for n in range(events):
        data = {"__typename": "Payment", "id": new_id("pay"), "status": "SUCCEEDED", "n": n}
        async with db.transaction():
            await emit(db, org, "payment.succeeded", data)
    for row in await db.fetch_all(
        "SELECT payload FROM webhook_events WHERE organization_id = :org", {"org": org}
    ):
        bodies.append(row["payload"].encode())

    sender = WebhookSender(db, production=False, policy=DeliveryPolicy(), concurrency=CONCURRENCY)
    before = sink.received
    started = time.perf_counter()
    try:
        while await sender.deliver_due(org=org):
            pass
    finally:
        await sender.close()
    ours = time.perf_counter() - started
    delivered = sink.received - before
    pending = await db.fetch_val(
        "SELECT count(*) FROM webhook_deliveries WHERE organization_id = :org "
        "AND status <> 'succeeded'",
        {"org": org},
    )
    if delivered < events or pending:
        raise SystemExit(f"throughput: {delivered} of {events} delivered, {pending} pending")

    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(trust_env=False) as http:

        async def post(body: bytes) -> None:
            async with gate:
                answer = await http.post(url, content=body)
                answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post(body) for body in bodies))
        bare = time.perf_counter() - started
    return {
        "events": events,
        "outbox_events_per_second": events / ours,
        "bare_posts_per_second": events / bare,
        "ratio": (events / ours) / (events / bare),
    }


def _with_database(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def run_fresh(server: str, smoke: bool) -> dict[str, Any]:
    """On a database of its own, made on ``server`` and dropped after."""
    name = f"bench_outbox_{uuid.uuid4().hex[:10]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        return await run(_with_database(server, name), smoke)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(url: str, smoke: bool) -> dict[str, Any]:
    await apply_migrations(url)
    db = Database(url, min_size=2, max_size=CONCURRENCY + 2)
    await db.connect()
    sink = Sink()
    await sink.start()
    try:
        iterations, warmup, events = (30, 5, 100) if smoke else (500, 50, 3000)
        cost = await transaction_cost(db, f"http://127.0.0.1:{sink.port}/hooks", iterations, warmup)
        rate = await throughput(db, sink, events)
    finally:
        await sink.stop()
        await db.disconnect()
    return {"transaction": cost, "throughput": rate, "at": datetime.now(UTC).isoformat()}


def report(result: dict[str, Any]) -> None:
    print("payment transaction (2 endpoints subscribed)")
    print(f"{'transaction':<16}{'p50 ms':>9}{'p99 ms':>9}{'added ms':>10}")
    for name, row in result["transaction"].items():
        added = "" if name == "without outbox" else f"{row['added_p50_ms']:10.3f}"
        print(f"{name:<16}{row['p50_ms']:9.3f}{row['p99_ms']:9.3f}{added}")
    rate = result["throughput"]
    print(f"\ndelivery to a loopback receiver, {rate['events']} events, {CONCURRENCY} at a time")
    print(f"{'path':<32}{'events/s':>10}")
    print(f"{'outbox (claim, sign, POST, log)':<32}{rate['outbox_events_per_second']:10.0f}")
    print(f"{'bare POSTs (baseline)':<32}{rate['bare_posts_per_second']:10.0f}")
    print(f"ratio outbox / baseline: {rate['ratio']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if url:
        result = asyncio.run(run_fresh(url, args.smoke))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-outbox-") as folder:
            server = EmbeddedPostgres(Path(folder) / "data")
            try:
                result = asyncio.run(run_fresh(server.start(), args.smoke))
            finally:
                server.stop()
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
