"""LISTEN/NOTIFY fan-out: delivered after commit only, across brokers, and across drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.core.pubsub import RESYNC, Event, EventBroker, publish
from db.connection import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=3)
    await database.connect()
    yield database
    await database.disconnect()


@pytest.fixture
async def brokers(database_url: str) -> AsyncIterator[tuple[EventBroker, EventBroker]]:
    a, b = EventBroker(database_url), EventBroker(database_url)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def next_event(queue: asyncio.Queue[Event], seconds: float = 5) -> Event:
    return await asyncio.wait_for(queue.get(), seconds)


async def test_event_reaches_every_process_after_commit_only(
    db: Database, brokers: tuple[EventBroker, EventBroker]
) -> None:
    a, b = brokers
    async with a.subscribe() as on_a, b.subscribe() as on_b:
        async with db.transaction():
            await publish(db, Event("acme", "payment", "pay_1", {"status": "succeeded"}))
            await asyncio.sleep(0.2)
            assert on_a.empty()  # not before commit
        for queue in (on_a, on_b):
            event = await next_event(queue)
            assert event == Event("acme", "payment", "pay_1", {"status": "succeeded"})


async def publish_then_fail(db: Database) -> None:
    async with db.transaction():
        await publish(db, Event("acme", "payment", "pay_rolled_back"))
        raise RuntimeError("abort")


async def test_rolled_back_change_publishes_nothing(
    db: Database, brokers: tuple[EventBroker, EventBroker]
) -> None:
    a, _ = brokers
    async with a.subscribe() as queue:
        with pytest.raises(RuntimeError, match="abort"):
            await publish_then_fail(db)
        await publish(db, Event("acme", "payment", "pay_after"))
        assert (await next_event(queue)).id == "pay_after"
        assert queue.empty()


async def test_listener_reconnects_and_asks_for_a_resync(
    db: Database, brokers: tuple[EventBroker, EventBroker], database_url: str
) -> None:
    a, _ = brokers
    async with a.subscribe() as queue:
        pid = a.backend_pid
        assert pid is not None
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        assert await next_event(queue, seconds=15) is RESYNC
        assert a.reconnects == 1
        await publish(db, Event("acme", "refund", "re_1"))
        assert (await next_event(queue)).id == "re_1"
