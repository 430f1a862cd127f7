"""Live feeds behind the `Live` subscriptions: revenue snapshots and payment events of one
organization, fed by the process's EventBroker (events arrive only after their commit).

Revenue subscribers of one organization and currency share their computations. A snapshot that
started after a subscriber had taken every event delivered so far reflects all of them, so one
computation answers every subscriber waiting for it, and events that arrive while a snapshot is
computed lead to one more snapshot, not one per event. Likewise, payment-event subscribers
share the load of the objects an event names.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from app.core.pubsub import RESYNC, Event, EventBroker

__all__ = ["PAYMENT_KINDS", "REVENUE_KINDS", "LiveFeeds"]

T = TypeVar("T")

REVENUE_KINDS = frozenset({"payment", "refund", "subscription"})
"""Event kinds that change an organization's revenue figures."""

PAYMENT_KINDS = frozenset({"payment", "refund"})

_Key = tuple[str, str | None]

# How long (seconds) a payment event's load is shared: subscribers take an event from their
# queues at nearly the same moment; one that comes later loads again.
_KEEP_LOADS = 2.0


@dataclass
class _Flight:
    """One snapshot computation; it reflects every event up to the broker's ``seen``-th."""

    seen: int
    result: asyncio.Future[Any]


class LiveFeeds:
    def __init__(self, events: EventBroker) -> None:
        self._events = events
        self._flights: dict[_Key, _Flight] = {}
        self._watchers: dict[_Key, int] = {}
        self._loads: dict[int, tuple[Event, asyncio.Future[Any]]] = {}

    async def revenue(
        self, org: str, currency: str | None, compute: Callable[[], Awaitable[T]]
    ) -> AsyncGenerator[T, None]:
        """``compute()``'s result at once, then again after each burst of revenue events of
        ``org`` and after every resync marker, until the caller stops iterating."""
        key = (org, currency)
        self._watchers[key] = self._watchers.get(key, 0) + 1
        try:
            async with self._events.subscribe() as queue:
                while True:
                    # The queue is empty here, so this subscriber has taken every event
                    # delivered so far: any computation started from now on covers them.
                    yield await self._shared(key, self._events.delivered, compute)
                    event = await queue.get()
                    while not _changes_revenue(event, org):
                        event = await queue.get()
                    while not queue.empty():
                        queue.get_nowait()
        finally:
            self._watchers[key] -= 1
            if not self._watchers[key]:
                # A computation still running finishes unobserved; it is not cancelled in the
                # middle of its queries.
                del self._watchers[key]
                self._flights.pop(key, None)

    async def watch(
        self, accept: Callable[[Event], bool], compute: Callable[[], Awaitable[T]]
    ) -> AsyncGenerator[T, None]:
        """``compute()``'s result at once, then once more after each burst of events that
        ``accept`` keeps (and after every resync marker), until the caller stops iterating:
        what one subscriber watches (its entitlements), not shared."""
        async with self._events.subscribe() as queue:
            while True:
                yield await compute()
                event = await queue.get()
                while not (event is RESYNC or accept(event)):
                    event = await queue.get()
                while not queue.empty():
                    queue.get_nowait()

    async def payment_events(
        self, org: str, customer_id: str | None, load: Callable[[Event], Awaitable[T]]
    ) -> AsyncGenerator[tuple[Event, T], None]:
        """Payment and refund events of ``org`` (of one customer when ``customer_id`` is
        given), each with ``load(event)``, until the caller stops iterating. Subscribers that
        take the same event share one load. Events lost while the listener reconnected are
        not replayed."""

        def accept(event: Event) -> bool:
            return (
                event.org == org
                and event.kind in PAYMENT_KINDS
                and (customer_id is None or event.data.get("customer_id") == customer_id)
            )

        async for event in self._events.events(accept):
            if event is not RESYNC:
                yield event, await self._loaded(event, load)

    async def _shared(self, key: _Key, seen: int, compute: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None or flight.seen < seen:
            flight = _Flight(self._events.delivered, asyncio.ensure_future(compute()))
            self._flights[key] = flight
            flight.result.add_done_callback(functools.partial(self._landed, key, flight))
        # Shielded: one subscriber leaving must not cancel the others' computation.
        return cast(T, await asyncio.shield(flight.result))

    async def _loaded(self, event: Event, load: Callable[[Event], Awaitable[T]]) -> T:
        # The broker hands the same Event object to every subscriber, so its identity names
        # one delivery; the entry keeps the object alive, so the identity is not reused.
        entry = self._loads.get(id(event))
        if entry is None or entry[0] is not event:
            entry = (event, asyncio.ensure_future(load(event)))
            self._loads[id(event)] = entry
            entry[1].add_done_callback(functools.partial(self._loaded_one, event))
        return cast(T, await asyncio.shield(entry[1]))

    def _loaded_one(self, event: Event, result: asyncio.Future[Any]) -> None:
        failed = result.cancelled() or result.exception() is not None
        delay = 0 if failed else _KEEP_LOADS
        asyncio.get_running_loop().call_later(delay, self._forget, event)

    def _forget(self, event: Event) -> None:
        entry = self._loads.get(id(event))
        if entry is not None and entry[0] is event:
            del self._loads[id(event)]

    def _landed(self, key: _Key, flight: _Flight, result: asyncio.Future[Any]) -> None:
        failed = result.cancelled() or result.exception() is not None
        if failed and self._flights.get(key) is flight:
            # A failed computation is not reused: the next subscriber tries again.
            del self._flights[key]


def _changes_revenue(event: Event, org: str) -> bool:
    return event is RESYNC or (event.org == org and event.kind in REVENUE_KINDS)
