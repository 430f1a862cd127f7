"""Rate limits shared by every process through PostgreSQL: a budget of query-cost points per
caller, and a cap on open WebSocket connections per token.

The budget works as Shopify's GraphQL rate limit does: each caller (a token's subject, or the
client IP when anonymous) has a bucket of ``maximum`` points that refills continuously at
``restore_rate`` points per second. An operation is charged its requested cost before it runs
and refused with THROTTLED when the bucket holds less; after it ran, the difference between the
requested and the actual cost (a page shorter than `first`) is given back, folded into the
caller's next charge so that it costs no statement of its own. HTTP and WebSocket operations
and document downloads all draw on the same bucket.

A process does not go to PostgreSQL for every small operation: when it charges a caller, it
takes a little more than the operation costs (up to a second of the caller's refill, at most
a twentieth of the bucket) and spends the rest locally, for up to a second, on that caller's
next operations; what is left then goes back with the next charge. The points are taken from
the shared bucket before they are spent, so this can only make the limit stricter (a process
that dies loses at most its allowance, which refills within a second), never looser. Budgets
with slow refills (a few points a second) get no allowance, so every charge is exact there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.core.auth import Principal
from db.connection import Database
from db.repositories.rate_limits import (
    BucketState,
    ConnectionSlotRepository,
    RateLimitRepository,
)

__all__ = ["Budget", "Caller", "ConnectionSlots", "Throttle", "ThrottleStatus"]

log = logging.getLogger(__name__)

_PRUNE_PROBABILITY = 0.001
_MAX_PENDING_REFUNDS = 10_000
_ALLOWANCE_SECONDS = 1.0  # how long a process spends a caller's allowance locally
_MAX_ALLOWANCES = 10_000


@dataclass(frozen=True, slots=True)
class Budget:
    """A bucket of ``maximum`` points refilled at ``restore_rate`` points per second; a rate
    of 0 turns the limit off."""

    maximum: int
    restore_rate: int

    @property
    def enabled(self) -> bool:
        return self.restore_rate > 0 and self.maximum > 0


@dataclass(frozen=True, slots=True)
class Caller:
    """Whose bucket is charged: ``sub:<subject>`` within the token's organization, or
    ``ip:<address>`` for anonymous callers."""

    org: str
    bucket: str
    budget: Budget


@dataclass(frozen=True, slots=True)
class ThrottleStatus:
    granted: bool
    maximum_available: int
    currently_available: int
    restore_rate: int

    def seconds_until(self, cost: int) -> int:
        """Whole seconds until ``cost`` points are available again (at least 1)."""
        missing = max(cost - self.currently_available, 0)
        return max(1, math.ceil(missing / self.restore_rate)) if self.restore_rate else 1


@dataclass(slots=True)
class _Allowance:
    """Points this process took from a caller's shared bucket and has not spent yet."""

    points: int
    shared_left: float  # the shared bucket's level right after they were taken
    taken_at: float  # time.monotonic()


class Throttle:
    def __init__(self, db: Database, *, authenticated: Budget, anonymous: Budget) -> None:
        self._buckets = RateLimitRepository(db)
        self.authenticated = authenticated
        self.anonymous = anonymous
        self._refunds: dict[tuple[str, str], int] = {}
        self._allowances: dict[tuple[str, str], _Allowance] = {}
        self.shared_charges = 0  # charges that went to PostgreSQL
        self.local_charges = 0  # charges served from an allowance

    def caller(self, principal: Principal | None, client_ip: str | None) -> Caller | None:
        """The bucket this caller draws on, or None when its kind is not limited."""
        if principal is not None:
            if not self.authenticated.enabled:
                return None
            return Caller(principal.org, f"sub:{principal.subject}", self.authenticated)
        if not self.anonymous.enabled:
            return None
        return Caller("", f"ip:{client_ip or 'unknown'}", self.anonymous)

    async def spend(self, caller: Caller, cost: int) -> ThrottleStatus:
        """Charge ``cost`` points if the bucket holds them; the status says whether it did."""
        budget = caller.budget
        key = (caller.org, caller.bucket)
        cost = max(cost, 0)
        now = time.monotonic()
        held = self._allowances.get(key)
        if held is not None and now - held.taken_at < _ALLOWANCE_SECONDS and held.points >= cost:
            held.points -= cost
            self.local_charges += 1
            refilled = held.shared_left + budget.restore_rate * (now - held.taken_at)
            shared = min(refilled, budget.maximum - held.points)
            return ThrottleStatus(
                granted=True,
                maximum_available=budget.maximum,
                currently_available=max(0, math.floor(shared + held.points)),
                restore_rate=budget.restore_rate,
            )
        if held is not None:
            del self._allowances[key]
        refund = self._refunds.pop(key, 0) + (held.points if held is not None else 0)
        extra = max(0, min(budget.restore_rate, budget.maximum // 20) - cost)
        state = await self._charge(caller, cost + extra, refund)
        if not state.granted and extra:
            extra = 0  # not enough for the allowance: charge exactly, to decide exactly
            state = await self._charge(caller, cost, 0)
        if state.granted and extra and len(self._allowances) >= _MAX_ALLOWANCES:
            self._forget_stale(time.monotonic())
        if state.granted and extra and len(self._allowances) < _MAX_ALLOWANCES:
            current = self._allowances.get(key)  # another charge of the caller meanwhile
            points = extra + (current.points if current is not None else 0)
            self._allowances[key] = _Allowance(points, state.available, time.monotonic())
        elif state.granted and extra:
            self.refund(caller, extra)
        if random.random() < _PRUNE_PROBABILITY:  # noqa: S311 - not security relevant
            await self._buckets.prune()
        held_now = extra if state.granted else 0
        return ThrottleStatus(
            granted=state.granted,
            maximum_available=budget.maximum,
            currently_available=max(0, math.floor(state.available + held_now)),
            restore_rate=budget.restore_rate,
        )

    def _forget_stale(self, now: float) -> None:
        """Drop allowances past their second (their points are lost: stricter, and refilled
        within a second anyway)."""
        stale = [k for k, a in self._allowances.items() if now - a.taken_at >= _ALLOWANCE_SECONDS]
        for key in stale:
            del self._allowances[key]

    async def _charge(self, caller: Caller, points: int, refund: int) -> BucketState:
        self.shared_charges += 1
        budget = caller.budget
        return await self._buckets.spend(
            caller.org,
            caller.bucket,
            cost=points,
            maximum=budget.maximum,
            rate=budget.restore_rate,
            refund=refund,
        )

    def refund(self, caller: Caller, points: int) -> None:
        """Give ``points`` back: to this process's allowance for the caller when it holds one,
        else with the caller's next charge (from this process). Bounded: past a few thousand
        callers with pending refunds, new ones are dropped, which only makes the limit
        stricter."""
        if points <= 0:
            return
        key = (caller.org, caller.bucket)
        held = self._allowances.get(key)
        if held is not None and time.monotonic() - held.taken_at < _ALLOWANCE_SECONDS:
            held.points += points
            return
        if key in self._refunds or len(self._refunds) < _MAX_PENDING_REFUNDS:
            self._refunds[key] = self._refunds.get(key, 0) + points


class ConnectionSlots:
    """Open WebSocket connections per token, counted across processes with leases that this
    process renews while it lives; a crashed process's connections lapse after ``lease``."""

    def __init__(self, db: Database, *, per_token: int, lease_seconds: int = 90) -> None:
        self._slots = ConnectionSlotRepository(db)
        self.per_token = per_token
        self._lease = lease_seconds
        self._process = uuid.uuid4().hex

    async def acquire(self, principal: Principal) -> str | None:
        """A slot id for a new connection of this token, or None when it has ``per_token``
        open already."""
        if self.per_token <= 0:
            return ""
        slot_id = uuid.uuid4().hex
        taken = await self._slots.acquire(
            principal.org,
            f"sub:{principal.subject}",
            slot_id=slot_id,
            process=self._process,
            cap=self.per_token,
            lease=self._lease,
        )
        return slot_id if taken else None

    async def release(self, principal: Principal, slot_id: str) -> None:
        if slot_id:
            await self._slots.release(principal.org, f"sub:{principal.subject}", slot_id)

    @contextlib.asynccontextmanager
    async def heartbeat(self) -> AsyncIterator[None]:
        """Renew this process's leases every third of their length while the block runs, and
        release them all when it ends."""

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self._lease / 3)
                try:
                    await self._slots.renew(self._process, self._lease)
                except Exception as exc:  # noqa: BLE001 - retried at the next beat
                    log.warning("websocket slot renewal failed: %s", type(exc).__name__)

        task = asyncio.create_task(renew_forever(), name="websocket-slot-heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self._slots.release_process(self._process)
