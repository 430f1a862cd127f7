"""A process spends a caller's small charges from a local allowance taken from the shared
bucket: far fewer statements, and never more points than the shared bucket gave."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from app.core.auth import Principal, Role
from app.throttling import Budget, Throttle
from db.connection import Database, count_statements
from tests.support import new_org


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=4)
    await database.connect()
    try:
        yield database
    finally:
        await database.disconnect()


def _throttle(db: Database, maximum: int, rate: int) -> Throttle:
    budget = Budget(maximum=maximum, restore_rate=rate)
    return Throttle(db, authenticated=budget, anonymous=budget)


def _principal(org: str) -> Principal:
    return Principal(org=org, role=Role.ADMIN, subject="dashboard")


async def test_small_charges_are_served_locally_and_reported_like_shared_ones(
    db: Database,
) -> None:
    throttle = _throttle(db, 25_000, 500)
    caller = throttle.caller(_principal(new_org()), None)
    assert caller is not None
    with count_statements() as log:
        statuses = [await throttle.spend(caller, 3) for _ in range(100)]
    assert all(s.granted for s in statuses)
    # 100 charges of 3 points: 300 points, within one allowance of 500 taken at the first.
    assert (throttle.shared_charges, throttle.local_charges) == (1, 99)
    assert log.count == 1
    first, last = statuses[0].currently_available, statuses[-1].currently_available
    assert first == 25_000 - 3
    assert 25_000 - 300 <= last <= 25_000  # plus what refilled meanwhile


async def test_two_processes_never_grant_more_than_the_shared_bucket_holds(
    db: Database,
) -> None:
    org = new_org()
    maximum, rate, cost = 1_000, 50, 10
    processes = [_throttle(db, maximum, rate), _throttle(db, maximum, rate)]
    callers = [p.caller(_principal(org), None) for p in processes]
    began = time.monotonic()
    granted = 0
    for i in range(200):
        process, caller = processes[i % 2], callers[i % 2]
        assert caller is not None
        if (await process.spend(caller, cost)).granted:
            granted += cost
    elapsed = time.monotonic() - began
    assert granted <= maximum + rate * elapsed + cost
    assert granted >= maximum - 2 * rate  # at most the two allowances held back
    assert sum(p.local_charges for p in processes) > 0


async def test_slow_budgets_get_no_allowance(db: Database) -> None:
    throttle = _throttle(db, 100, 1)
    caller = throttle.caller(_principal(new_org()), None)
    assert caller is not None
    for _ in range(5):
        await throttle.spend(caller, 10)
    assert (throttle.shared_charges, throttle.local_charges) == (5, 0)
