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
