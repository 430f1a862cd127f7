"""SQL for usage events: the batch insert with its pre-aggregates, and window aggregates.

The insert is one statement per batch, of arrays (``unnest``), on the task's asyncpg
connection: the events go in with ``ON CONFLICT DO NOTHING`` on the idempotency key, and the
same statement adds what it inserted to the hourly aggregates, so a duplicate is counted nowhere
and the aggregates are always those of the stored events. Events are inserted in key order and
aggregates updated in key order, so concurrent batches wait for each other instead of
deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from db.connection import Database, Row

__all__ = ["EventRow", "UsageEventRepository", "Window"]


@dataclass(slots=True)
class EventRow:
    id: str
    idempotency_key: str
    subscription_id: str
    customer_id: str
    metric_id: str
    value: Decimal
    unique_key: str | None
    properties: str  # JSON text
    occurred_at: datetime
    counted: bool
    # The billing period it falls in (for unique counts per period); None when unknown.
    period_start: datetime | None = None


_INSERT = """
WITH input AS (
    SELECT id, idempotency_key, subscription_id, customer_id, metric_id, value, unique_key,
           properties, timestamptz 'epoch' + occurred_us * interval '1 microsecond' AS occurred_at,
           counted, timestamptz 'epoch' + period_us * interval '1 microsecond' AS period_start
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[]::numeric[], $8::text[], $9::jsonb[], $10::int8[], $11::bool[],
                $12::int8[])
        AS e(id, idempotency_key, subscription_id, customer_id, metric_id, value, unique_key,
             properties, occurred_us, counted, period_us)
), inserted AS (
    INSERT INTO usage_events (organization_id, id, idempotency_key, subscription_id,
                              customer_id, metric_id, value, unique_key, properties,
                              occurred_at, counted)
    SELECT $1, id, idempotency_key, subscription_id, customer_id, metric_id, value,
           unique_key, properties, occurred_at, counted
    FROM input
    ON CONFLICT (organization_id, idempotency_key) DO NOTHING
    RETURNING idempotency_key, subscription_id, metric_id, value, unique_key, occurred_at,
              counted
), periods AS (
    INSERT INTO usage_period_uniques (organization_id, subscription_id, metric_id,
                                      period_start, unique_key)
    SELECT DISTINCT $1, i.subscription_id, i.metric_id, e.period_start, i.unique_key
    FROM inserted i JOIN input e USING (idempotency_key)
    WHERE i.counted AND i.unique_key IS NOT NULL AND e.period_start IS NOT NULL
    ORDER BY 2, 3, 4, 5
    ON CONFLICT DO NOTHING
    RETURNING 1
), hourly AS (
    INSERT INTO usage_hourly AS h (organization_id, subscription_id, metric_id, hour, events,
                                   total, maximum, latest_at, latest_value)
    SELECT $1, subscription_id, metric_id, date_trunc('hour', occurred_at, 'UTC'), count(*),
           sum(value), max(value), max(occurred_at),
           (array_agg(value ORDER BY occurred_at DESC, value DESC))[1]
    FROM inserted WHERE counted
    GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (organization_id, subscription_id, metric_id, hour) DO UPDATE SET
        events = h.events + excluded.events,
        total = h.total + excluded.total,
        maximum = greatest(h.maximum, excluded.maximum),
        latest_value = CASE
            WHEN excluded.latest_at > h.latest_at THEN excluded.latest_value
            WHEN excluded.latest_at = h.latest_at
                THEN greatest(h.latest_value, excluded.latest_value)
            ELSE h.latest_value END,
        latest_at = greatest(h.latest_at, excluded.latest_at)
    RETURNING 1
), uniques AS (
    INSERT INTO usage_hourly_uniques (organization_id, subscription_id, metric_id, hour,
                                      unique_key)
    SELECT DISTINCT $1, subscription_id, metric_id, date_trunc('hour', occurred_at, 'UTC'),
           unique_key
    FROM inserted WHERE counted AND unique_key IS NOT NULL
    ORDER BY 2, 3, 4, 5
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT idempotency_key FROM input EXCEPT SELECT idempotency_key FROM inserted
"""

# Shared locks per subscription for ingestion, exclusive for rating (UsageChargeRepository):
# an event is either in the aggregate a rating reads or seen as late by the rating's record.
_LOCK_SHARED = """
SELECT pg_advisory_xact_lock_shared(hashtextextended('usage:' || $1 || ':' || s, 0))
FROM unnest($2::text[]) AS s ORDER BY s
"""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """Microseconds since 1970-01-01 UTC, exactly."""
    return (at - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) split into whole hours (read from the aggregates) and the partial hours
    at its edges (read from the events)."""

    start: datetime
    end: datetime
    hours_from: datetime
    hours_to: datetime

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Window:
        first = start.replace(minute=0, second=0, microsecond=0)
        if first < start:
            first += timedelta(hours=1)
        last = end.replace(minute=0, second=0, microsecond=0)
        if first >= last:
            first = last = end  # no whole hour: every event is read from the events
        return cls(start, end, first, last)


# Aggregates of (subscription, metric, window) triples, one statement for all of them.
_TARGETS = """
WITH w AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                         $6::timestamptz[], $7::timestamptz[])
        AS w(subscription_id, metric_id, hours_from, hours_to, start_at, end_at)
)
"""
_EDGES = """
      AND ((occurred_at >= w.start_at AND occurred_at < w.hours_from)
           OR (occurred_at >= w.hours_to AND occurred_at < w.end_at))
"""
_AGGREGATES = (
    _TARGETS
    + """
SELECT w.subscription_id, w.metric_id, sum(p.events) AS events, sum(p.total) AS total,
       max(p.maximum) AS maximum,
       (array_agg(p.latest_value ORDER BY p.latest_at DESC, p.latest_value DESC))[1] AS latest
FROM w CROSS JOIN LATERAL (
    SELECT events, total, maximum, latest_at, latest_value
    FROM usage_hourly
    WHERE organization_id = $1 AND subscription_id = w.subscription_id
      AND metric_id = w.metric_id AND hour >= w.hours_from AND hour < w.hours_to
    UNION ALL
    SELECT 1, value, value, occurred_at, value
    FROM usage_events
    WHERE organization_id = $1 AND subscription_id = w.subscription_id
      AND metric_id = w.metric_id AND counted"""
    + _EDGES
    + """
) p
GROUP BY w.subscription_id, w.metric_id
"""
)
_UNIQUES = (
    _TARGETS
    + """
SELECT w.subscription_id, w.metric_id, count(DISTINCT p.unique_key) AS uniques
FROM w CROSS JOIN LATERAL (
    SELECT unique_key FROM usage_hourly_uniques
    WHERE organization_id = $1 AND subscription_id = w.subscription_id
      AND metric_id = w.metric_id AND hour >= w.hours_from AND hour < w.hours_to
    UNION ALL
    SELECT unique_key FROM usage_events
    WHERE organization_id = $1 AND subscription_id = w.subscription_id
      AND metric_id = w.metric_id AND counted"""
    + _EDGES
    + """
) p
GROUP BY w.subscription_id, w.metric_id
"""
)

_BUCKETS = """
WITH parts AS (
    SELECT date_trunc($4, hour, 'UTC') AS bucket, events, total, maximum, latest_at,
           latest_value
    FROM usage_hourly
    WHERE organization_id = $1 AND subscription_id = $2 AND metric_id = $3
      AND hour >= $5 AND hour < $6
    UNION ALL
    SELECT date_trunc($4, occurred_at, 'UTC'), 1, value, value, occurred_at, value
    FROM usage_events
    WHERE organization_id = $1 AND subscription_id = $2 AND metric_id = $3 AND counted
      AND ((occurred_at >= $7 AND occurred_at < $5) OR (occurred_at >= $6 AND occurred_at < $8))
)
SELECT bucket, sum(events) AS events, sum(total) AS total, max(maximum) AS maximum,
       (array_agg(latest_value ORDER BY latest_at DESC, latest_value DESC))[1] AS latest
FROM parts GROUP BY bucket ORDER BY bucket
"""

_UNIQUE_BUCKETS = """
SELECT bucket, count(DISTINCT unique_key) AS uniques FROM (
    SELECT date_trunc($4, hour, 'UTC') AS bucket, unique_key FROM usage_hourly_uniques
    WHERE organization_id = $1 AND subscription_id = $2 AND metric_id = $3
      AND hour >= $5 AND hour < $6
    UNION ALL
    SELECT date_trunc($4, occurred_at, 'UTC'), unique_key FROM usage_events
    WHERE organization_id = $1 AND subscription_id = $2 AND metric_id = $3 AND counted
      AND ((occurred_at >= $7 AND occurred_at < $5) OR (occurred_at >= $6 AND occurred_at < $8))
) u GROUP BY bucket ORDER BY bucket
"""


class UsageEventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lock_subscriptions(self, org: str, subscription_ids: Sequence[str]) -> None:
        """Take the shared usage lock of each subscription (call it in a transaction)."""
        async with self._db.raw_connection() as conn:
            self._db.record(_LOCK_SHARED)
            await conn.execute(_LOCK_SHARED, org, sorted(set(subscription_ids)))

    async def insert(self, org: str, events: Sequence[EventRow]) -> set[str]:
        """Insert ``events`` (sorted by idempotency key, each key once) with their aggregates;
        the keys that were stored already (duplicates, not inserted again). Usually none: the
        answer is the exceptions, not a row per event."""
        if not events:
            return set()
        columns: list[list[Any]] = [[] for _ in range(11)]
        # Times as integer microseconds since 1970 (exact in a float64 too, up to year 2255):
        # asyncpg encodes a timestamptz through three datetime operations, an int8 directly.
        micros: dict[datetime, int] = {}
        for e in events:
            columns[0].append(e.id)
            columns[1].append(e.idempotency_key)
            columns[2].append(e.subscription_id)
            columns[3].append(e.customer_id)
            columns[4].append(e.metric_id)
            columns[5].append(str(e.value))  # as text: asyncpg encodes numeric 3x slower
            columns[6].append(e.unique_key)
            columns[7].append(e.properties)
            columns[8].append(_micros(e.occurred_at))
            columns[9].append(e.counted)
            period = e.period_start
            if period is None:
                columns[10].append(None)
            else:
                found = micros.get(period)
                if found is None:
                    found = micros[period] = _micros(period)
                columns[10].append(found)
        async with self._db.raw_connection() as conn:
            self._db.record(_INSERT)
            rows = await conn.fetch(_INSERT, org, *columns)
        return {row[0] for row in rows}

    async def aggregates(
        self, org: str, targets: Sequence[tuple[str, str, Window]], *, unique: bool = False
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (subscription, metric, window) target: events, total, maximum and latest (or,
        with ``unique``, the distinct count ``uniques``), keyed by (subscription, metric); a
        target with no event is missing. One statement whatever the number of targets."""
        if not targets:
            return {}
        columns: list[list[Any]] = [[], [], [], [], [], []]
        for subscription_id, metric_id, window in targets:
            columns[0].append(subscription_id)
            columns[1].append(metric_id)
            columns[2].append(window.hours_from)
            columns[3].append(window.hours_to)
            columns[4].append(window.start)
            columns[5].append(window.end)
        statement = _UNIQUES if unique else _AGGREGATES
        async with self._db.raw_connection() as conn:
            self._db.record(statement)
            rows = await conn.fetch(statement, org, *columns)
        return {(r["subscription_id"], r["metric_id"]): dict(r) for r in rows}

    async def period_uniques(
        self, org: str, targets: Sequence[tuple[str, str, datetime]]
    ) -> dict[tuple[str, str], int]:
        """Distinct values per (subscription, metric, period start), keyed by (subscription,
        metric); one statement."""
        if not targets:
            return {}
        statement = """
        SELECT t.subscription_id, t.metric_id, count(u.unique_key) AS uniques
        FROM unnest($2::text[], $3::text[], $4::timestamptz[])
             AS t(subscription_id, metric_id, period_start)
        JOIN usage_period_uniques u
          ON u.organization_id = $1 AND u.subscription_id = t.subscription_id
         AND u.metric_id = t.metric_id AND u.period_start = t.period_start
        GROUP BY t.subscription_id, t.metric_id
        """
        subs, metrics, starts = zip(*targets, strict=True)
        async with self._db.raw_connection() as conn:
            self._db.record(statement)
            rows = await conn.fetch(statement, org, list(subs), list(metrics), list(starts))
        return {(r["subscription_id"], r["metric_id"]): int(r["uniques"]) for r in rows}

    async def buckets(
        self,
        org: str,
        subscription_id: str,
        metric_id: str,
        window: Window,
        *,
        unit: str,
        unique: bool,
    ) -> list[Row]:
        """Per ``unit`` ('hour' or 'day', UTC) bucket of ``window``: the aggregates (or the
        distinct count, with ``unique``) of the buckets that have events, in order."""
        args = (
            org,
            subscription_id,
            metric_id,
            unit,
            window.hours_from,
            window.hours_to,
            window.start,
            window.end,
        )
        statement = _UNIQUE_BUCKETS if unique else _BUCKETS
        async with self._db.raw_connection() as conn:
            self._db.record(statement)
            return [dict(row) for row in await conn.fetch(statement, *args)]

    async def subscriptions(
        self, org: str, subscription_ids: Sequence[str], customer_ids: Sequence[str]
    ) -> list[Row]:
        """The subscriptions named, and the live ones of the customers named, each with the
        metric ids its plan prices, when it started (by the organization's clock: its trial's
        start, else its first period's), its current period and the end of what usage billed."""
        statement = """
        SELECT s.id, s.customer_id, s.status, s.ended_at,
               coalesce(s.trial_start, s.billing_anchor) AS started_at,
               s.current_period_start, s.current_period_end,
               coalesce((SELECT array_agg(mp.metric_id) FROM metered_prices mp
                         WHERE mp.organization_id = s.organization_id
                           AND mp.plan_id = s.plan_id), '{}') AS metric_ids,
               (SELECT max(c.period_end) FROM usage_charges c
                 WHERE c.organization_id = s.organization_id AND c.subscription_id = s.id
                   AND c.kind = 'usage') AS billed_until
        FROM subscriptions s
        WHERE s.organization_id = $1
          AND (s.id = ANY($2::text[])
               OR (s.customer_id = ANY($3::text[])
                   AND s.status NOT IN ('canceled', 'incomplete_expired')))
        """
        async with self._db.raw_connection() as conn:
            self._db.record(statement)
            rows = await conn.fetch(statement, org, list(subscription_ids), list(customer_ids))
        return [dict(row) for row in rows]
