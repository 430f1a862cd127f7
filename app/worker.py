"""The billing worker: a loop that does whatever subscriptions have due.

Run it as its own process (`billing worker`), as many as you like on as many machines, or inside
the API process (`billing serve --with-worker`). Workers coordinate only through PostgreSQL
(claims with FOR UPDATE SKIP LOCKED and a lease per subscription), so each period is billed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from app.subscriptions import SubscriptionService

__all__ = ["BillingWorker"]

log = logging.getLogger(__name__)


class BillingWorker:
    def __init__(
        self,
        subscriptions: SubscriptionService,
        *,
        idle_seconds: float = 5.0,
        batch: int = 100,
        housekeeping: Callable[[], Awaitable[int]] | None = None,
        housekeeping_seconds: float = 60.0,
    ) -> None:
        self._subscriptions = subscriptions
        self._idle = idle_seconds
        self._batch = batch
        self._housekeeping = housekeeping
        self._housekeeping_every = housekeeping_seconds
        self._next_housekeeping = 0.0
        self._stopping = asyncio.Event()
        self.handled = 0

    def stop(self) -> None:
        """Finish the subscription in hand, then return from ``run``."""
        self._stopping.set()

    async def run_once(self) -> int:
        """Bill what is due (and, every ``housekeeping_seconds``, run the housekeeping: purging
        idempotency keys past their retention, sending refunds left unsent by dead requests)."""
        now = time.monotonic()
        if self._housekeeping is not None and now >= self._next_housekeeping:
            self._next_housekeeping = now + self._housekeeping_every
            purged = await self._housekeeping()
            if purged:
                log.info("housekeeping handled %d records", purged)
        handled = await self._subscriptions.process_due(limit=self._batch)
        self.handled += handled
        return handled

    async def run(self) -> None:
        log.info("billing worker started")
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - one bad subscription must not stop billing
                # Its lease keeps it aside for a while; the others go on.
                log.error("billing worker step failed: %s", type(exc).__name__)
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._idle)
        log.info("billing worker stopped after %d steps", self.handled)
