"""Outgoing webhooks through a real `billing worker` process that is SIGKILLed in the middle of
a delivery: receivers on loopback that verify every signature get each event exactly once per
endpoint (counting 2xx answers; the event id is what a receiver de-duplicates on), including
events written while no worker ran and after one receiver failed three times."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.settings import Settings
from tests.fault_support import Proc, fault_env
from tests.support import GraphQLClient
from tests.test_outgoing_webhooks import endpoint
from tests.webhook_receiver import Receiver, receiving

pytestmark = pytest.mark.slow


async def until(check: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f}s: {what}")
        await asyncio.sleep(0.1)


async def test_worker_killed_mid_delivery_and_receiver_failing_three_times(
    admin: GraphQLClient,
    org: str,
    settings: Settings,
    app_services: Any,
    payment_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    env = {
        **fault_env(settings, tmp_path),
        "WEBHOOK_LEASE_SECONDS": "9",
        "WEBHOOK_RETRY_BASE_SECONDS": "1",
        "WEBHOOK_TIMEOUT_SECONDS": "4",
        "RECONCILE_EVERY_SECONDS": "0",
    }
    worker = Proc("worker", env, tmp_path / "worker.log")
    failing = Receiver(fail_first=3)
    stalling = Receiver(stall_first=1, stall_seconds=60)
    async with receiving(failing), receiving(stalling):
        _, secret_a = await endpoint(admin, failing.url)
        _, secret_b = await endpoint(admin, stalling.url)
        failing.secrets.append(secret_a)
        stalling.secrets.append(secret_b)
        await payment_factory(confirm=True)
        try:
            worker.start()
            # The worker is in the middle of a delivery: the stalling receiver holds it, and the
            # failing one has answered its first 500. No 2xx has been given yet.
            await until(lambda: len(stalling.requests) == 1, "the stalled delivery")
            await until(lambda: failing.answered[500] >= 1, "a first failure")
            assert failing.answered[200] == 0
            assert stalling.answered[200] == 0
            await worker.kill()
            # Events written while no worker runs wait in the outbox.
            for _ in range(6):
                await payment_factory(confirm=True)
            worker.start()
            await asyncio.gather(failing.wait(7, 120), stalling.wait(7, 120))
            assert await worker.terminate() == 0
        finally:
            worker.force_stop()
        expected = {
            row["id"]
            for row in await app_services.db.fetch_all(
                "SELECT id FROM webhook_events WHERE organization_id = :org "
                "AND type = 'payment.succeeded'",
                {"org": org},
            )
        }
        assert len(expected) == 7
        for receiver in (failing, stalling):
            assert receiver.unverified == []  # every request carried a valid signature
            assert receiver.accepted_ids() == Counter(dict.fromkeys(expected, 1))
        assert failing.answered[500] == 3
        # the stalled request was never answered; its delivery came again after the lease
        stalled = stalling.requests[0].event_id
        assert [r.event_id for r in stalling.requests].count(stalled) == 2
    assert worker.killed == 1
