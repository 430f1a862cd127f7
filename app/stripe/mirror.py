"""Writing a row's Stripe mirror (a customer's Customer, a plan's Product) without holding a
database transaction, or a pooled connection, while Stripe answers.

The pattern of payments and refunds, for objects that move no money: a short statement leases the
row (``hold``), Stripe is called with no connection held (``call``), and another short statement
records the answer and ends the lease (``finish``). Only one write to a row's Stripe object runs
at a time, so Stripe receives them in the order the database records them and the two cannot
disagree after concurrent changes. When Stripe's answer is unknown (a timeout, a dropped
connection, a crash) the row is marked not synced and its next write repairs it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from app.core.errors import DomainError, ErrorCode, NotFound, ProviderUnreachable
from db.connection import Row
from db.repositories.stripe.mirror import StripeMirrorRepository

__all__ = ["Held", "MirrorLeases"]

T = TypeVar("T")

_FIRST_PAUSE = 0.02
_LONGEST_PAUSE = 0.5


@dataclass(frozen=True)
class Held:
    """A row leased for one write to its Stripe object: the row as it was when leased."""

    org: str
    row_id: str
    token: str
    row: Row


class MirrorLeases:
    """The leases of one table's rows. ``lease`` outlasts any gateway call (each is bounded by
    the Stripe timeout), so a live holder is never taken over; ``wait`` is how long a change
    waits for another one to the same row before answering OPERATION_IN_PROGRESS."""

    def __init__(
        self, rows: StripeMirrorRepository, *, kind: str, lease: timedelta, wait: float
    ) -> None:
        self._rows = rows
        self._kind = kind
        self.lease = lease
        self._wait = wait

    @staticmethod
    def token() -> str:
        return secrets.token_hex(16)

    async def hold(self, org: str, row_id: str, field: tuple[str, ...]) -> Held:
        """Lease the row, waiting (with no connection held) while another write to its Stripe
        object is in flight."""
        token = self.token()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        pause = _FIRST_PAUSE
        while True:
            row = await self._rows.reserve(org, row_id, token=token, lease=self.lease)
            if row is not None:
                return Held(org, row_id, token, row)
            current = await self._rows.get(org, row_id)
            if current is None:
                raise NotFound(self._kind.capitalize(), field)
            if loop.time() >= deadline:
                raise DomainError(
                    ErrorCode.OPERATION_IN_PROGRESS,
                    f"Another change to this {self._kind} is being sent to Stripe; retry in a "
                    "moment.",
                    field=field,
                )
            if current["sync_busy"]:
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)

    async def call(self, held: Held, call: Callable[[], Awaitable[T]]) -> T:
        """Run one gateway call for ``held``. When it fails the lease ends: after an unknown
        outcome the row is marked not synced (Stripe may have done it); after a refusal it is
        left as it was (Stripe did nothing). Anything else (a cancelled request) leaves the lease
        to expire, which the next holder also reads as "not synced"."""
        try:
            return await call()
        except ProviderUnreachable:
            await self._rows.release(held.org, held.row_id, token=held.token, synced=False)
            raise
        except DomainError:
            await self._rows.release(held.org, held.row_id, token=held.token, synced=None)
            raise

    async def finish(
        self,
        held: Held,
        *,
        synced: bool | None,
        values: Mapping[str, Any] | None = None,
        where: sa.ColumnElement[bool] | None = None,
    ) -> Row:
        """Record what Stripe now holds and end the lease (``synced`` None: unchanged)."""
        row = await self._rows.release(
            held.org, held.row_id, token=held.token, synced=synced, values=values, where=where
        )
        if row is None:
            raise DomainError(
                ErrorCode.OPERATION_IN_PROGRESS,
                f"This change to the {self._kind} outlived its lease and another request took "
                "it over; read it again.",
            )
        return row

    async def end(self, held: Held) -> None:
        """End a lease that wrote nothing to Stripe."""
        await self._rows.release(held.org, held.row_id, token=held.token, synced=None)
