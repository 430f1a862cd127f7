"""Live events across processes through PostgreSQL LISTEN/NOTIFY.

Writers call ``publish`` inside the transaction that makes the change, so the event is delivered
only after commit and never for a rolled-back change. Each process keeps one dedicated asyncpg
connection LISTENing on one channel and fans events out to in-process subscribers. When that
connection drops it reconnects with backoff and tells every subscriber to resynchronise (send a
fresh snapshot), since events sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from db.connection import Database

__all__ = ["CHANNEL", "RESYNC", "Event", "EventBroker", "listener_name", "publish"]

log = logging.getLogger(__name__)

CHANNEL = "billing_events"
_QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Event:
    org: str
    kind: str  # e.g. "payment", "refund", "subscription"
    id: str
    data: dict[str, Any] = field(default_factory=dict)


RESYNC = Event(org="*", kind="resync", id="")


async def publish(db: Database, event: Event) -> None:
    """Queue ``event`` for delivery when the current transaction commits."""
    payload = json.dumps({"org": event.org, "kind": event.kind, "id": event.id, "data": event.data})
    await db.execute(
        "SELECT pg_notify(:channel, :payload)", {"channel": CHANNEL, "payload": payload}
    )


class EventBroker:
    """One LISTEN connection per process; subscribers get their own bounded queue."""

    def __init__(self, dsn: str, *, reconnect_delay: float = 0.5, max_delay: float = 10.0) -> None:
        self._dsn = dsn
        self._reconnect_delay = reconnect_delay
        self._max_delay = max_delay
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0
        # Events (and resync markers) handed to subscribers so far. A subscriber whose queue is
        # empty has seen every one of them, which lets live feeds share work (app/live/feeds.py).
        self.delivered = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-broker")
        await asyncio.wait_for(self._connected.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    @property
    def backend_pid(self) -> int | None:
        """The listening connection's server pid (tests terminate it to simulate a drop)."""
        return None if self._connection is None else int(self._connection.get_server_pid())

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def events(self, accept: Callable[[Event], bool]) -> AsyncIterator[Event]:
        """Events that ``accept`` keeps, plus RESYNC markers, until the caller stops."""
        async with self.subscribe() as queue:
            while True:
                event = await queue.get()
                if event is RESYNC or accept(event):
                    yield event

    def _deliver(self, event: Event) -> None:
        self.delivered += 1
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A subscriber that cannot keep up gets a resync instead of unbounded memory.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            raw = json.loads(payload)
            event = Event(org=raw["org"], kind=raw["kind"], id=raw["id"], data=raw.get("data", {}))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", CHANNEL)
            return
        self._deliver(event)

    async def _run(self) -> None:
        delay = self._reconnect_delay
        first = True
        while True:
            lost = asyncio.Event()
            try:
                # Named after the process, so an operator (or a test) can find its listener
                # in pg_stat_activity.
                self._connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": listener_name()}
                )
                self._connection.add_termination_listener(_setter(lost))
                await self._connection.add_listener(CHANNEL, self._on_notify)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("event listener cannot connect (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            delay = self._reconnect_delay
            if not first:
                self.reconnects += 1
                self._deliver(RESYNC)
            first = False
            self._connected.set()
            await lost.wait()
            log.warning("event listener connection lost; reconnecting")
            await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)


def listener_name(pid: int | None = None) -> str:
    """The ``application_name`` of a process's LISTEN connection."""
    return f"billing-events-{os.getpid() if pid is None else pid}"


def _setter(flag: asyncio.Event) -> Callable[[Any], None]:
    return lambda _connection: flag.set()
