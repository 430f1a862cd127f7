"""SQL for the Stripe-mirror lease of customers and plans (db/migrations/0011).

Nothing here holds a transaction open: each method is one statement, so the caller can reserve a
row, call Stripe with no connection held, and record the answer afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from asyncpg.exceptions import ForeignKeyViolationError
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Row
from db.repositories.base import TableRepository

__all__ = ["StripeMirrorRepository"]


def _lease_end(lease: timedelta) -> Any:
    return sa.func.now() + sa.literal(lease, sa.Interval())


class StripeMirrorRepository(TableRepository):
    """A table whose rows are mirrored at Stripe under a per-row lease."""

    def _key(self, org: str, row_id: str) -> list[sa.ColumnElement[bool]]:
        return [self._c.organization_id == org, self._c.id == row_id]

    async def get(self, org: str, row_id: str) -> Row | None:
        """The row, with ``sync_busy``: a lease on it is still running (database clock)."""
        busy = sa.and_(
            self._c.stripe_sync_token.is_not(None), self._c.stripe_sync_until > sa.func.now()
        )
        query = sa.select(self.table, busy.label("sync_busy")).where(*self._key(org, row_id))
        return await self._db.fetch_one(query)

    async def insert_reserved(
        self, values: Mapping[str, Any], *, token: str, lease: timedelta
    ) -> Row | None:
        """Insert a row whose Stripe object is still to be created, leased to ``token``; None
        when its natural unique key is taken."""
        query = pg_insert(self.table).values(
            **values,
            stripe_sync_token=token,
            stripe_sync_until=_lease_end(lease),
            stripe_synced=False,
        )
        if self.unique:
            query = query.on_conflict_do_nothing(index_elements=["organization_id", *self.unique])
        return await self._db.fetch_one(query.returning(*self.table.c))

    async def reserve(self, org: str, row_id: str, *, token: str, lease: timedelta) -> Row | None:
        """Lease the row to ``token`` unless another lease is still running; None if the row is
        missing or busy. A lease left behind by a holder that died may have reached Stripe, so
        taking it over marks the row not synced (the SET sees the old values)."""
        c = self._c
        query = (
            sa.update(self.table)
            .where(
                *self._key(org, row_id),
                sa.or_(c.stripe_sync_token.is_(None), c.stripe_sync_until <= sa.func.now()),
            )
            .values(
                stripe_sync_token=token,
                stripe_sync_until=_lease_end(lease),
                stripe_synced=sa.and_(c.stripe_synced, c.stripe_sync_token.is_(None)),
            )
            .returning(*self.table.c)
        )
        return await self._db.fetch_one(query)

    async def release(
        self,
        org: str,
        row_id: str,
        *,
        token: str,
        synced: bool | None,
        values: Mapping[str, Any] | None = None,
        where: sa.ColumnElement[bool] | None = None,
    ) -> Row | None:
        """End ``token``'s lease, writing ``values`` (and ``synced`` unless None) with it; None
        when the lease was lost (or ``where`` no longer holds): nothing is written then."""
        c = self._c
        query = sa.update(self.table).where(*self._key(org, row_id), c.stripe_sync_token == token)
        if where is not None:
            query = query.where(where)
        ended: dict[str, Any] = {"stripe_sync_token": None, "stripe_sync_until": None}
        if synced is not None:
            ended["stripe_synced"] = synced
        if values:
            ended.update(values, updated_at=sa.func.now())
        return await self._db.fetch_one(query.values(**ended).returning(*self.table.c))

    async def discard(self, org: str, row_id: str, *, token: str, stripe_id: str) -> bool:
        """Delete a row reserved by ``token`` whose Stripe object was never recorded (column
        ``stripe_id``): the compensation of a failed create. False when the lease was lost,
        the object was recorded meanwhile, or other rows already reference this one."""
        c = self._c
        query = (
            sa.delete(self.table)
            .where(*self._key(org, row_id), c.stripe_sync_token == token, c[stripe_id].is_(None))
            .returning(c.id)
        )
        try:
            return await self._db.fetch_one(query) is not None
        except ForeignKeyViolationError:
            return False
