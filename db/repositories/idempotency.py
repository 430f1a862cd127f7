"""SQL for idempotency keys: claim, take over after a lease, complete, release, purge.

Each statement is a single conditional INSERT/UPDATE/DELETE, so two processes racing on one key
cannot both win: PostgreSQL decides, by the row and the database clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Database, Row
from db.tables import idempotency_keys

__all__ = ["IdempotencyRepository"]

_T = idempotency_keys
_ROW = (
    *_T.c,
    (_T.c.locked_until < sa.func.now()).label("lease_expired"),
    (_T.c.expires_at < sa.func.now()).label("expired"),
)


def _after(period: timedelta) -> Any:
    return sa.func.now() + sa.literal(period, sa.Interval())


class IdempotencyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(
        self,
        org: str,
        key: str,
        *,
        operation: str,
        request_hash: str,
        resource_id: str,
        token: str,
        lease: timedelta,
        retention: timedelta,
    ) -> Row | None:
        """Insert an in-flight key; None when the key exists."""
        query = (
            pg_insert(_T)
            .values(
                organization_id=org,
                key=key,
                operation=operation,
                request_hash=request_hash,
                resource_id=resource_id,
                state="in_flight",
                lease_token=token,
                locked_until=_after(lease),
                expires_at=_after(retention),
            )
            .on_conflict_do_nothing(index_elements=["organization_id", "key"])
            .returning(*_ROW)
        )
        return await self._db.fetch_one(query)

    async def get(self, org: str, key: str) -> Row | None:
        return await self._db.fetch_one(
            sa.select(*_ROW).where(_T.c.organization_id == org, _T.c.key == key)
        )

    async def take_over(
        self, org: str, key: str, *, request_hash: str, token: str, lease: timedelta
    ) -> Row | None:
        """Take an in-flight key whose lease expired (its request crashed or hung)."""
        query = (
            sa.update(_T)
            .where(
                _T.c.organization_id == org,
                _T.c.key == key,
                _T.c.state == "in_flight",
                _T.c.request_hash == request_hash,
                _T.c.locked_until < sa.func.now(),
            )
            .values(lease_token=token, locked_until=_after(lease), attempts=_T.c.attempts + 1)
            .returning(*_ROW)
        )
        return await self._db.fetch_one(query)

    async def replace_expired(
        self,
        org: str,
        key: str,
        *,
        operation: str,
        request_hash: str,
        resource_id: str,
        token: str,
        lease: timedelta,
        retention: timedelta,
    ) -> Row | None:
        """Reuse a key past its retention (and not in flight) as if it were new."""
        query = (
            sa.update(_T)
            .where(
                _T.c.organization_id == org,
                _T.c.key == key,
                _T.c.expires_at < sa.func.now(),
                _T.c.locked_until < sa.func.now(),
            )
            .values(
                operation=operation,
                request_hash=request_hash,
                resource_id=resource_id,
                state="in_flight",
                response=None,
                lease_token=token,
                locked_until=_after(lease),
                attempts=1,
                created_at=sa.func.now(),
                completed_at=None,
                expires_at=_after(retention),
            )
            .returning(*_ROW)
        )
        return await self._db.fetch_one(query)

    async def complete(
        self, org: str, key: str, *, token: str, response: dict[str, Any], retention: timedelta
    ) -> bool:
        """Store the result; False if this request no longer holds the key."""
        query = (
            sa.update(_T)
            .where(_T.c.organization_id == org, _T.c.key == key, _T.c.lease_token == token)
            .values(
                state="completed",
                response=response,
                completed_at=sa.func.now(),
                locked_until=sa.func.now(),
                expires_at=_after(retention),
            )
            .returning(_T.c.key)
        )
        return await self._db.fetch_one(query) is not None

    async def abandon(self, org: str, key: str, *, token: str) -> None:
        """Keep an in-flight key whose outcome is unknown, but let a retry take it over now."""
        await self._db.execute(
            sa.update(_T)
            .where(
                _T.c.organization_id == org,
                _T.c.key == key,
                _T.c.lease_token == token,
                _T.c.state == "in_flight",
            )
            .values(locked_until=sa.func.now() - sa.text("interval '1 second'"))
        )

    async def release(self, org: str, key: str, *, token: str) -> None:
        """Forget an in-flight key whose request changed nothing, so it can be used again."""
        await self._db.execute(
            sa.delete(_T).where(
                _T.c.organization_id == org,
                _T.c.key == key,
                _T.c.lease_token == token,
                _T.c.state == "in_flight",
            )
        )

    async def purge_expired(self, *, limit: int = 10_000) -> int:
        """Delete keys past their retention that are not in flight; returns how many."""
        doomed = (
            sa.select(_T.c.organization_id, _T.c.key)
            .where(_T.c.expires_at < sa.func.now(), _T.c.locked_until < sa.func.now())
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("doomed")
        )
        query = (
            sa.delete(_T)
            .where(
                sa.tuple_(_T.c.organization_id, _T.c.key).in_(
                    sa.select(doomed.c.organization_id, doomed.c.key)
                )
            )
            .returning(_T.c.key)
        )
        return len(await self._db.fetch_all(query))
