"""SQL for statistics: the additive upserts that keep the rollups, the subscription ledger, and
the reads that answer from them (with the raw rows only at the edges of a range)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from db.connection import Database, Row
from db.repositories.base import any_of
from db.tables import (
    mrr_movement_days,
    payment_declines,
    payments,
    plans,
    refunds,
    revenue_rollups,
    revenue_totals,
    subscription_stat_days,
    subscription_stat_events,
    subscription_stat_totals,
)

__all__ = [
    "MOVEMENT_COLUMNS",
    "REVENUE_COLUMNS",
    "DeclineRow",
    "StatisticsRepository",
    "SubscriptionChangeRow",
]

REVENUE_COLUMNS = ("gross", "payments", "failed", "refunded", "refunds")
MOVEMENT_COLUMNS = tuple(
    c.name for c in mrr_movement_days.c if c.name not in ("organization_id", "currency", "day")
)


_ADD = ", ".join(f"{c} = {{alias}}.{c} + EXCLUDED.{c}" for c in REVENUE_COLUMNS)


@functools.cache
def _revenue_upsert(buckets: int) -> str:
    """The upsert of ``buckets`` rollup rows (keys in order) and their currency's totals."""
    columns = ", ".join(REVENUE_COLUMNS)
    rows = ", ".join(
        f"(:org, :currency, :b{n}, " + ", ".join(f":b{n}_{c}" for c in REVENUE_COLUMNS) + ")"
        for n in range(buckets)
    )
    totals = ", ".join(f":t_{c}" for c in REVENUE_COLUMNS)
    return (
        f"WITH totals AS (INSERT INTO revenue_totals AS t (organization_id, currency, {columns}) "
        f"VALUES (:org, :currency, {totals}) "
        f"ON CONFLICT (organization_id, currency) DO UPDATE SET {_ADD.format(alias='t')}) "
        f"INSERT INTO revenue_rollups AS r (organization_id, currency, bucket, {columns}) "
        f"VALUES {rows} "
        f"ON CONFLICT (organization_id, currency, bucket) DO UPDATE SET {_ADD.format(alias='r')}"
    )


# A declined charge attempt and what it adds to the rollups, counted only if the attempt was
# not recorded before: the rollup upserts read the inserted row, so a conflict (a replay of the
# same attempt, or a concurrent recorder of it that committed first) adds nothing. As in
# _revenue_upsert, the unreferenced totals CTE runs after the bucket's upsert.
_DECLINE = """
WITH decline AS (
    INSERT INTO payment_declines (organization_id, payment_id, attempt_key, customer_id,
                                  currency, amount, failure_code, declined_at)
    VALUES (:org, :payment, :attempt, :customer, :currency, :amount, :code, :at)
    ON CONFLICT (organization_id, payment_id, attempt_key) DO NOTHING
    RETURNING organization_id, currency
), totals AS (
    INSERT INTO revenue_totals AS t (organization_id, currency, failed)
    SELECT organization_id, currency, 1 FROM decline
    ON CONFLICT (organization_id, currency) DO UPDATE SET failed = t.failed + 1
)
INSERT INTO revenue_rollups AS r (organization_id, currency, bucket, failed)
SELECT organization_id, currency, CAST(:bucket AS timestamptz), 1 FROM decline
ON CONFLICT (organization_id, currency, bucket) DO UPDATE SET failed = r.failed + 1
RETURNING 1 AS counted
"""

_LOCK_STATE = """
SELECT clock.now, state.*
FROM (SELECT organization_clock(:org) AS now) AS clock
LEFT JOIN LATERAL (
    SELECT * FROM subscription_stat_states
    WHERE organization_id = :org AND subscription_id = :id
    FOR UPDATE
) AS state ON true
"""
_CURRENT = """
SELECT customer_id, currency, plan_id, status, stats_subscription_mrr(s) AS mrr
FROM subscriptions s WHERE organization_id = :org AND id = :id
"""
_CUSTOMER_MRR = """
INSERT INTO customer_mrr_states AS c (organization_id, customer_id, currency, mrr, episodes)
VALUES (:org, :customer, :currency, :initial, :first)
ON CONFLICT (organization_id, customer_id, currency) DO UPDATE
SET mrr = c.mrr + CAST(:delta AS bigint),
    episodes = c.episodes + CASE WHEN c.mrr = 0 AND CAST(:delta AS bigint) > 0 THEN 1 ELSE 0 END
RETURNING mrr, episodes
"""


@functools.cache
def _subscription_change(counts: int, movement: bool) -> str:
    """The statement recording one subscription change with ``counts`` (currency, plan,
    status) deltas, and a movement-rollup delta if ``movement``."""
    parts = [
        "state AS (INSERT INTO subscription_stat_states AS s (organization_id, subscription_id, "
        "customer_id, currency, plan_id, status, mrr, recorded_at) "
        "VALUES (:org, :sub, :customer, :currency, :plan, :status, :mrr, :at) "
        "ON CONFLICT (organization_id, subscription_id) DO UPDATE SET "
        "customer_id = EXCLUDED.customer_id, currency = EXCLUDED.currency, "
        "plan_id = EXCLUDED.plan_id, status = EXCLUDED.status, mrr = EXCLUDED.mrr, "
        "recorded_at = EXCLUDED.recorded_at)"
    ]
    if counts:
        rows = [
            f":c{n}_currency, :c{n}_plan, :c{n}_status, :c{n}_subscriptions, :c{n}_mrr"
            for n in range(counts)
        ]
        add = (
            "subscriptions = {0}.subscriptions + EXCLUDED.subscriptions, "
            "mrr = {0}.mrr + EXCLUDED.mrr"
        )
        parts.append(
            "totals AS (INSERT INTO subscription_stat_totals AS t (organization_id, currency, "
            "plan_id, status, subscriptions, mrr) VALUES "
            + ", ".join(f"(:org, {row})" for row in rows)
            + " ON CONFLICT (organization_id, currency, plan_id, status) DO UPDATE SET "
            + add.format("t")
            + ")"
        )
        parts.append(
            "days AS (INSERT INTO subscription_stat_days AS d (organization_id, day, currency, "
            "plan_id, status, subscriptions, mrr) VALUES "
            + ", ".join(f"(:org, :day, {row})" for row in rows)
            + " ON CONFLICT (organization_id, day, currency, plan_id, status) DO UPDATE SET "
            + add.format("d")
            + ")"
        )
    if movement:
        columns = ", ".join(MOVEMENT_COLUMNS)
        parts.append(
            f"movement AS (INSERT INTO mrr_movement_days AS m (organization_id, currency, day, "
            f"{columns}) VALUES (:org, :currency, :day, "
            + ", ".join(f":m_{c}" for c in MOVEMENT_COLUMNS)
            + ") ON CONFLICT (organization_id, currency, day) DO UPDATE SET "
            + ", ".join(f"{c} = m.{c} + EXCLUDED.{c}" for c in MOVEMENT_COLUMNS)
            + ")"
        )
    return (
        "WITH "
        + ", ".join(parts)
        + " INSERT INTO subscription_stat_events (organization_id, occurred_at, subscription_id, "
        "customer_id, currency, plan_before, status_before, mrr_before, plan_after, status_after, "
        "mrr_after, movement) VALUES (:org, :at, :sub, :customer, :currency, :plan_before, "
        ":status_before, :mrr_before, :plan, :status, :mrr, :movement)"
    )


@dataclass(frozen=True, slots=True)
class DeclineRow:
    """One declined charge attempt of a payment (a ``payment_declines`` row)."""

    organization_id: str
    payment_id: str
    attempt_key: str
    customer_id: str
    currency: str
    amount: int
    failure_code: str | None
    declined_at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionChangeRow:
    """One subscription change to record: its ledger row and what it adds to the rollups."""

    event: dict[str, Any]
    state: dict[str, Any]
    counts: list[dict[str, Any]]  # (currency, plan_id, status) -> subscriptions, mrr deltas
    movement: dict[str, Any] | None  # mrr_movement_days deltas, if any


class StatisticsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- revenue: writes -----------------------------------------------------------------------

    async def add_revenue(
        self, org: str, deltas: Mapping[tuple[str, datetime], Mapping[str, int]]
    ) -> None:
        """Add ``deltas`` (per currency and bucket) to the revenue rollups and the all-time
        totals: one statement per currency (a payment or refund has one). Plain SQL: this runs
        in every payment's transaction, and building the statement with SQLAlchemy costs more
        CPU than running it."""
        by_currency: dict[str, list[tuple[datetime, Mapping[str, int]]]] = {}
        for (currency, bucket), numbers in sorted(deltas.items()):
            by_currency.setdefault(currency, []).append((bucket, numbers))
        for currency, buckets in by_currency.items():
            values: dict[str, Any] = {"org": org, "currency": currency}
            for name in REVENUE_COLUMNS:
                values[f"t_{name}"] = sum(numbers.get(name, 0) for _, numbers in buckets)
            for n, (bucket, numbers) in enumerate(buckets):
                values[f"b{n}"] = bucket
                values.update({f"b{n}_{name}": numbers.get(name, 0) for name in REVENUE_COLUMNS})
            await self._db.execute(_revenue_upsert(len(buckets)), values)

    async def add_decline(self, decline: DeclineRow, bucket: datetime) -> bool:
        """Record the declined attempt and count it in ``bucket`` (its 15-minute bucket) and
        the totals, in one statement; False, and nothing written, when that attempt of that
        payment was recorded already."""
        values = {
            "org": decline.organization_id,
            "payment": decline.payment_id,
            "attempt": decline.attempt_key,
            "customer": decline.customer_id,
            "currency": decline.currency,
            "amount": decline.amount,
            "code": decline.failure_code,
            "at": decline.declined_at,
            "bucket": bucket,
        }
        return await self._db.fetch_one(_DECLINE, values) is not None

    # -- revenue: reads ------------------------------------------------------------------------

    async def usage_billed_by_period(
        self,
        org: str,
        *,
        start: datetime,
        end: datetime,
        bounds: Sequence[datetime],
        currency: str | None,
    ) -> Sequence[Row]:
        """What usage billed (metered charges, minus included credits, plus late-usage
        adjustments) in ``[start, end)`` by the organization's clock, except on invoices
        voided since, per currency and period (the 1-based index into ``bounds``, the
        periods' starts)."""
        statement = """
        SELECT s.currency, width_bucket(c.billed_at, $4::timestamptz[]) AS period,
               sum(c.amount)::bigint AS usage_billed
        FROM usage_charges c
        JOIN subscriptions s
          ON s.organization_id = c.organization_id AND s.id = c.subscription_id
        LEFT JOIN invoices i
          ON i.organization_id = c.organization_id AND i.id = c.invoice_id
        WHERE c.organization_id = $1 AND c.billed_at >= $2 AND c.billed_at < $3
          AND (i.status IS NULL OR i.status <> 'void')
          AND ($5::text IS NULL OR s.currency = $5)
        GROUP BY 1, 2
        """
        async with self._db.raw_connection() as conn:
            self._db.record(statement)
            rows = await conn.fetch(statement, org, start, end, list(bounds), currency)
        return [dict(row) for row in rows]

    async def revenue_by_period(
        self,
        org: str,
        *,
        start: datetime,
        end: datetime,
        inner: tuple[datetime, datetime],
        bounds: Sequence[datetime],
        currency: str | None,
    ) -> Sequence[Row]:
        """Sums per currency and period over ``[start, end)``; ``bounds`` are the periods'
        starts (ascending, the first ``start``), and a row's ``period`` is the 1-based index of
        its period. The whole buckets of ``inner`` come from the rollups, the rest (less than a
        bucket at each end) from the payments, declines and refunds themselves."""
        # The caller's period starts, not the database's time zone rules: the periods are
        # exactly those reported, whatever tz data the server has.
        starts = sa.cast(
            sa.literal(list(bounds), ARRAY(sa.DateTime(timezone=True))),
            ARRAY(sa.DateTime(timezone=True)),
        )

        def period(column: Any) -> Any:
            return sa.func.width_bucket(column, starts).label("period")

        def edge(column: Any) -> Any:
            return sa.or_(
                sa.and_(column >= start, column < inner[0]),
                sa.and_(column >= inner[1], column < end),
            )

        # Constants, not parameters: `databases` sends parameters untyped, and PostgreSQL
        # would read an untyped one in a UNION's select list as text.
        zero = sa.literal_column("0::bigint", sa.BigInteger)
        one = sa.literal_column("1::bigint", sa.BigInteger)
        r, p, d, f = revenue_rollups.c, payments.c, payment_declines.c, refunds.c
        parts = [
            sa.select(r.currency, period(r.bucket), r.gross, r.payments, r.failed)
            .add_columns(r.refunded, r.refunds)
            .where(r.organization_id == org, r.bucket >= inner[0], r.bucket < inner[1]),
            sa.select(p.currency, period(p.succeeded_at), p.amount_captured, one, zero)
            .add_columns(zero, zero)
            .where(p.organization_id == org, edge(p.succeeded_at)),
            sa.select(d.currency, period(d.declined_at), zero, zero, one)
            .add_columns(zero, zero)
            .where(d.organization_id == org, edge(d.declined_at)),
            sa.select(f.currency, period(f.succeeded_at), zero, zero, zero)
            .add_columns(f.amount, one)
            .where(f.organization_id == org, f.status == "succeeded", edge(f.succeeded_at)),
        ]
        if currency is not None:
            parts = [part.where(part.selected_columns[0] == currency) for part in parts]
        union = sa.union_all(*parts).subquery("parts")
        u = union.c
        names = list(u.keys())[2:]
        query = (
            sa.select(
                u.currency,
                u.period,
                *(
                    sa.func.coalesce(sa.func.sum(u[name]), 0).label(column)
                    for name, column in zip(names, REVENUE_COLUMNS, strict=True)
                ),
            )
            .group_by(u.currency, u.period)
            .order_by(u.currency, u.period)
        )
        return await self._db.fetch_all(query)

    async def revenue_totals(self, org: str, currency: str | None) -> Sequence[Row]:
        """All-time sums per currency."""
        t = revenue_totals.c
        query = sa.select(t.currency, *(t[c] for c in REVENUE_COLUMNS)).where(
            t.organization_id == org
        )
        if currency is not None:
            query = query.where(t.currency == currency)
        return await self._db.fetch_all(query.order_by(t.currency))

    # -- subscriptions: writes -----------------------------------------------------------------

    async def lock_state(self, org: str, subscription_id: str) -> tuple[datetime, Row | None]:
        """The organization's clock, and the subscription's recorded state locked until the end
        of the transaction (None before its first change)."""
        row = await self._db.fetch_one(_LOCK_STATE, {"org": org, "id": subscription_id})
        assert row is not None
        return row["now"], (row if row["subscription_id"] is not None else None)

    async def current_subscription(self, org: str, subscription_id: str) -> Row | None:
        """The subscription's statistics inputs now, with its MRR by the SQL definition."""
        return await self._db.fetch_one(_CURRENT, {"org": org, "id": subscription_id})

    async def add_customer_mrr(
        self, org: str, customer_id: str, currency: str, delta: int
    ) -> tuple[int, int]:
        """Move the customer's MRR in ``currency`` by ``delta``; its new MRR and how many
        times it has gone from none to some (this change included). Locks the row."""
        values = {
            "org": org,
            "customer": customer_id,
            "currency": currency,
            # The INSERT row must pass the CHECKs even when it conflicts, so it holds what a
            # new row would (a customer's first change can only add); the UPDATE adds delta.
            "initial": max(delta, 0),
            "first": 1 if delta > 0 else 0,
            "delta": delta,
        }
        row = await self._db.fetch_one(_CUSTOMER_MRR, values)
        assert row is not None
        return int(row["mrr"]), int(row["episodes"])

    async def record_subscription_change(self, org: str, change: SubscriptionChangeRow) -> None:
        """The ledger row, the new state, and the rollup deltas: one statement (plain SQL, as
        it runs in every subscription change's transaction)."""
        event = change.event
        values: dict[str, Any] = {
            "org": org,
            "sub": event["subscription_id"],
            "customer": event["customer_id"],
            "currency": event["currency"],
            "plan_before": event["plan_before"],
            "status_before": event["status_before"],
            "mrr_before": event["mrr_before"],
            "plan": event["plan_after"],
            "status": event["status_after"],
            "mrr": event["mrr_after"],
            "movement": event["movement"],
            "at": event["occurred_at"],
            "day": _day(event["occurred_at"]),
        }
        counts = sorted(change.counts, key=lambda r: (r["currency"], r["plan_id"], r["status"]))
        for n, row in enumerate(counts):
            values.update(
                {
                    f"c{n}_currency": row["currency"],
                    f"c{n}_plan": row["plan_id"],
                    f"c{n}_status": row["status"],
                    f"c{n}_subscriptions": row["subscriptions"],
                    f"c{n}_mrr": row["mrr"],
                }
            )
        if change.movement is not None:
            values.update({f"m_{c}": change.movement.get(c, 0) for c in MOVEMENT_COLUMNS})
        query = _subscription_change(len(counts), change.movement is not None)
        await self._db.execute(query, values)

    # -- subscriptions: reads ------------------------------------------------------------------

    async def totals(self, org: str) -> Sequence[Row]:
        t = subscription_stat_totals.c
        return await self._db.fetch_all(
            sa.select(t.currency, t.plan_id, t.status, t.subscriptions, t.mrr).where(
                t.organization_id == org
            )
        )

    async def count_changes_after(self, org: str, day: date) -> Sequence[Row]:
        """The changes of the UTC days after ``day``, summed per currency, plan and status."""
        d = subscription_stat_days.c
        query = (
            sa.select(
                d.currency,
                d.plan_id,
                d.status,
                sa.func.sum(d.subscriptions).label("subscriptions"),
                sa.func.sum(d.mrr).label("mrr"),
            )
            .where(d.organization_id == org, d.day > day)
            .group_by(d.currency, d.plan_id, d.status)
        )
        return await self._db.fetch_all(query)

    async def events(self, org: str, ranges: Iterable[tuple[datetime, datetime]]) -> Sequence[Row]:
        """Ledger rows whose time is in one of the ``[start, end)`` ranges, oldest first."""
        e = subscription_stat_events.c
        within = [sa.and_(e.occurred_at >= a, e.occurred_at < b) for a, b in ranges if a < b]
        if not within:
            return []
        query = (
            sa.select(subscription_stat_events)
            .where(e.organization_id == org, sa.or_(*within))
            .order_by(e.occurred_at, e.id)
        )
        return await self._db.fetch_all(query)

    async def movement_windows(
        self, org: str, windows: Mapping[str, tuple[date | None, date | None]]
    ) -> Sequence[Row]:
        """Movement sums per currency over each named window of UTC days (``first`` to
        ``last``, inclusive; None: unbounded), in one scan: column ``<window>__<sum>``."""
        m = mrr_movement_days.c
        columns = []
        for name, (first, last) in windows.items():
            within: list[sa.ColumnElement[bool]] = [sa.true()]
            if first is not None:
                within.append(m.day >= first)
            if last is not None:
                within.append(m.day <= last)
            condition = sa.and_(*within)
            columns += [
                sa.func.coalesce(sa.func.sum(m[c]).filter(condition), 0).label(f"{name}__{c}")
                for c in MOVEMENT_COLUMNS
            ]
        query = (
            sa.select(m.currency, *columns)
            .where(m.organization_id == org)
            .group_by(m.currency)
            .order_by(m.currency)
        )
        return await self._db.fetch_all(query)

    async def plans(self, org: str, plan_ids: Sequence[str]) -> Sequence[Row]:
        if not plan_ids:
            return []
        return await self._db.fetch_all(
            sa.select(plans.c.id, plans.c.name, plans.c.tier).where(
                plans.c.organization_id == org, plans.c.id == any_of(plan_ids)
            )
        )


def _day(at: datetime) -> date:
    """The UTC day of an instant."""
    return at.astimezone(UTC).date()
