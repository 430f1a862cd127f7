"""Usage events are counted once under concurrent, overlapping batches from two processes.

Two `billing serve` processes (loopback, on the test database) take 20 batches of 500 events at
once, half each; every idempotency key is in 2 or 3 of the batches (so every key races with
itself, often across the processes). Every event must come back ACCEPTED exactly once and
DUPLICATE otherwise; the usage the API reports (``usage`` and ``currentUsage``) must be that of
the distinct keys, and the hourly pre-aggregates must equal a recount of the stored events."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.stripe.emulator import free_port
from db.connection import Database
from tests.fault_support import Proc, fault_env
from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    advance,
    paying_customer,
    subscribe,
)
from tests.schema.usage_support import CURRENT_USAGE, RECORD_BATCH, USAGE, event, metric
from tests.support import GraphQLClient

pytestmark = pytest.mark.slow

T0 = datetime(2027, 9, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
BATCHES = 20
BATCH_SIZE = 500
KEYS = 4_000  # 2,000 keys in 2 batches and 2,000 in 3: 10,000 events, 20 x 500


@pytest.fixture
async def two_apis(settings: Settings, tmp_path: Path) -> AsyncIterator[list[Proc]]:
    """Two `billing serve --no-worker` processes on 127.0.0.1, ready; killed (by pid) at the
    end whatever happens."""
    env = fault_env(settings, tmp_path)
    apis = [Proc(f"api{n}", env, tmp_path / f"api{n}.log", port=free_port()) for n in range(2)]
    try:
        for proc in apis:
            proc.start()
        await asyncio.gather(*(proc.ready(seconds=60) for proc in apis))
        yield apis
    finally:
        for proc in apis:
            proc.force_stop()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url or "", min_size=1, max_size=2)
    await database.connect()
    yield database
    await database.disconnect()


def key_of(n: int) -> str:
    return f"evt-{n:05d}"


def event_of(n: int, sub: str) -> dict[str, Any]:
    """Key n's event, always the same: a call (even n) or bytes (odd n, a decimal value),
    spread over 40 hours."""
    when = T0 + timedelta(hours=n % 40, minutes=(n * 7) % 60, seconds=n % 13)
    if n % 2 == 0:
        return event(key_of(n), "calls", sub, when)
    return event(key_of(n), "bytes", sub, when, value=bytes_of(n))


def bytes_of(n: int) -> str:
    return f"{n % 7}.25"


def overlapping_batches(seed: int = 11) -> list[list[int]]:
    """20 batches of 500 keys; each key in 2 (the first half) or 3 different batches."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible spread, not a secret
    batches: list[list[int]] = [[] for _ in range(BATCHES)]
    keys = list(range(KEYS))
    rng.shuffle(keys)
    for n in keys:
        copies = 2 if n < KEYS // 2 else 3
        room = sorted(range(BATCHES), key=lambda b: (len(batches[b]), rng.random()))
        for b in room[:copies]:
            batches[b].append(n)
    for batch in batches:
        rng.shuffle(batch)
    assert [len(b) for b in batches] == [BATCH_SIZE] * BATCHES
    return batches


HOURLY_VS_RAW = """
SELECT coalesce(h.metric_id, r.metric_id) AS metric_id, coalesce(h.hour, r.hour) AS hour,
       h.events AS hourly_events, r.events AS raw_events,
       h.total AS hourly_total, r.total AS raw_total
FROM (SELECT metric_id, hour, events, total FROM usage_hourly
      WHERE organization_id = :org AND subscription_id = :sub) h
FULL JOIN (SELECT metric_id, date_trunc('hour', occurred_at, 'UTC') AS hour,
                  count(*) AS events, sum(value) AS total
           FROM usage_events
           WHERE organization_id = :org AND subscription_id = :sub AND counted
           GROUP BY 1, 2) r
  ON h.metric_id = r.metric_id AND h.hour = r.hour
WHERE h.events IS DISTINCT FROM r.events OR h.total IS DISTINCT FROM r.total
"""
STORED = """
SELECT count(*) AS events, count(DISTINCT idempotency_key) AS keys FROM usage_events
WHERE organization_id = :org AND subscription_id = :sub
"""
HOURLY_SUMS = """
SELECT m.code, sum(h.events) AS events, sum(h.total) AS total
FROM usage_hourly h JOIN billable_metrics m
  ON m.organization_id = h.organization_id AND m.id = h.metric_id
WHERE h.organization_id = :org AND h.subscription_id = :sub GROUP BY m.code
"""


async def test_overlapping_batches_in_two_processes_count_each_key_once(
    two_apis: list[Proc],
    db: Database,
    admin: GraphQLClient,
    org: str,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    await advance(admin, T0)
    await metric(admin, code="calls", name="Calls", aggregation="COUNT")
    await metric(admin, code="bytes", name="Bytes", aggregation="SUM")
    plan = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        creditsIncluded=0,
        meteredPrices=[
            {"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"},
            {"metric": "bytes", "model": "PER_UNIT", "unitPrice": "0.01"},
        ],
    )
    customer = await paying_customer()
    sub = (await subscribe(admin, customerId=customer["id"], planId=plan["id"]))["id"]
    await advance(admin, NOW)

    batches = overlapping_batches()
    headers = {"authorization": f"Bearer {admin.bearer}"}

    async def send(client: httpx.AsyncClient, proc: Proc, keys: list[int]) -> dict[str, Any]:
        body = {
            "query": RECORD_BATCH,
            "variables": {"input": {"events": [event_of(n, sub) for n in keys]}},
        }
        response = await client.post("/graphql", json=body, headers=headers)
        assert response.status_code == 200, f"{response.text[:2000]}\n{proc.tail()}"
        answer: dict[str, Any] = response.json()
        assert "errors" not in answer, f"{answer['errors']}\n{proc.tail()}"
        payload: dict[str, Any] = answer["data"]["usageRecordBatch"]
        return payload

    clients = [
        httpx.AsyncClient(base_url=proc.url, timeout=60, limits=httpx.Limits(max_connections=20))
        for proc in two_apis
    ]
    try:
        payloads = await asyncio.wait_for(
            asyncio.gather(
                *(send(clients[i % 2], two_apis[i % 2], keys) for i, keys in enumerate(batches))
            ),
            timeout=120,
        )
    finally:
        for client in clients:
            await client.aclose()

    accepted: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    event_ids: list[str] = []
    accepted_by: dict[int, set[str]] = {0: set(), 1: set()}
    for index, (keys, payload) in enumerate(zip(batches, payloads, strict=True)):
        assert payload["errors"] == []
        results = payload["results"]
        assert [r["idempotencyKey"] for r in results] == [key_of(n) for n in keys]
        for result in results:
            statuses[result["status"]] += 1
            assert result["errors"] == [], result
            assert result["subscriptionId"] == sub
            if result["status"] == "ACCEPTED":
                accepted[result["idempotencyKey"]] += 1
                accepted_by[index % 2].add(result["idempotencyKey"])
                event_ids.append(result["eventId"])
        assert payload["acceptedCount"] + payload["duplicateCount"] == BATCH_SIZE
        assert payload["refusedCount"] == 0
    assert set(statuses) <= {"ACCEPTED", "DUPLICATE"}
    assert statuses["ACCEPTED"] == KEYS
    assert statuses["DUPLICATE"] == BATCHES * BATCH_SIZE - KEYS
    assert sum(p["acceptedCount"] for p in payloads) == KEYS
    assert accepted == Counter({key_of(n): 1 for n in range(KEYS)})
    assert len(set(event_ids)) == KEYS
    # Keys sent to one process only were accepted by it: both took part.
    sent_to: dict[int, set[int]] = {}
    for index, keys in enumerate(batches):
        for n in keys:
            sent_to.setdefault(n, set()).add(index % 2)
    only = {side: {key_of(n) for n, s in sent_to.items() if s == {side}} for side in (0, 1)}
    assert only[0]
    assert only[1]
    for side in (0, 1):
        assert only[side] <= accepted_by[side]
    assert accepted_by[0].isdisjoint(accepted_by[1])

    calls = KEYS // 2
    byte_total = sum(Decimal(bytes_of(n)) for n in range(1, KEYS, 2))
    per_hour = Counter(T0 + timedelta(hours=n % 40) for n in range(0, KEYS, 2))

    # What the API reports.
    window = {"sub": sub, "from": T0.isoformat(), "to": NOW.isoformat()}
    found = (await admin.data(USAGE, {**window, "metric": "calls", "groupBy": "HOUR"}))["usage"]
    assert found["total"] == str(calls)
    assert {b["start"]: b["events"] for b in found["buckets"]} == {
        hour.isoformat(): count for hour, count in per_hour.items()
    }
    found = (await admin.data(USAGE, {**window, "metric": "bytes", "groupBy": "DAY"}))["usage"]
    assert Decimal(found["total"]) == byte_total
    assert sum(b["events"] for b in found["buckets"]) == KEYS // 2
    usage = (await admin.data(CURRENT_USAGE, {"id": sub}))["subscription"]["currentUsage"]
    by_code = {u["metric"]["code"]: u for u in usage}
    assert by_code["calls"]["quantity"] == str(calls)
    assert Decimal(by_code["bytes"]["quantity"]) == byte_total

    # The stored events and the pre-aggregates, read directly.
    values = {"org": org, "sub": sub}
    stored = await db.fetch_one(STORED, values)
    assert stored is not None
    assert (stored["events"], stored["keys"]) == (KEYS, KEYS)
    assert list(await db.fetch_all(HOURLY_VS_RAW, values)) == []
    sums = {r["code"]: (r["events"], r["total"]) for r in await db.fetch_all(HOURLY_SUMS, values)}
    assert sums == {"calls": (calls, Decimal(calls)), "bytes": (KEYS // 2, byte_total)}
    for proc in two_apis:
        assert proc.alive(), proc.tail()
