"""Usage ingestion and usage queries at volume (issue 15), on a real server process.

1. Ingestion: N events (default 1,000,000) through GraphQL ``usageRecordBatch`` (1,000 per
   call) and N through ``POST /usage/events`` (10,000 per request), several requests in flight,
   next to a plain single-stream ``COPY`` (asyncpg ``copy_records_to_table``) of the same rows
   into a fresh table ``LIKE usage_events INCLUDING ALL`` (same indexes, no aggregates), in the
   same run: events per second and the ratios HTTP / COPY and GraphQL / COPY.
2. Queries at volume: M more events (default 10,000,000) loaded straight into ``usage_events``
   by set-based SQL (server-side ``INSERT … SELECT generate_series``, faster here than
   generating 10M rows in Python for ``COPY``), each chunk's ``usage_hourly`` /
   ``usage_hourly_uniques`` and ``usage_period_uniques`` filled by ``INSERT … SELECT … GROUP BY …
   ON CONFLICT`` exactly as
   ingestion's statement does; M / 100 events on each of 100 subscriptions over June. Then
   ``currentUsage`` p50/p99 over ≥ 500 sequential requests (a random busy subscription each)
   and ``usage(groupBy: DAY)`` over the month on the busiest one.

Every result is checked against SQL on ``usage_events`` (stored counts = events sent, hourly
aggregates = stored events, currentUsage quantities = the subscription's events); a wrong
result exits non-zero.

    .venv/bin/python bench/usage.py [--events N] [--stored N] [--json out.json]
    .venv/bin/python bench/usage.py --smoke --json out.json   # tiny sizes, what CI runs

DATABASE_URL picks the PostgreSQL server (the run makes its own database there and drops it);
without it an embedded PostgreSQL is started. The API runs as ``billing serve --no-worker``
(one uvicorn process unless ``--workers``) on loopback with the Stripe emulator; rate limits
are off. The organization's test clock stands at 2027-06-30 22:30 UTC; subscriptions are
created on 2027-06-01 (paid, monthly), so June is their current period.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
ORG = "benchusage"
JUN_1 = datetime(2027, 6, 1, tzinfo=UTC)
NOW = datetime(2027, 6, 30, 22, 30, tzinfo=UTC)  # the clock while events are sent and read
SPAN = (NOW - JUN_1).total_seconds() - 2  # events in [JUN_1 + 1 s, NOW - 1 s)
METRICS = ("calls", "tokens", "users")  # COUNT, SUM of properties.n, UNIQUE_COUNT of .user
USERS = 997  # distinct users a subscription's unique count sees

ADVANCE = "mutation($to: DateTime!) { testClockAdvance(input: {to: $to}) { errors { message } } }"
METRIC = (
    "mutation($i: BillableMetricCreateInput!) { billableMetricCreate(input: $i) "
    "{ billableMetric { id code } errors { message } } }"
)
PLAN = "mutation($i: PlanCreateInput!) { planCreate(input: $i) { plan { id } errors { message } } }"
CUSTOMER = (
    "mutation($i: CustomerCreateInput!) { customerCreate(input: $i) "
    "{ customer { id } errors { message } } }"
)
CARD = (
    "mutation($i: CustomerSetDefaultPaymentMethodInput!) "
    "{ customerSetDefaultPaymentMethod(input: $i) { errors { message } } }"
)
SUBSCRIBE = (
    "mutation($i: SubscriptionCreateInput!) { subscriptionCreate(input: $i) "
    "{ subscription { id status } errors { message } } }"
)
BATCH = (
    "mutation($i: UsageRecordBatchInput!) { usageRecordBatch(input: $i) "
    "{ acceptedCount duplicateCount refusedCount errors { message } } }"
)
CURRENT_USAGE = (
    "query($id: ID!) { subscription(id: $id) { currentUsage { metric { code } quantity "
    "amount { amount } tiers { units amount { amount } } } } }"
)
USAGE_DAYS = (
    "query($s: ID!, $m: String!, $from: DateTime!, $to: DateTime!) { usage(subscriptionId: $s, "
    "metric: $m, from: $from, to: $to, groupBy: DAY) { total buckets { start quantity events } } }"
)


# -- processes and databases (as bench/graphql_vs_baseline.py) ---------------------------------


def token() -> str:
    now = int(time.time())
    claims = {"sub": "bench", "org": ORG, "role": "admin", "iat": now, "exp": now + 86_400}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _fresh(server: str) -> Iterator[str]:
    name = f"bench_usage_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def database() -> Iterator[str]:
    """A fresh database: on DATABASE_URL's server, or on an embedded PostgreSQL."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield from _fresh(configured)
        return
    from db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="bench-usage-pg-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data")
        url = server.start()
        try:
            yield from _fresh(url)
        finally:
            server.stop()


@contextmanager
def process(
    args: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[tuple[str, int]]:
    with log.open("w") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[0]} did not start:\n{log.read_text()[-3000:]}")
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, child.pid
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


# -- the API client -----------------------------------------------------------------------------


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body = response.json()
        if "errors" in body:
            raise SystemExit(f"GraphQL errors: {body['errors']}")
        data: dict[str, Any] = body["data"]
        for payload in data.values():
            if isinstance(payload, dict) and payload.get("errors"):
                raise SystemExit(f"payload errors: {payload['errors']}")
        return data


async def seed(api: Api, subscriptions: int) -> tuple[list[str], dict[str, str]]:
    """Metrics, a metered plan and ``subscriptions`` paid monthly subscriptions from June 1;
    then the clock moves to NOW. Returns the subscription ids and the metric ids by code."""
    await api.gql(ADVANCE, {"to": JUN_1.isoformat()})
    metric_ids = {}
    for code, aggregation, prop in (
        ("calls", "COUNT", None),
        ("tokens", "SUM", "n"),
        ("users", "UNIQUE_COUNT", "user"),
    ):
        fields: dict[str, Any] = {"code": code, "name": code.title(), "aggregation": aggregation}
        if prop is not None:
            fields["property"] = prop
        made = await api.gql(METRIC, {"i": fields})
        metric_ids[code] = made["billableMetricCreate"]["billableMetric"]["id"]
    plan = await api.gql(
        PLAN,
        {
            "i": {
                "code": "metered",
                "name": "Metered",
                "tier": "PRO",
                "interval": "MONTH",
                "price": {"amount": 1000, "currency": "USD"},
                "meteredPrices": [
                    {
                        "metric": "calls",
                        "model": "GRADUATED",
                        "tiers": [
                            {"upTo": "1000", "unitPrice": "0"},
                            {"upTo": "10000", "unitPrice": "0.002"},
                            {"unitPrice": "0.001"},
                        ],
                    },
                    {"metric": "tokens", "model": "PER_UNIT", "unitPrice": "0.0001"},
                    {"metric": "users", "model": "PER_UNIT", "unitPrice": "3"},
                ],
            }
        },
    )
    plan_id = plan["planCreate"]["plan"]["id"]
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> str:
        async with gate:
            made = await api.gql(CUSTOMER, {"i": {"email": f"u{n}@example.com"}})
            customer = made["customerCreate"]["customer"]["id"]
            await api.gql(CARD, {"i": {"customerId": customer, "paymentMethodId": "pm_card_visa"}})
            sub = await api.gql(
                SUBSCRIBE,
                {"i": {"customerId": customer, "planId": plan_id, "idempotencyKey": f"s{n}"}},
            )
            created = sub["subscriptionCreate"]["subscription"]
            if created["status"] != "ACTIVE":
                raise SystemExit(f"subscription not active: {created}")
            sub_id: str = created["id"]
            return sub_id

    subs = list(await asyncio.gather(*(one(n) for n in range(subscriptions))))
    await api.gql(ADVANCE, {"to": NOW.isoformat()})
    return subs, metric_ids


# -- events -------------------------------------------------------------------------------------


def make_events(n: int, subs: list[str], prefix: str) -> list[dict[str, Any]]:
    """n events over June, round robin over subscriptions and metrics, unique keys."""
    step = SPAN / max(n, 1)
    events = []
    for i in range(n):
        metric = METRICS[i % 3]
        at = JUN_1 + timedelta(seconds=1 + int(i * step))
        event: dict[str, Any] = {
            "idempotencyKey": f"{prefix}{i}",
            "metric": metric,
            "subscriptionId": subs[(i // 3) % len(subs)],
            "timestamp": at.isoformat().replace("+00:00", "Z"),
        }
        if metric == "tokens":
            event["properties"] = {"n": 1 + i % 5}
        elif metric == "users":
            event["properties"] = {"user": f"u{i % USERS}"}
        events.append(event)
    return events


async def pump(
    bodies: list[bytes], send: Callable[[bytes], Awaitable[int]], concurrency: int
) -> tuple[float, int]:
    """Send every body, ``concurrency`` in flight; (seconds, events accepted)."""
    queue = list(reversed(bodies))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while queue:
            got = await send(queue.pop())
            accepted += got

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, accepted


async def ingest_graphql(
    http: httpx.AsyncClient, events: list[dict[str, Any]], concurrency: int
) -> tuple[float, int]:
    bodies = [
        json.dumps(
            {"query": BATCH, "variables": {"i": {"events": events[i : i + 1000]}}},
            separators=(",", ":"),
        ).encode()
        for i in range(0, len(events), 1000)
    ]

    async def send(body: bytes) -> int:
        response = await http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        found = response.json()
        if response.status_code != 200 or "errors" in found:
            raise SystemExit(f"usageRecordBatch failed: {response.status_code} {found}")
        payload = found["data"]["usageRecordBatch"]
        if payload["refusedCount"] or payload["duplicateCount"] or payload["errors"]:
            raise SystemExit(f"usageRecordBatch refused events: {payload}")
        accepted: int = payload["acceptedCount"]
        return accepted

    return await pump(bodies, send, concurrency)


async def ingest_http(
    http: httpx.AsyncClient, events: list[dict[str, Any]], per_request: int, concurrency: int
) -> tuple[float, int]:
    bodies = [
        json.dumps(events[i : i + per_request], separators=(",", ":")).encode()
        for i in range(0, len(events), per_request)
    ]

    async def send(body: bytes) -> int:
        response = await http.post(
            "/usage/events", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code != 200:
            raise SystemExit(f"POST /usage/events: {response.status_code} {response.text[:500]}")
        found = response.json()
        if found["refused"] or found["duplicates"]:
            refused = [r for r in found["results"] if r["status"] != "accepted"][:3]
            raise SystemExit(f"POST /usage/events refused events: {refused}")
        accepted: int = found["accepted"]
        return accepted

    return await pump(bodies, send, concurrency)


COPY_COLUMNS = [
    "organization_id",
    "id",
    "idempotency_key",
    "subscription_id",
    "customer_id",
    "metric_id",
    "value",
    "unique_key",
    "properties",
    "occurred_at",
    "received_at",
    "counted",
]


def copy_records(
    events: list[dict[str, Any]], customers: dict[str, str], metric_ids: dict[str, str]
) -> list[tuple[Any, ...]]:
    """The rows ingestion would store for ``events``."""
    now = datetime.now(UTC)
    records = []
    for i, e in enumerate(events):
        props = e.get("properties", {})
        metric = e["metric"]
        value = Decimal(props["n"]) if metric == "tokens" else Decimal(1)
        unique = props["user"] if metric == "users" else None
        records.append(
            (
                ORG,
                f"use_c{i:010d}",
                e["idempotencyKey"],
                e["subscriptionId"],
                customers[e["subscriptionId"]],
                metric_ids[metric],
                value,
                unique,
                json.dumps(props, separators=(",", ":")),
                datetime.fromisoformat(e["timestamp"]),
                now,
                True,
            )
        )
    return records


async def copy_baseline(url: str, records: list[tuple[Any, ...]]) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_copy_events (LIKE usage_events INCLUDING ALL)")
        started = time.perf_counter()
        await conn.copy_records_to_table("bench_copy_events", records=records, columns=COPY_COLUMNS)
        seconds = time.perf_counter() - started
        stored = await conn.fetchval("SELECT count(*) FROM bench_copy_events")
        if stored != len(records):
            raise SystemExit(f"COPY stored {stored} rows of {len(records)}")
        await conn.execute("DROP TABLE bench_copy_events")
        return seconds
    finally:
        await conn.close()


# -- stored volume ------------------------------------------------------------------------------

# One chunk of generated events for the busy subscriptions ($2: ids, $3: customers), inserted
# with their hourly aggregates by the same statement shape ingestion uses.
LOAD = """
WITH input AS (
    SELECT 'use_s' || lpad(g::text, 10, '0') AS id,
           's' || g AS idempotency_key,
           ($2::text[])[g / $6 + 1] AS subscription_id,
           ($3::text[])[g / $6 + 1] AS customer_id,
           ($4::text[])[g % 3 + 1] AS metric_id,
           CASE g % 3 WHEN 1 THEN (1 + g % 5)::numeric ELSE 1 END AS value,
           CASE g % 3 WHEN 2 THEN 'u' || (g % $9) END AS unique_key,
           CASE g % 3 WHEN 0 THEN '{}'::jsonb
                      WHEN 1 THEN jsonb_build_object('n', 1 + g % 5)
                      ELSE jsonb_build_object('user', 'u' || (g % $9)) END AS properties,
           $5::timestamptz + make_interval(secs => 1 + floor((g % $6) * $10::float8 / $6))
               AS occurred_at
    FROM generate_series($7::bigint, $8::bigint - 1) AS g
    ORDER BY subscription_id, metric_id, occurred_at
), inserted AS (
    INSERT INTO usage_events (organization_id, id, idempotency_key, subscription_id,
                              customer_id, metric_id, value, unique_key, properties,
                              occurred_at, counted)
    SELECT $1, id, idempotency_key, subscription_id, customer_id, metric_id, value, unique_key,
           properties, occurred_at, true
    FROM input
    RETURNING subscription_id, metric_id, value, unique_key, occurred_at, counted
), hourly AS (
    INSERT INTO usage_hourly AS h (organization_id, subscription_id, metric_id, hour, events,
                                   total, maximum, latest_at, latest_value)
    SELECT $1, subscription_id, metric_id, date_trunc('hour', occurred_at, 'UTC'), count(*),
           sum(value), max(value), max(occurred_at),
           (array_agg(value ORDER BY occurred_at DESC, value DESC))[1]
    FROM inserted WHERE counted
    GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (organization_id, subscription_id, metric_id, hour) DO UPDATE SET
        events = h.events + excluded.events,
        total = h.total + excluded.total,
        maximum = greatest(h.maximum, excluded.maximum),
        latest_value = CASE
            WHEN excluded.latest_at > h.latest_at THEN excluded.latest_value
            WHEN excluded.latest_at = h.latest_at
                THEN greatest(h.latest_value, excluded.latest_value)
            ELSE h.latest_value END,
        latest_at = greatest(h.latest_at, excluded.latest_at)
    RETURNING 1
), uniques AS (
    INSERT INTO usage_hourly_uniques (organization_id, subscription_id, metric_id, hour,
                                      unique_key)
    SELECT DISTINCT $1, subscription_id, metric_id, date_trunc('hour', occurred_at, 'UTC'),
           unique_key
    FROM inserted WHERE counted AND unique_key IS NOT NULL
    ORDER BY 2, 3, 4, 5
    ON CONFLICT DO NOTHING
    RETURNING 1
), periods AS (
    INSERT INTO usage_period_uniques (organization_id, subscription_id, metric_id,
                                      period_start, unique_key)
    SELECT DISTINCT $1, i.subscription_id, i.metric_id, s.current_period_start, i.unique_key
    FROM inserted i
    JOIN subscriptions s ON s.organization_id = $1 AND s.id = i.subscription_id
    WHERE i.counted AND i.unique_key IS NOT NULL
      AND i.occurred_at >= s.current_period_start AND i.occurred_at < s.current_period_end
    ORDER BY 2, 3, 4, 5
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted
"""


async def load_stored(
    url: str,
    busy: list[str],
    customers: dict[str, str],
    metric_ids: dict[str, str],
    stored: int,
    chunk: int,
) -> float:
    per_sub = stored // len(busy)
    total = per_sub * len(busy)
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        for first in range(0, total, chunk):
            last = min(first + chunk, total)
            count = await conn.fetchval(
                LOAD,
                ORG,
                busy,
                [customers[s] for s in busy],
                [metric_ids[m] for m in METRICS],
                JUN_1,
                per_sub,
                first,
                last,
                USERS,
                SPAN,
            )
            if count != last - first:
                raise SystemExit(f"loaded {count} of {last - first} events")
            print(f"  loaded {last:,} / {total:,} stored events", file=sys.stderr, flush=True)
        await conn.execute("ANALYZE usage_events")
        await conn.execute(
            "VACUUM ANALYZE usage_hourly, usage_hourly_uniques, usage_period_uniques"
        )
        return time.perf_counter() - started
    finally:
        await conn.close()


# -- checks -------------------------------------------------------------------------------------


async def check_stored(url: str, expected: dict[str, int]) -> list[str]:
    """Stored events per key prefix = events sent; hourly aggregates = the stored events."""
    problems = []
    conn = await asyncpg.connect(url)
    try:
        for prefix, want in expected.items():
            got = await conn.fetchval(
                "SELECT count(*) FROM usage_events WHERE organization_id = $1 "
                "AND idempotency_key LIKE $2",
                ORG,
                prefix + "%",
            )
            if got != want:
                problems.append(f"{prefix}: {got} events stored, {want} sent")
        agg = await conn.fetchrow(
            "SELECT (SELECT coalesce(sum(events), 0) FROM usage_hourly WHERE organization_id = $1)"
            " AS hourly, (SELECT count(*) FROM usage_events WHERE organization_id = $1"
            " AND counted) AS events",
            ORG,
        )
        if agg["hourly"] != agg["events"]:
            problems.append(f"usage_hourly counts {agg['hourly']} events, {agg['events']} stored")
    finally:
        await conn.close()
    return problems


async def expected_usage(url: str, sub: str, metric_ids: dict[str, str]) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE metric_id = $3) AS calls,
                      coalesce(sum(value) FILTER (WHERE metric_id = $4), 0) AS tokens,
                      count(DISTINCT unique_key) FILTER (WHERE metric_id = $5) AS users
               FROM usage_events WHERE organization_id = $1 AND subscription_id = $2
                 AND counted AND occurred_at >= $6 AND occurred_at < $7""",
            ORG,
            sub,
            metric_ids["calls"],
            metric_ids["tokens"],
            metric_ids["users"],
            JUN_1,
            NOW,
        )
    finally:
        await conn.close()
    return {m: f"{Decimal(row[m]).normalize():f}" for m in METRICS}


# -- latency ------------------------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)

    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 2),
    }


async def timed(api: Api, query: str, variables: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    data = await api.gql(query, variables)
    return (time.perf_counter() - started) * 1000, data


# -- the run ------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, url: str, api_url: str, pid: int) -> dict[str, Any]:
    result: dict[str, Any] = {"config": {}, "checks": {}}
    problems: list[str] = []
    headers = {"authorization": f"Bearer {token()}"}
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, timeout=600, limits=limits
    ) as http:
        api = Api(http)
        started = time.perf_counter()
        subs, metric_ids = await seed(api, args.subscriptions)
        seeded = time.perf_counter() - started
        print(f"seeded {len(subs)} subscriptions in {seeded:.1f}s", file=sys.stderr, flush=True)
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT id, customer_id FROM subscriptions WHERE organization_id = $1", ORG
            )
        finally:
            await conn.close()
        customers = {r["id"]: r["customer_id"] for r in rows}

        n = args.events
        gql_events = make_events(n, subs, "g")
        http_events = make_events(n, subs, "h")
        # Warm the server up (imports, plans, pools) with a few events that are not timed.
        await ingest_http(http, make_events(300, subs, "w"), 100, 1)
        if args.profile:
            spy = await asyncio.create_subprocess_exec(
                *(args.py_spy, "record", "--nonblocking", "-r", "100", "-o", args.profile),
                *(("-f", "raw") if args.profile.endswith(".txt") else ()),
                *("--pid", str(pid)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        gql_seconds, gql_accepted = await ingest_graphql(http, gql_events, args.concurrency)
        print(f"GraphQL: {n / gql_seconds:,.0f} events/s", file=sys.stderr, flush=True)
        http_seconds, http_accepted = await ingest_http(
            http, http_events, args.per_request, args.http_concurrency
        )
        print(f"HTTP: {n / http_seconds:,.0f} events/s", file=sys.stderr, flush=True)
        if args.profile:
            spy.send_signal(signal.SIGINT)
            await asyncio.wait_for(spy.wait(), 120)
        del gql_events
        records = copy_records(http_events, customers, metric_ids)
        del http_events
        copy_seconds = await copy_baseline(url, records)
        del records
        print(f"COPY: {n / copy_seconds:,.0f} events/s", file=sys.stderr, flush=True)
        if gql_accepted != n:
            problems.append(f"GraphQL accepted {gql_accepted} of {n}")
        if http_accepted != n:
            problems.append(f"HTTP accepted {http_accepted} of {n}")
        problems += await check_stored(url, {"g": n, "h": n, "w": 300})
        rates = {
            "graphql_events_per_s": round(n / gql_seconds, 1),
            "http_events_per_s": round(n / http_seconds, 1),
            "copy_events_per_s": round(n / copy_seconds, 1),
        }
        rates["http_over_copy"] = round(rates["http_events_per_s"] / rates["copy_events_per_s"], 3)
        rates["graphql_over_copy"] = round(
            rates["graphql_events_per_s"] / rates["copy_events_per_s"], 3
        )
        rates["http_target_met"] = (
            rates["http_events_per_s"] >= 20_000 and rates["http_over_copy"] >= 1 / 3
        )
        result["ingestion"] = rates

        # Stored volume on the busy subscriptions, then the queries.
        busy = subs[: args.busy]
        load_seconds = await load_stored(
            url, busy, customers, metric_ids, args.stored, args.load_chunk
        )
        stored = (args.stored // len(busy)) * len(busy)
        print(f"stored {stored:,} events in {load_seconds:.0f}s", file=sys.stderr, flush=True)
        problems += await check_stored(url, {"s": stored})
        conn = await asyncpg.connect(url)
        try:
            total_events = await conn.fetchval("SELECT count(*) FROM usage_events")
        finally:
            await conn.close()

        for sub in busy[:3]:  # warm up, and check the answers against the events
            _, data = await timed(api, CURRENT_USAGE, {"id": sub})
            got = {u["metric"]["code"]: u["quantity"] for u in data["subscription"]["currentUsage"]}
            want = await expected_usage(url, sub, metric_ids)
            if got != want:
                problems.append(f"currentUsage of {sub}: {got}, events say {want}")
        pick = random.Random(15)
        samples = []
        for _ in range(args.requests):
            ms, data = await timed(api, CURRENT_USAGE, {"id": pick.choice(busy)})
            if len(data["subscription"]["currentUsage"]) != 3:
                problems.append(f"currentUsage has {data['subscription']['currentUsage']}")
            samples.append(ms)
        current = percentiles(samples)
        current["target_met"] = current["p99_ms"] <= 50
        result["current_usage"] = current

        # usage(groupBy: DAY) over June on the busiest subscription (all are equally busy).
        days_samples = []
        variables = {"s": busy[0], "m": "calls", "from": JUN_1.isoformat(), "to": NOW.isoformat()}
        for _ in range(args.usage_requests):
            ms, data = await timed(api, USAGE_DAYS, variables)
            days_samples.append(ms)
        calls = (await expected_usage(url, busy[0], metric_ids))["calls"]
        series = data["usage"]
        counted = sum(int(b["events"]) for b in series["buckets"])
        if series["total"] != calls or counted != int(calls):
            problems.append(f"usage(DAY) total {series['total']} ({counted}), events say {calls}")
        result["usage_by_day"] = percentiles(days_samples) | {"buckets": len(series["buckets"])}

    result["config"] = {
        "events": n,
        "stored": stored,
        "events_in_table": total_events,
        "subscriptions": len(subs),
        "busy_subscriptions": len(busy),
        "events_per_busy_subscription": stored // len(busy),
        "graphql_batch": 1000,
        "graphql_in_flight": args.concurrency,
        "http_batch": args.per_request,
        "http_in_flight": args.http_concurrency,
        "server_workers": args.workers,
        "seed_seconds": round(seeded, 1),
        "load_seconds": round(load_seconds, 1),
    }
    result["checks"] = {"passed": not problems, "problems": problems}
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
    from db.migrate import apply_migrations

    with database() as url, tempfile.TemporaryDirectory(prefix="bench-usage-") as tmp:
        folder = Path(tmp)
        asyncio.run(apply_migrations(url))
        emulator = StripeEmulator()
        emulator.start()
        try:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "JWT_SECRET": SECRET,
                "BILLING_HOME": str(folder / "home"),
                "BILLING_ENV": "development",  # test clocks on
                "LOG_LEVEL": "warning",
                "STRIPE_API_KEY": EMULATOR_API_KEY,
                "STRIPE_API_BASE": emulator.base_url,
                "RATE_LIMIT_RESTORE_RATE": "0",  # 0: no limit
                "RATE_LIMIT_ANONYMOUS_RESTORE_RATE": "0",
            }
            port = free_port()
            serve = [
                *(sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--no-worker"),
                *("--port", str(port), "--workers", str(args.workers)),
            ]
            with process(serve, env, port, folder / "serve.log") as (api_url, pid):
                return asyncio.run(measure(args, url, api_url, pid))
        finally:
            emulator.stop()


def table(result: dict[str, Any]) -> str:
    ing, cur, day, cfg = (
        result["ingestion"],
        result["current_usage"],
        result["usage_by_day"],
        result["config"],
    )
    gql_label = f"GraphQL usageRecordBatch (1,000/call, {cfg['graphql_in_flight']} in flight)"
    http_label = (
        f"POST /usage/events ({cfg['http_batch']:,}/req, {cfg['http_in_flight']} in flight)"
    )
    http_met = "met" if ing["http_target_met"] else "NOT met"
    lines = [
        f"ingestion of {cfg['events']:,} events per path ({cfg['subscriptions']} subscriptions, "
        "3 metrics)",
        f"  {'path':<52}{'events/s':>12}{'/ COPY':>9}",
        f"  {gql_label:<52}{ing['graphql_events_per_s']:>12,.0f}{ing['graphql_over_copy']:>9.3f}",
        f"  {http_label:<52}{ing['http_events_per_s']:>12,.0f}{ing['http_over_copy']:>9.3f}",
        f"  {'COPY (1 stream, same rows, same indexes)':<52}{ing['copy_events_per_s']:>12,.0f}"
        f"{1:>9.3f}",
        f"  target HTTP >= 20,000/s and >= 1/3 of COPY: {http_met}",
        f"queries with {cfg['events_in_table']:,} events stored ({cfg['busy_subscriptions']} "
        f"subscriptions x {cfg['events_per_busy_subscription']:,} in June)",
        f"  {'query':<52}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}",
        f"  {'currentUsage (3 metrics, tiers)':<52}{cur['requests']:>6}{cur['p50_ms']:>9}"
        f"{cur['p95_ms']:>9}{cur['p99_ms']:>9}{cur['max_ms']:>9}",
        f"  {'usage(groupBy: DAY), June, busiest subscription':<52}{day['requests']:>6}"
        f"{day['p50_ms']:>9}{day['p95_ms']:>9}{day['p99_ms']:>9}{day['max_ms']:>9}",
        f"  target currentUsage p99 <= 50 ms: {'met' if cur['target_met'] else 'NOT met'}",
        f"checks: {'passed' if result['checks']['passed'] else 'FAILED'}",
        *(f"  {p}" for p in result["checks"]["problems"]),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events per ingestion path (1,000,000)")
    parser.add_argument("--stored", type=int, help="events stored for the queries (10,000,000)")
    parser.add_argument("--subscriptions", type=int, help="subscriptions created (200)")
    parser.add_argument("--busy", type=int, help="subscriptions holding the stored events (100)")
    parser.add_argument("--requests", type=int, help="currentUsage requests timed (500)")
    parser.add_argument("--usage-requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=6, help="GraphQL calls in flight")
    parser.add_argument("--http-concurrency", type=int, default=4, help="HTTP requests in flight")
    parser.add_argument("--per-request", type=int, default=10_000, help="events per HTTP request")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--load-chunk", type=int, default=1_000_000)
    parser.add_argument(
        "--profile", help="py-spy of the server during ingestion (.svg, or .txt: raw stacks)"
    )
    beside = Path(sys.executable).with_name("py-spy")
    parser.add_argument("--py-spy", default=str(beside) if beside.exists() else "py-spy")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; exits 1 when wrong")
    args = parser.parse_args()
    small = args.smoke
    args.events = args.events or (20_000 if small else 1_000_000)
    args.stored = args.stored or (200_000 if small else 10_000_000)
    args.subscriptions = args.subscriptions or (20 if small else 200)
    args.busy = min(args.busy or (10 if small else 100), args.subscriptions)
    args.requests = args.requests or (100 if small else 500)
    if small:
        args.usage_requests = min(args.usage_requests, 10)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    result = run(args)
    result["config"]["seconds"] = round(time.perf_counter() - started, 1)
    # The machine may be shared: its load (1 min) around the run says how noisy the figures are.
    result["config"]["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(table(result))
    print(
        f"run time {result['config']['seconds']}s, "
        f"load average (1 min) {result['config']['load_average']} on {os.cpu_count()} CPUs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if not result["checks"]["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
