"""The worker loop: bills what is due and runs housekeeping at most once per interval."""

from __future__ import annotations

from typing import Any

from app.worker import BillingWorker


class _Subscriptions:
    def __init__(self, due: list[int]) -> None:
        self.due = due

    async def process_due(self, *, limit: int) -> int:
        return self.due.pop(0) if self.due else 0


async def test_housekeeping_runs_once_per_interval_and_billing_every_round() -> None:
    calls: list[int] = []

    async def purge() -> int:
        calls.append(1)
        return 3

    subscriptions: Any = _Subscriptions([5, 2, 0])
    worker = BillingWorker(subscriptions, housekeeping=purge, housekeeping_seconds=3600)
    assert [await worker.run_once() for _ in range(4)] == [5, 2, 0, 0]
    assert worker.handled == 7
    assert calls == [1]  # the first round only; the next is an hour away


async def test_deliveries_and_reconciliation_run_beside_billing_until_stopped() -> None:
    import asyncio

    delivered: list[int] = []
    reconciled: list[int] = []
    three = asyncio.Event()

    async def deliver() -> int:
        delivered.append(1)
        return 2 if len(delivered) < 3 else 0

    async def reconcile() -> int:
        reconciled.append(1)
        if len(reconciled) == 3:
            three.set()
        if len(reconciled) == 2:
            raise RuntimeError("Stripe is down")  # logged; the next round goes on
        return 1

    subscriptions: Any = _Subscriptions([])
    worker = BillingWorker(
        subscriptions,
        idle_seconds=0.01,
        deliveries=deliver,
        delivery_idle_seconds=0.01,
        reconcile=reconcile,
        reconcile_seconds=0.02,
        reconcile_delay_seconds=0.05,
    )
    assert await worker.run_once() == 0
    assert reconciled == []  # never in a billing round (`billing worker --once` skips it)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(three.wait(), 5)
    worker.stop()
    await asyncio.wait_for(running, 5)
    assert worker.delivered >= 4
    assert len(reconciled) >= 3
