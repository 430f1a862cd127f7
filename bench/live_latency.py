"""Delay from a committed payment to the `Live` subscriber's message, with 1 and 500 open
subscriptions, on loopback.

Starts PostgreSQL (DATABASE_URL's server, else an embedded one), the Stripe emulator and one
real `billing serve` process, then for each scenario opens the subscriptions over WebSockets
(10 per connection, the default cap), confirms payments through the API one at a time and
measures, for every subscriber, the time from the commit to the first message showing it. The
commit time is when the bench's own LISTEN connection receives the payment's NOTIFY (sent inside
the committing transaction, so delivered right after COMMIT). Scenarios:

  - revenue, 1 subscription (the baseline): `Live.revenue` with the dashboard's selection;
  - revenue, 500 subscriptions of one organization: one shared snapshot, 500 sends;
  - paymentEvents, 500 subscriptions: each loads the payment afresh;
  - revenue, 2,000 subscriptions (200 connections; LIVE_LARGE=0 leaves it out).

Bounded: PAYMENTS payments per scenario (default 20), each wait at most 60 s.

    .venv/bin/python bench/live_latency.py [payments]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets

from app.core.auth import Role, mint_token
from app.core.pubsub import CHANNEL
from app.core.settings import Settings
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator, free_port
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

PER_CONNECTION = 10
WAIT = 60.0
JWT_SECRET = "b" * 48

REVENUE = """subscription {
  revenue { at currencies { currency today { amount decimal } thisMonth { amount decimal }
    netTotal { amount decimal } mrr { amount decimal } paymentsToday
    days { day net { amount decimal } } } }
}"""
PAYMENT_EVENTS = "subscription { paymentEvents { kind status occurredAt payment { id status } } }"
CREATE_CUSTOMER = """mutation($input: CustomerCreateInput!) {
  customerCreate(input: $input) { customer { id } errors { code } } }"""
CREATE = """mutation($input: PaymentIntentCreateInput!) {
  paymentIntentCreate(input: $input) { payment { id status } errors { code } } }"""
CONFIRM = """mutation($input: PaymentIntentConfirmInput!) {
  paymentIntentConfirm(input: $input) { payment { id status } errors { code } } }"""


# Percentiles by rank, as the other benchmarks print them.
def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


class Subscriber:
    """One subscription; keeps the arrival time and a one-string summary of every message (not
    the messages: holding thousands of them would make the bench's own GC pauses part of the
    figures)."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, str]] = []
        self.changed = asyncio.Event()

    def arrived(self, data: dict[str, Any]) -> None:
        self.messages.append((time.perf_counter(), summary(data)))
        self.changed.set()

    def first_after(self, since: float, expected: str) -> float | None:
        for at, seen in self.messages:
            if at >= since and seen == expected:
                return at
        return None


def summary(data: dict[str, Any]) -> str:
    """USD's net total of a snapshot, or "payment id status" of a payment event."""
    if "revenue" in data:
        usd = [c for c in data["revenue"]["currencies"] if c["currency"] == "USD"]
        return usd[0]["netTotal"]["amount"] if usd else "0"
    change = data["paymentEvents"]
    return f"{change['payment']['id']} {change['status']}"


@contextlib.asynccontextmanager
async def connection(
    url: str, bearer: str, subs: list[Subscriber], query: str
) -> AsyncIterator[None]:
    async with websockets.connect(
        url,
        subprotocols=["graphql-transport-ws"],
        max_size=None,
    ) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}}
        await ws.send(json.dumps(init))
        if json.loads(await ws.recv())["type"] != "connection_ack":
            raise SystemExit("connection refused")
        by_id = {str(n): sub for n, sub in enumerate(subs)}
        for op in by_id:
            await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query}}))

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "next":
                    if "errors" in message["payload"]:
                        raise SystemExit(f"subscription error: {message['payload']['errors']}")
                    by_id[message["id"]].arrived(message["payload"]["data"])
                elif message["type"] in ("error", "complete"):
                    raise SystemExit(f"subscription ended: {message}")
                elif message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))

        reader = asyncio.create_task(read())
        try:
            yield
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


class Commits:
    """The bench's own LISTEN connection: when each payment's status change was committed."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.arrived = asyncio.Event()

    def __call__(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = json.loads(payload)
        if event["kind"] == "payment":
            self.seen[(event["id"], event["data"]["status"])] = time.perf_counter()
            self.arrived.set()

    async def wait(self, payment_id: str, status: str) -> float:
        deadline = time.monotonic() + WAIT
        while (payment_id, status) not in self.seen:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))
        return self.seen[(payment_id, status)]


async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body: dict[str, Any] = response.json()
    if "errors" in body:
        raise SystemExit(f"GraphQL errors: {body['errors']}")
    return body["data"]


async def quiet(subs: list[Subscriber], seconds: float = 0.3) -> None:
    """Wait until no subscriber has received anything for ``seconds`` (at most WAIT)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for sub in subs:
            sub.changed.clear()
        await asyncio.sleep(seconds)
        if not any(sub.changed.is_set() for sub in subs):
            return


async def scenario(
    server: str, settings: Settings, commits: Commits, query: str, count: int, payments: int
) -> list[float]:
    org = f"bench{uuid.uuid4().hex[:8]}"
    bearer = mint_token(settings, org=org, role=Role.ADMIN, subject="bench", ttl_seconds=3600)
    headers = {"authorization": f"Bearer {bearer}"}
    subs = [Subscriber() for _ in range(count)]
    ws_url = "ws" + server.removeprefix("http") + "/graphql"
    groups = [subs[n : n + PER_CONNECTION] for n in range(0, count, PER_CONNECTION)]
    samples: list[float] = []
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=WAIT) as http:
        made = await gql(http, CREATE_CUSTOMER, {"input": {"email": "bench@example.com"}})
        customer = made["customerCreate"]["customer"]["id"]
        async with contextlib.AsyncExitStack() as stack:
            for group in groups:
                await stack.enter_async_context(connection(ws_url, bearer, group, query))
            if query is REVENUE:
                await eventually(lambda: all(s.messages for s in subs), "the first snapshots")
            else:
                await asyncio.sleep(1.0)  # the subscriptions have no first message
            for n in range(payments):
                payment_input = {
                    "customerId": customer,
                    "amount": {"amount": 1000, "currency": "USD"},
                    "paymentMethodId": "pm_card_visa",
                    "idempotencyKey": str(uuid.uuid4()),
                }
                created = await gql(http, CREATE, {"input": payment_input})
                payment = created["paymentIntentCreate"]["payment"]["id"]
                await quiet(subs)
                confirm = {"paymentId": payment, "idempotencyKey": str(uuid.uuid4())}
                await gql(http, CONFIRM, {"input": confirm})
                committed = await commits.wait(payment, "succeeded")
                expected = str(1000 * (n + 1)) if query is REVENUE else f"{payment} SUCCEEDED"
                samples += await delays(subs, committed, expected)
    return samples


async def delays(subs: list[Subscriber], committed: float, expected: str) -> list[float]:
    """Milliseconds from the commit to each subscriber's first message that shows it."""
    arrivals: list[float | None] = []

    def everyone() -> bool:
        arrivals[:] = [s.first_after(committed, expected) for s in subs]
        return all(a is not None for a in arrivals)

    await eventually(everyone, "the payment at every subscriber")
    return [(a - committed) * 1000 for a in arrivals if a is not None]


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def serve(settings: Settings, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BILLING_ENV": "test",
        "BILLING_HOME": str(home),
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_API_KEY": EMULATOR_API_KEY,
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_RESTORE_RATE": "0",
        # 500 subscribers on 50 connections of one dashboard token: past the per-token cap.
        "WS_MAX_CONNECTIONS_PER_TOKEN": "1000",
        "DB_POOL_MAX": "20",
        "LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        time.sleep(0.1)
    process.kill()
    raise SystemExit("billing serve did not start")


async def main(payments: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    postgres = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(folder / "pg")
        url = postgres.start()
    emulator = StripeEmulator()
    emulator.start()
    process = None
    try:
        await apply_migrations(url)
        settings = Settings(
            env="test",
            home=folder,
            database_url=url,
            stripe_api_key=EMULATOR_API_KEY,
            stripe_api_base=emulator.base_url,
            jwt_secret=JWT_SECRET,
        )
        process, server = serve(settings, folder)
        listener = await asyncpg.connect(url)
        commits = Commits()
        await listener.add_listener(CHANNEL, commits)
        try:
            rows = [
                ("revenue, 1 subscription (baseline)", REVENUE, 1),
                ("revenue, 500 subscriptions", REVENUE, 500),
                ("paymentEvents, 500 subscriptions", PAYMENT_EVENTS, 500),
            ]
            if os.environ.get("LIVE_LARGE", "1") != "0":
                rows.append(("revenue, 2,000 subscriptions", REVENUE, 2000))
            results = {}
            for name, query, count in rows:
                results[name] = (
                    count,
                    await scenario(server, settings, commits, query, count, payments),
                )
        finally:
            await listener.close()
        base = percentile(results[rows[0][0]][1], 0.5)
        print(f"commit -> subscriber message, {payments} payments per scenario, loopback")
        print(
            f"{'scenario':<36} {'subs':>5} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'p50 x base':>11}"
        )
        for name, (count, samples) in results.items():
            p50 = percentile(samples, 0.5)
            print(
                f"{name:<36} {count:>5} {len(samples):>8} {p50:>8.1f} "
                f"{percentile(samples, 0.99):>8.1f} {max(samples):>8.1f} {p50 / base:>11.2f}"
            )
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        emulator.stop()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
