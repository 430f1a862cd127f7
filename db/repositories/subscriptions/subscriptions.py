"""SQL for subscriptions: reads, guarded state changes, the worker's claim, pending lines (added,
shortened when the time they charge for ends early, reserved for the invoice that bills them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.connection import Row
from db.repositories.base import Filters, TableRepository, any_of
from db.tables import (
    customer_plan_families,
    subscription_pending_lines,
    subscriptions,
    test_clocks,
)

__all__ = ["LIVE_STATUSES", "LivePlanConflict", "SubscriptionRepository"]


class LivePlanConflict(Exception):
    """The customer already holds a live subscription to that plan."""


LIVE_STATUSES = ("trialing", "active", "past_due", "unpaid", "incomplete", "paused")
_LIVE_PREDICATE = "status IN (" + ", ".join(f"'{s}'" for s in LIVE_STATUSES) + ")"

# The organization's clock: its test clock when one is set, else the database's now().
_CLOCK = sa.func.coalesce(
    sa.select(test_clocks.c.frozen_at)
    .where(test_clocks.c.organization_id == subscriptions.c.organization_id)
    .scalar_subquery(),
    sa.func.now(),
)

_pending = subscription_pending_lines


class SubscriptionRepository(TableRepository):
    table = subscriptions

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        for name in ("customer_id", "status", "plan_id"):
            if filters.get(name) is not None:
                conditions.append(subscriptions.c[name] == filters[name])
        return conditions

    async def insert(self, values: Mapping[str, Any]) -> Row | None:
        """Insert; None when the customer already holds a live subscription to the plan."""
        query = (
            pg_insert(subscriptions)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=["organization_id", "customer_id", "plan_id"],
                # Literal, not bound parameters: PostgreSQL must prove at plan time that this
                # predicate implies the partial index's (a generic plan cannot with parameters).
                index_where=sa.text(_LIVE_PREDICATE),
            )
            .returning(*subscriptions.c)
        )
        return await self._db.fetch_one(query)

    async def claim_family(
        self, org: str, customer_id: str, family: str, subscription_id: str
    ) -> str:
        """Record that the customer holds a subscription on a plan of ``family`` and return the
        first subscription that ever did: ``subscription_id`` itself when the family is new to
        the customer. Call it in the transaction that creates or moves the subscription; a
        concurrent transaction claiming the same family waits for this one, then sees it."""
        families = customer_plan_families
        inserted = await self._db.fetch_one(
            pg_insert(families)
            .values(
                organization_id=org,
                customer_id=customer_id,
                family=family,
                subscription_id=subscription_id,
                created_at=sa.func.now(),
            )
            .on_conflict_do_nothing(index_elements=["organization_id", "customer_id", "family"])
            .returning(families.c.subscription_id)
        )
        if inserted is not None:
            return str(inserted["subscription_id"])
        first: str = await self._db.fetch_val(
            sa.select(families.c.subscription_id).where(
                families.c.organization_id == org,
                families.c.customer_id == customer_id,
                families.c.family == family,
            )
        )
        return first

    async def by_customer_ids(self, org: str, customer_ids: Sequence[str]) -> list[list[Row]]:
        rows = await self._db.fetch_all(
            sa.select(subscriptions)
            .where(
                subscriptions.c.organization_id == org,
                subscriptions.c.customer_id == any_of(sorted(set(customer_ids))),
            )
            .order_by(subscriptions.c.id)
        )
        grouped: dict[str, list[Row]] = {i: [] for i in customer_ids}
        for row in rows:
            grouped[row["customer_id"]].append(row)
        return [grouped[i] for i in customer_ids]

    async def transition(
        self,
        org: str,
        subscription_id: str,
        allowed: Iterable[str],
        values: Mapping[str, Any],
        *,
        same_period: tuple[int | None] | None = None,
    ) -> Row | None:
        """Apply ``values`` only if the status is one of ``allowed`` (and, when ``same_period``
        is given, the period index is still ``same_period[0]``): the state machine is enforced
        here, in SQL. None when the row is missing or no longer in such a state."""
        conditions = [
            subscriptions.c.organization_id == org,
            subscriptions.c.id == subscription_id,
            subscriptions.c.status == any_of(list(allowed)),
        ]
        if same_period is not None:
            conditions.append(subscriptions.c.period_index.is_not_distinct_from(same_period[0]))
        query = (
            sa.update(subscriptions)
            .where(*conditions)
            .values(**values, updated_at=sa.func.now())
            .returning(*subscriptions.c)
        )
        if "plan_id" not in values:
            return await self._db.fetch_one(query)
        try:
            async with self._db.transaction():  # a savepoint: the conflict must not abort ours
                return await self._db.fetch_one(query)
        except asyncpg.UniqueViolationError:
            raise LivePlanConflict from None

    async def claim_due(self, *, lease: timedelta, org: str | None = None) -> Row | None:
        """Take one subscription whose next action is due by its organization's clock: lock it
        (skipping rows other workers hold) and lease it for ``lease`` of real time, so other
        workers leave it alone while this one bills it, and take it over if this one dies."""
        candidate = (
            sa.select(subscriptions.c.organization_id, subscriptions.c.id)
            .where(subscriptions.c.next_action_at <= _CLOCK)
            .where(
                sa.or_(
                    subscriptions.c.leased_until.is_(None),
                    subscriptions.c.leased_until < sa.func.now(),
                )
            )
            .order_by(subscriptions.c.next_action_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if org is not None:
            candidate = candidate.where(subscriptions.c.organization_id == org)
        picked = candidate.cte("picked")
        query = (
            sa.update(subscriptions)
            .where(
                subscriptions.c.organization_id == picked.c.organization_id,
                subscriptions.c.id == picked.c.id,
            )
            .values(leased_until=sa.func.now() + lease)
            .returning(*subscriptions.c)
        )
        return await self._db.fetch_one(query)

    async def next_due(self, org: str, *, until: datetime) -> datetime | None:
        """The earliest scheduled action of the organization's subscriptions up to ``until``."""
        value: datetime | None = await self._db.fetch_val(
            sa.select(sa.func.min(subscriptions.c.next_action_at)).where(
                subscriptions.c.organization_id == org,
                subscriptions.c.next_action_at <= until,
            )
        )
        return value

    async def trials_ending(
        self, *, within: timedelta, org: str | None, limit: int
    ) -> Sequence[Row]:
        """Trialing subscriptions (of ``org``, or all) whose trial ends within ``within`` of
        their organization's clock and whose ``subscription.trial_will_end`` event for that
        trial end is not written yet."""
        return await self._db.fetch_all(
            "SELECT s.* FROM subscriptions s WHERE s.status = 'trialing' "
            "AND (CAST(:org AS text) IS NULL OR s.organization_id = :org) "
            "AND s.trial_end > organization_clock(s.organization_id) "
            "AND s.trial_end <= organization_clock(s.organization_id) "
            "    + CAST(:within AS interval) "
            "AND NOT EXISTS (SELECT 1 FROM webhook_events e "
            "    WHERE e.organization_id = s.organization_id "
            "    AND e.dedupe_key = 'trial_will_end:' || s.id || ':' || "
            "        to_char(s.trial_end AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS')) "
            "ORDER BY s.trial_end LIMIT :limit",
            {"org": org, "within": within, "limit": limit},
        )

    async def add_pending_lines(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            await self._db.execute(sa.insert(_pending).values(list(rows)))

    async def open_pending_lines(self, org: str, subscription_id: str) -> list[Row]:
        """The lines waiting for the next invoice and not reserved by a billing key yet, in
        the order they were added. Call it with the subscription's row locked (every change
        of pending lines does), so they cannot change or be taken meanwhile."""
        query = (
            sa.select(_pending)
            .where(
                _pending.c.organization_id == org,
                _pending.c.subscription_id == subscription_id,
                _pending.c.taken_by.is_(None),
            )
            .order_by(_pending.c.id)
        )
        return list(await self._db.fetch_all(query))

    async def shorten_pending_line(
        self, org: str, line_id: str, *, amount: int, period_end: datetime, description: str
    ) -> None:
        """Cut a waiting charge to end at ``period_end`` (``amount`` for the time it keeps);
        a line left with nothing to bill is removed."""
        where = (
            _pending.c.organization_id == org,
            _pending.c.id == line_id,
            _pending.c.taken_by.is_(None),
        )
        if amount == 0:
            await self._db.execute(sa.delete(_pending).where(*where))
            return
        await self._db.execute(
            sa.update(_pending)
            .where(*where)
            .values(amount=amount, period_end=period_end, description=description)
        )

    async def lines_taken_by(self, org: str, subscription_id: str, key: str) -> list[Row]:
        """The pending lines already reserved for the billing ``key``, in the order added."""
        mine = (
            sa.select(_pending)
            .where(
                _pending.c.organization_id == org,
                _pending.c.subscription_id == subscription_id,
                _pending.c.taken_by == key,
            )
            .order_by(_pending.c.id)
        )
        return list(await self._db.fetch_all(mine))

    async def take_pending_lines(self, org: str, subscription_id: str, key: str) -> list[Row]:
        """The lines waiting for the next invoice, reserved for the billing ``key``. A retry with
        the same key gets the same lines back, so a retried period bills exactly what the first
        attempt did; lines added meanwhile wait for the following invoice."""
        rows = await self.lines_taken_by(org, subscription_id, key)
        if rows:
            return rows
        await self._db.execute(
            sa.update(_pending)
            .where(
                _pending.c.organization_id == org,
                _pending.c.subscription_id == subscription_id,
                _pending.c.taken_by.is_(None),
            )
            .values(taken_by=key)
        )
        return await self.lines_taken_by(org, subscription_id, key)
