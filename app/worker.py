"""The billing worker: a loop that does whatever subscriptions have due, a second loop that
delivers outgoing webhooks, and a third that reconciles with Stripe now and then.

Run it as its own process (`billing worker`), as many as you like on as many machines, or inside
the API process (`billing serve --with-worker`). Workers coordinate only through PostgreSQL
(claims with FOR UPDATE SKIP LOCKED and a lease per subscription or delivery), so each period is
billed once and each delivery is attempted by one worker at a time.
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
        deliveries: Callable[[], Awaitable[int]] | None = None,
        delivery_idle_seconds: float = 1.0,
        reconcile: Callable[[], Awaitable[int]] | None = None,
        reconcile_seconds: float = 600.0,
        reconcile_delay_seconds: float = 60.0,
    ) -> None:
        self._subscriptions = subscriptions
        self._idle = idle_seconds
        self._batch = batch
        self._housekeeping = housekeeping
        self._housekeeping_every = housekeeping_seconds
        self._next_housekeeping = 0.0
        self._deliveries = deliveries
        self._delivery_idle = delivery_idle_seconds
        self._reconcile = reconcile
        self._reconcile_every = reconcile_seconds
        self._reconcile_delay = reconcile_delay_seconds
        self._stopping = asyncio.Event()
        self.handled = 0
        self.delivered = 0

    def stop(self) -> None:
        """Finish the subscription (and deliveries) in hand, then return from ``run``."""
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

    async def deliver_once(self) -> int:
        """Attempt the outgoing webhook deliveries that are due (one claimed batch)."""
        if self._deliveries is None:
            return 0
        sent = await self._deliveries()
        self.delivered += sent
        return sent

    async def run(self) -> None:
        log.info("billing worker started")
        delivering = asyncio.create_task(self._deliver_loop(), name="webhook-deliveries")
        reconciling = asyncio.create_task(self._reconcile_loop(), name="reconciliation")
        try:
            while not self._stopping.is_set():
                try:
                    handled = await self.run_once()
                except Exception as exc:  # noqa: BLE001 - one bad subscription must not stop billing
                    # Its lease keeps it aside for a while; the others go on.
                    log.error("billing worker step failed: %s", type(exc).__name__)
                    handled = 0
                if handled == 0:
                    await self._pause(self._idle)
        finally:
            self._stopping.set()
            await asyncio.gather(delivering, reconciling)
        log.info("billing worker stopped after %d steps", self.handled)

    async def _deliver_loop(self) -> None:
        if self._deliveries is None:
            return
        while not self._stopping.is_set():
            try:
                sent = await self.deliver_once()
            except Exception as exc:  # noqa: BLE001 - the claims' leases bring them back
                log.error("webhook delivery step failed: %s", type(exc).__name__)
                sent = 0
            if sent == 0:
                await self._pause(self._delivery_idle)

    async def _reconcile_loop(self) -> None:
        """The reconciliation with Stripe every ``reconcile_seconds``, the first one
        ``reconcile_delay_seconds`` after start (a worker's start is busy enough, and a
        restarted one need not read Stripe again at once); beside billing, not in its way."""
        if self._reconcile is None or self._reconcile_every <= 0:
            return
        wait = min(self._reconcile_delay, self._reconcile_every)
        while not self._stopping.is_set():
            await self._pause(wait)
            if self._stopping.is_set():
                return
            try:
                repaired = await self._reconcile()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.error("reconciliation failed: %s", type(exc).__name__)
            else:
                if repaired:
                    log.info("reconciliation repaired %d records", repaired)
            wait = self._reconcile_every

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
