"""Live feeds over a real broker: scoping to one organization, coalescing bursts, sharing one
computation between subscribers, and a fresh snapshot after the listener reconnects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from app.core.pubsub import Event, EventBroker, publish
from app.live.feeds import LiveFeeds
from db.connection import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=3)
    await database.connect()
    yield database
    await database.disconnect()


@pytest.fixture
async def broker(database_url: str) -> AsyncIterator[EventBroker]:
    events = EventBroker(database_url)
    await events.start()
    yield events
    await events.stop()


class Snapshots:
    """A fake snapshot computation: counts calls; ``gate`` holds each until it is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        self.started.set()
        await self.gate.wait()
        return self.calls


class Reader:
    """Consumes an async iterator in a task, collecting what it yields."""

    def __init__(self, source: AsyncIterator[Any]) -> None:
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self._source = source
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for item in self._source:
            await self.items.put(item)

    async def next(self, seconds: float = 5) -> Any:
        return await asyncio.wait_for(self.items.get(), seconds)

    async def nothing_for(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            item = await asyncio.wait_for(self.items.get(), seconds)
            pytest.fail(f"unexpected item {item!r}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


async def test_revenue_starts_with_a_snapshot_and_follows_its_organization_only(
    db: Database, broker: EventBroker
) -> None:
    feeds, compute = LiveFeeds(broker), Snapshots()
    reader = Reader(feeds.revenue("acme", None, compute))
    try:
        assert await reader.next() == 1
        await publish(db, Event("other", "payment", "pay_1", {"customer_id": "cus_1"}))
        await publish(db, Event("acme", "invoice", "inv_1"))  # not a revenue event
        await reader.nothing_for(0.5)
        for kind in ("payment", "refund", "subscription"):
            await publish(db, Event("acme", kind, f"{kind}_1"))
            assert await reader.next() == compute.calls
        assert compute.calls == 4
    finally:
        await reader.close()


async def test_a_burst_during_a_computation_gives_one_more_snapshot(
    db: Database, broker: EventBroker
) -> None:
    feeds, compute = LiveFeeds(broker), Snapshots()
    reader = Reader(feeds.revenue("acme", "USD", compute))
    try:
        assert await reader.next() == 1
        compute.gate.clear()
        compute.started.clear()
        await publish(db, Event("acme", "payment", "pay_1"))
        await asyncio.wait_for(compute.started.wait(), 5)  # the second snapshot is running
        for n in range(10):
            await publish(db, Event("acme", "payment", f"pay_burst_{n}"))
        await asyncio.sleep(0.3)  # let the burst arrive while the computation is held
        compute.gate.set()
        assert await reader.next() == 2
        assert await reader.next() == 3  # one snapshot for the whole burst
        await reader.nothing_for(0.5)
        assert compute.calls == 3
    finally:
        await reader.close()


async def test_subscribers_of_one_organization_share_a_computation(
    db: Database, broker: EventBroker
) -> None:
    feeds, compute = LiveFeeds(broker), Snapshots()
    readers = [Reader(feeds.revenue("acme", None, compute)) for _ in range(20)]
    other = Reader(feeds.revenue("acme", "EUR", compute))  # another currency: its own
    try:
        firsts = [await r.next() for r in readers]
        assert await other.next() in (1, 2)
        assert compute.calls == 2
        assert len(set(firsts)) == 1
        await publish(db, Event("acme", "refund", "re_1"))
        seconds = [await r.next() for r in readers]
        assert await other.next() > 2
        assert compute.calls == 4
        assert len(set(seconds)) == 1
    finally:
        for reader in [*readers, other]:
            await reader.close()


async def test_a_failed_computation_is_not_reused(db: Database, broker: EventBroker) -> None:
    feeds = LiveFeeds(broker)
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return calls

    first = feeds.revenue("acme", None, flaky)
    with pytest.raises(RuntimeError, match="hiccup"):
        await anext(first)
    second = feeds.revenue("acme", None, flaky)
    try:
        assert await anext(second) == 2
    finally:
        await second.aclose()


async def test_a_dropped_listener_leads_to_a_fresh_snapshot(
    broker: EventBroker, database_url: str
) -> None:
    feeds, compute = LiveFeeds(broker), Snapshots()
    reader = Reader(feeds.revenue("acme", None, compute))
    try:
        assert await reader.next() == 1
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", broker.backend_pid)
        finally:
            await admin.close()
        assert await reader.next(seconds=15) == 2
    finally:
        await reader.close()


async def test_payment_events_are_scoped_to_organization_and_customer(
    db: Database, broker: EventBroker
) -> None:
    feeds = LiveFeeds(broker)
    loads: list[str] = []

    async def load(event: Event) -> str:
        loads.append(event.id)
        return f"loaded {event.id}"

    everyone = Reader(feeds.payment_events("acme", None, load))
    one = Reader(feeds.payment_events("acme", "cus_1", load))
    try:
        await asyncio.sleep(0.1)  # both subscribed
        await publish(db, Event("other", "payment", "pay_x", {"customer_id": "cus_1"}))
        await publish(db, Event("acme", "subscription", "sub_1", {"customer_id": "cus_1"}))
        await publish(db, Event("acme", "payment", "pay_2", {"customer_id": "cus_2"}))
        await publish(db, Event("acme", "refund", "re_1", {"customer_id": "cus_1"}))
        seen = [await everyone.next() for _ in range(2)]
        assert [(event.id, loaded) for event, loaded in seen] == [
            ("pay_2", "loaded pay_2"),
            ("re_1", "loaded re_1"),
        ]
        event, loaded = await one.next()
        assert (event.id, loaded) == ("re_1", "loaded re_1")
        await everyone.nothing_for(0.3)
        await one.nothing_for(0.1)
        # Each loaded once (re_1 for both subscribers); the two loads may start in either order.
        assert sorted(loads) == ["pay_2", "re_1"]
    finally:
        await everyone.close()
        await one.close()


async def test_many_subscribers_share_one_load_per_event(db: Database, broker: EventBroker) -> None:
    feeds = LiveFeeds(broker)
    loads = 0

    async def load(event: Event) -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return loads

    readers = [Reader(feeds.payment_events("acme", None, load)) for _ in range(50)]
    try:
        await asyncio.sleep(0.1)
        await publish(db, Event("acme", "payment", "pay_1", {"customer_id": "cus_1"}))
        assert {(await r.next())[1] for r in readers} == {1}
        await publish(db, Event("acme", "payment", "pay_1", {"customer_id": "cus_1"}))
        assert {(await r.next())[1] for r in readers} == {2}  # a new event: loaded again
    finally:
        for reader in readers:
            await reader.close()
