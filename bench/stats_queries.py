"""Statistics from the rollups next to the same figures from plain aggregate queries over the raw
tables, measured in the same run on the same freshly loaded database.

Loads (with INSERT ... SELECT generate_series) 1,000,000 payments over one year in three
currencies (90% succeeded, 7% failed, 3% open), 50,000 partial refunds, 100,000 subscriptions
of 50,000 customers on 12 plans (monthly, quarterly, yearly, weekly; every status) with some
coupons, then builds the rollups with the migration's builders and times, median of the runs:

  - revenueStats for the year by day (UTC, and America/New_York),
  - subscriptionStats (counts by status, plan and tier; MRR, ARR, customers per currency),
  - the dashboard snapshot (today, this month, all time, 30 days),

each next to a plain GROUP BY over payments/refunds/subscriptions giving the same figures (the
script checks they are equal). Also reports the cost of keeping the rollups: a payment's and a
subscription's statistics write, timed in the live path's own code.

    .venv/bin/python bench/stats_queries.py [payments] [subscriptions] [runs]

Uses a new database on DATABASE_URL's server when set, otherwise an embedded PostgreSQL it
starts (and stops); the database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.rollups.recorder import StatsRecorder
from app.statistics.service import StatisticsService, StatsInterval
from db.connection import Database
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

ORG = "bench"
YEAR = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 31, 18, 0, tzinfo=UTC)  # the organization's clock for the figures

PLANS = [  # id, tier, amount, currency, unit, count
    ("plan_b01", "free", 0, "USD", "month", 1),
    ("plan_b02", "basic", 900, "USD", "month", 1),
    ("plan_b03", "pro", 2900, "USD", "month", 1),
    ("plan_b04", "pro", 29000, "USD", "year", 1),
    ("plan_b05", "enterprise", 99000, "USD", "year", 1),
    ("plan_b06", "basic", 2500, "USD", "month", 3),
    ("plan_b07", "basic", 800, "EUR", "month", 1),
    ("plan_b08", "pro", 2600, "EUR", "month", 1),
    ("plan_b09", "pro", 26000, "EUR", "year", 1),
    ("plan_b10", "custom", 700, "EUR", "week", 2),
    ("plan_b11", "basic", 700, "GBP", "month", 1),
    ("plan_b12", "enterprise", 90000, "GBP", "year", 1),
]

LOAD = [
    """INSERT INTO organizations (id) VALUES ('bench')""",
    """INSERT INTO plans (organization_id, id, code, name, tier, amount, currency, interval_unit,
                          interval_count, family)
       SELECT 'bench', id, id, id, tier, amount, currency, unit, n, id
       FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::int[])
            AS p(id, tier, amount, currency, unit, n)""",
    """INSERT INTO customers (organization_id, id, email, name)
       SELECT 'bench', 'cus_b' || i, 'c' || i || '@example.com', 'Customer ' || i
       FROM generate_series(0, $1 - 1) AS i""",
    # i % 100: 0-89 succeeded, 90-96 failed, 97-99 open; currency by i % 3; spread over the year
    """INSERT INTO payments (organization_id, id, customer_id, amount, currency, status,
           capture_method, stripe_payment_intent_id, amount_captured, succeeded_at, failed_at,
           created_at, updated_at)
       SELECT 'bench', 'pay_b' || i, 'cus_b' || (i % $2), amount, currency, status, 'automatic',
              'pi_b' || i, CASE WHEN status = 'succeeded' THEN amount ELSE 0 END,
              CASE WHEN status = 'succeeded' THEN at END, CASE WHEN status = 'failed' THEN at END,
              at, at
       FROM (SELECT i, 500 + (i::bigint * 7919) % 49500 AS amount,
                    (ARRAY['USD', 'EUR', 'GBP'])[1 + i % 3] AS currency,
                    CASE WHEN i % 100 < 90 THEN 'succeeded' WHEN i % 100 < 97 THEN 'failed'
                         ELSE 'requires_confirmation' END AS status,
                    $3::timestamptz
                        + ((i::bigint * 2654435761) % 31449600000000) * interval '1 microsecond'
                        AS at
             FROM generate_series(0, $1 - 1) AS i) AS p""",
    # a partial refund of every 18th payment (all of those succeeded), days later
    """INSERT INTO refunds (organization_id, id, payment_id, customer_id, amount, currency, reason,
           status, stripe_refund_id, stripe_idempotency_key, requested_by, succeeded_at,
           created_at, updated_at)
       SELECT 'bench', 're_b' || p.id, p.id, p.customer_id, p.amount / 3, p.currency, 'other',
              'succeeded', 're_s' || p.id, 'k' || p.id, 'bench',
              least(p.succeeded_at + interval '2 days', $1::timestamptz),
              p.succeeded_at, p.succeeded_at
       FROM payments p
       WHERE p.organization_id = 'bench' AND p.status = 'succeeded'
         AND substr(p.id, 6)::bigint % 18 = 0""",
    """UPDATE payments p SET amount_refunded = r.amount
       FROM refunds r WHERE r.organization_id = p.organization_id AND r.payment_id = p.id""",
    # two subscriptions per customer on different plans, every status
    """INSERT INTO subscriptions (organization_id, id, customer_id, plan_id, quantity, status,
           currency, unit_amount, interval_unit, interval_count, billing_anchor, period_index,
           current_period_start, current_period_end, created_at, updated_at)
       SELECT 'bench', 'sub_b' || s.i, 'cus_b' || (s.i % $2), p.id, 1 + s.i % 3, s.status,
              p.currency, p.amount, p.interval_unit, p.interval_count, s.at,
              CASE WHEN s.status = 'trialing' THEN NULL ELSE 0 END,
              s.at, s.at + interval '30 days', s.at, s.at
       FROM (SELECT i, (i / $2 + (i % $2) * 7) % 12 AS plan,
                    CASE WHEN i % 100 < 60 THEN 'active' WHEN i % 100 < 68 THEN 'trialing'
                         WHEN i % 100 < 72 THEN 'past_due' WHEN i % 100 < 77 THEN 'paused'
                         WHEN i % 100 < 97 THEN 'canceled' WHEN i % 100 < 98 THEN 'unpaid'
                         ELSE 'incomplete_expired' END AS status,
                    $3::timestamptz + ((i::bigint * 40503) % 31449600) * interval '1 second'
                        AS at
             FROM generate_series(0, $1 - 1) AS i) AS s
       JOIN (SELECT id, amount, currency, interval_unit, interval_count,
                    row_number() OVER (ORDER BY id) - 1 AS n
             FROM plans WHERE organization_id = 'bench') AS p ON p.n = s.plan""",
    # a 20% forever coupon redeemed for the current period of every 10th subscription
    """INSERT INTO coupons (organization_id, id, code, name, percent_off, duration)
       VALUES ('bench', 'coup_b', 'b20', '20% off', 2000, 'forever')""",
    """INSERT INTO discounts (organization_id, id, coupon_id, customer_id, subscription_id)
       SELECT 'bench', 'di_' || id, 'coup_b', customer_id, id FROM subscriptions
       WHERE organization_id = 'bench' AND substr(id, 6)::bigint % 10 = 0""",
    """INSERT INTO discount_redemptions (organization_id, discount_id, period_key, invoice_id)
       SELECT 'bench', 'di_' || id, id || ':0', 'inv_' || id FROM subscriptions
       WHERE organization_id = 'bench' AND substr(id, 6)::bigint % 10 = 0""",
]

RAW_REVENUE = """
SELECT currency, date_trunc('day', at AT TIME ZONE $4)::date AS day, sum(gross) AS gross,
       sum(payments) AS payments, sum(failed) AS failed, sum(refunded) AS refunded,
       sum(refunds) AS refunds
FROM (
    SELECT currency, succeeded_at AS at, amount_captured AS gross, 1 AS payments, 0 AS failed,
           0 AS refunded, 0 AS refunds
    FROM payments WHERE organization_id = $1 AND status = 'succeeded'
      AND succeeded_at >= $2 AND succeeded_at < $3
    UNION ALL
    SELECT currency, declined_at, 0, 0, 1, 0, 0 FROM payment_declines
    WHERE organization_id = $1 AND declined_at >= $2 AND declined_at < $3
    UNION ALL
    SELECT currency, succeeded_at, 0, 0, 0, amount, 1 FROM refunds
    WHERE organization_id = $1 AND status = 'succeeded'
      AND succeeded_at >= $2 AND succeeded_at < $3
) raw GROUP BY 1, 2
"""
# Each subscription's MRR spelled out in plain SQL (the definition of stats_subscription_mrr:
# the coupon redeemed for its current period, then the monthly amount rounded half-even), with
# the coupons hash-joined by period key and bigint arithmetic: the fastest form we found.
_RAW_MRR = """
WITH off AS (
    SELECT DISTINCT ON (r.period_key) r.period_key, c.percent_off, c.amount_off, c.currency
    FROM discount_redemptions r
    JOIN discounts d ON d.organization_id = r.organization_id AND d.id = r.discount_id
    JOIN coupons c ON c.organization_id = d.organization_id AND c.id = d.coupon_id
    WHERE r.organization_id = $1
    ORDER BY r.period_key, r.created_at DESC, r.discount_id DESC
), priced AS (
    SELECT s.currency, s.plan_id, s.status, s.customer_id,
           (s.unit_amount * s.quantity - CASE
                WHEN o.period_key IS NULL OR o.currency <> s.currency THEN 0
                WHEN o.percent_off IS NOT NULL
                    THEN (s.unit_amount * s.quantity * o.percent_off + 5000) / 10000
                ELSE least(o.amount_off, s.unit_amount * s.quantity) END)
           * CASE s.interval_unit WHEN 'week' THEN 52 WHEN 'day' THEN 365 ELSE 1 END AS num,
           s.interval_count * CASE s.interval_unit WHEN 'month' THEN 1 ELSE 12 END AS den
    FROM subscriptions s LEFT JOIN off o ON o.period_key = s.id || ':' || s.period_index
    WHERE s.organization_id = $1
), mrr AS (
    SELECT currency, plan_id, status, customer_id,
           CASE WHEN status IN ('active', 'past_due')
                THEN num / den + CASE WHEN 2 * (num % den) > den
                                       OR (2 * (num % den) = den AND (num / den) % 2 = 1)
                                      THEN 1 ELSE 0 END
                ELSE 0 END AS mrr
    FROM priced
)
"""
RAW_SUBSCRIPTIONS = (
    _RAW_MRR
    + """
SELECT m.currency, m.plan_id, p.tier, m.status, count(*) AS subscriptions, sum(m.mrr) AS mrr
FROM mrr m JOIN plans p ON p.organization_id = $1 AND p.id = m.plan_id
GROUP BY 1, 2, 3, 4
"""
)
RAW_PAYING = (
    _RAW_MRR
    + """
SELECT currency, count(*) AS customers FROM (
    SELECT customer_id, currency FROM mrr GROUP BY 1, 2 HAVING sum(mrr) > 0) c
GROUP BY 1
"""
)
RAW_ALL_TIME = """
SELECT currency, sum(gross) - sum(refunded) AS net FROM (
    SELECT currency, amount_captured AS gross, 0 AS refunded FROM payments
    WHERE organization_id = $1 AND status = 'succeeded'
    UNION ALL
    SELECT currency, 0, amount FROM refunds WHERE organization_id = $1 AND status = 'succeeded'
) raw GROUP BY 1
"""


@dataclass
class Row:
    name: str
    service_ms: float
    raw_ms: float

    @property
    def ratio(self) -> float:
        return self.raw_ms / self.service_ms


@dataclass
class Report:
    payments: int
    subscriptions: int
    load_seconds: float
    build_seconds: float
    rows: list[Row] = field(default_factory=list)
    rollup_rows: dict[str, int] = field(default_factory=dict)
    upkeep: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        lines = [
            f"{self.payments:,} payments, {self.subscriptions:,} subscriptions; loaded in "
            f"{self.load_seconds:.1f} s, rollups built in {self.build_seconds:.1f} s "
            f"({', '.join(f'{k} {v:,}' for k, v in self.rollup_rows.items())})",
            "",
            f"{'figures':<46} {'rollups ms':>11} {'raw ms':>10} {'raw/rollups':>12}",
        ]
        for row in self.rows:
            lines.append(
                f"{row.name:<46} {row.service_ms:>11.1f} {row.raw_ms:>10.1f} {row.ratio:>11.1f}x"
            )
        lines.append("")
        for name, value in self.upkeep.items():
            lines.append(f"{name:<66} {value:>6.2f} ms")
        return "\n".join(lines)


async def _timed(call: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, Any]:
    result = await call()  # warm-up (plans, caches)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - started) * 1000)
    # The median, by hand: run as a script, this file shadows the `statistics` module.
    return sorted(samples)[len(samples) // 2], result


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _load(url: str, payments: int, subscriptions: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        columns = list(zip(*PLANS, strict=True))
        customers = max(subscriptions // 2, 1)
        arguments: list[tuple[Any, ...]] = [
            (),
            tuple(list(c) for c in columns),
            (customers,),
            (payments, customers, YEAR),
            (NOW,),
            (),
            (subscriptions, customers, YEAR),
            (),
            (),
            (),
        ]
        for statement, values in zip(LOAD, arguments, strict=True):
            await conn.execute(statement, *values)
    finally:
        await conn.close()


async def run(server: str, payments: int, subscriptions: int, runs: int) -> Report:
    """Load a new database on ``server``, measure, drop it; the report."""
    name = f"billing_bench_stats_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    # JIT off for both sides: it only slows these queries down (it compiles for the big plain
    # aggregates, up to 0.4 s a query on PostgreSQL 15), so the baseline gets its best time.
    await admin.execute(f'ALTER DATABASE "{name}" SET jit = off')
    await admin.close()
    url = _with_database(server, name)
    try:
        await apply_migrations(url)
        started = time.perf_counter()
        await _load(url, payments, subscriptions)
        loaded = time.perf_counter() - started
        conn = await asyncpg.connect(url)
        try:
            started = time.perf_counter()
            await conn.execute("SELECT stats_rebuild_revenue()")
            await conn.execute("SELECT stats_baseline_subscriptions()")
            built = time.perf_counter() - started
            await conn.execute("ANALYZE")
            counts = {
                table: await conn.fetchval(f"SELECT count(*) FROM {table}")
                for table in ("revenue_rollups", "subscription_stat_events", "mrr_movement_days")
            }
        finally:
            await conn.close()
        report = Report(payments, subscriptions, loaded, built, rollup_rows=counts)
        await _measure(url, report, runs)
        return report
    finally:
        admin = await asyncpg.connect(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _measure(url: str, report: Report, runs: int) -> None:
    db = Database(url, min_size=1, max_size=2)
    await db.connect()
    raw = await asyncpg.connect(url)
    service = StatisticsService(db)
    try:
        end = YEAR + timedelta(days=365)
        for zone in ("UTC", "America/New_York"):

            async def from_rollups(zone: str = zone) -> Any:
                return await service.revenue(
                    ORG,
                    start=YEAR,
                    end=end,
                    interval=StatsInterval.DAY,
                    currency=None,
                    time_zone=zone,
                )

            async def from_raw(zone: str = zone) -> Any:
                return await raw.fetch(RAW_REVENUE, ORG, YEAR, end, zone)

            fast, found = await _timed(from_rollups, runs)
            slow, rows = await _timed(from_raw, runs)
            _same_revenue(found, rows)
            report.rows.append(Row(f"revenueStats, a year by day ({zone})", fast, slow))

        async def subscription_figures() -> Any:
            return await service.subscription_stats(ORG, at=NOW, start=None, end=None)

        async def subscription_raw() -> Any:
            return (
                await raw.fetch(RAW_SUBSCRIPTIONS, ORG),
                await raw.fetch(RAW_PAYING, ORG),
            )

        fast, stats = await _timed(subscription_figures, runs)
        slow, (rows, paying) = await _timed(subscription_raw, runs)
        _same_subscriptions(stats, rows, paying)
        report.rows.append(Row("subscriptionStats (status, plan, tier, MRR)", fast, slow))

        async def snapshot() -> Any:
            return await service.snapshot(ORG, currency=None, now=NOW)

        async def snapshot_raw() -> Any:
            days = await raw.fetch(RAW_REVENUE, ORG, NOW - timedelta(days=30), NOW, "UTC")
            return days, await raw.fetch(RAW_ALL_TIME, ORG), await raw.fetch(RAW_SUBSCRIPTIONS, ORG)

        fast, found_snapshot = await _timed(snapshot, runs)
        slow, (_, all_time, _) = await _timed(snapshot_raw, runs)
        assert {c.currency: c.net_total.amount for c in found_snapshot.currencies} == {
            r["currency"]: int(r["net"]) for r in all_time
        }
        report.rows.append(Row("dashboard snapshot (30 days, all time, MRR)", fast, slow))
        report.upkeep.update(await _upkeep(db, runs))
    finally:
        await raw.close()
        await db.disconnect()


async def _upkeep(db: Database, runs: int) -> dict[str, float]:
    """What keeping the rollups adds to a change: a rolled-back transaction that records a
    status change (a failed payment succeeding; a subscription canceled) as the services do,
    without and with the statistics write (the live path's own code)."""
    recorder = StatsRecorder(db)
    payment_id = await db.fetch_val(
        "SELECT id FROM payments WHERE organization_id = 'bench' AND status = 'failed' LIMIT 1"
    )
    subscription_id = await db.fetch_val(
        "SELECT id FROM subscriptions WHERE organization_id = 'bench' AND status = 'active' "
        "ORDER BY id LIMIT 1"
    )

    class Rollback(Exception):
        pass

    async def pay(record: bool) -> None:
        try:
            async with db.transaction():
                before = await db.fetch_one(
                    "SELECT * FROM payments WHERE organization_id = 'bench' AND id = :id",
                    {"id": payment_id},
                )
                after = await db.fetch_one(
                    "UPDATE payments SET status = 'succeeded', amount_captured = amount "
                    "WHERE organization_id = 'bench' AND id = :id RETURNING *",
                    {"id": payment_id},
                )
                if record:
                    assert after is not None
                    await recorder.payment_changed(before, after)
                raise Rollback
        except Rollback:
            pass

    async def cancel(record: bool) -> None:
        try:
            async with db.transaction():
                await db.execute(
                    "UPDATE subscriptions SET status = 'canceled' "
                    "WHERE organization_id = 'bench' AND id = :id",
                    {"id": subscription_id},
                )
                if record:
                    await recorder.subscription_changed("bench", subscription_id)
                raise Rollback
        except Rollback:
            pass

    found = {}
    for name, change in (("a payment succeeds", pay), ("a subscription is canceled", cancel)):
        for record in (False, True):
            found[name, record], _ = await _timed(lambda c=change, r=record: c(r), runs * 20)
    return {
        f"{name}: transaction {found[name, False]:.2f} ms, with statistics": found[name, True]
        for name in ("a payment succeeds", "a subscription is canceled")
    }


def _same_revenue(found: Any, rows: Any) -> None:
    expected = {
        (r["currency"], r["day"]): (int(r["gross"]), int(r["payments"]), int(r["failed"]))
        for r in rows
    }
    got = {}
    for currency in found:
        for bucket in currency.buckets:
            figures = (bucket.gross.amount, bucket.payment_count, bucket.failed_payment_count)
            if any(figures):
                got[(currency.currency, bucket.start.date())] = figures
    expected = {k: v for k, v in expected.items() if any(v)}
    assert got == expected, "revenue from the rollups differs from the raw tables"
    refunds = {c.currency: c.total.refunds.amount for c in found}
    assert refunds == {
        c: sum(int(r["refunded"]) for r in rows if r["currency"] == c) for c in refunds
    }


def _same_subscriptions(stats: Any, rows: Any, paying: Any) -> None:
    by_status: dict[str, int] = {}
    mrr: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["subscriptions"])
        mrr[r["currency"]] = mrr.get(r["currency"], 0) + int(r["mrr"])
    counts = stats.counts
    assert {s: getattr(counts, s) for s in by_status} == by_status
    assert {c.currency: c.mrr.amount for c in stats.currencies} == mrr
    assert {c.currency: c.paying_customers for c in stats.currencies} == {
        r["currency"]: int(r["customers"]) for r in paying
    }


async def main(payments: int, subscriptions: int, runs: int) -> Report:
    server = os.environ.get("DATABASE_URL")
    if server:
        return await run(server, payments, subscriptions, runs)
    with tempfile.TemporaryDirectory(prefix="billing-bench-stats-") as folder:
        postgres = EmbeddedPostgres(Path(folder) / "pg")
        embedded = postgres.start()
        try:
            return await run(embedded, payments, subscriptions, runs)
        finally:
            postgres.stop()


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:4]]
    defaults = [1_000_000, 100_000, 7]
    payments, subscriptions, runs = arguments + defaults[len(arguments) :]
    print(asyncio.run(main(payments, subscriptions, runs)).table())
