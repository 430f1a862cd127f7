"""Migration 0007 on a database that already has payments, refunds and subscriptions: it stamps
their times, builds the rollups, and records the subscriptions as a baseline, so statistics are
exact from the first request after the upgrade."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from db import migrate
from db.connection import Database
from tests.stats_support import assert_rollups_match_raw

ORG = "legacy"

DATA = """
INSERT INTO organizations (id) VALUES ('legacy');
INSERT INTO plans (organization_id, id, code, name, tier, amount, currency, interval_unit,
                   interval_count)
VALUES ('legacy', 'plan_m', 'm', 'Monthly', 'pro', 1000, 'USD', 'month', 1),
       ('legacy', 'plan_y', 'y', 'Yearly', 'enterprise', 12000, 'EUR', 'year', 1),
       ('legacy', 'plan_w', 'w', 'Weekly', 'basic', 700, 'USD', 'week', 2);
INSERT INTO customers (organization_id, id, email, name, created_at) VALUES
    ('legacy', 'cus_a', 'a@example.com', 'A', '2026-01-01'),
    ('legacy', 'cus_b', 'b@example.com', 'B', '2026-01-01'),
    ('legacy', 'cus_c', 'c@example.com', 'C', '2026-01-01');
INSERT INTO subscriptions (organization_id, id, customer_id, plan_id, quantity, status, currency,
    unit_amount, interval_unit, interval_count, billing_anchor, period_index,
    current_period_start, current_period_end, created_at)
VALUES
    ('legacy', 'sub_1', 'cus_a', 'plan_m', 1, 'active', 'USD', 1000, 'month', 1,
     '2026-02-01', 3, '2026-05-01', '2026-06-01', '2026-02-01 10:00Z'),
    ('legacy', 'sub_2', 'cus_a', 'plan_w', 3, 'past_due', 'USD', 700, 'week', 2,
     '2026-03-01', 5, '2026-05-10', '2026-05-24', '2026-03-01 10:00Z'),
    ('legacy', 'sub_3', 'cus_a', 'plan_y', 1, 'active', 'EUR', 12000, 'year', 1,
     '2026-01-15', 0, '2026-01-15', '2027-01-15', '2026-01-15 10:00Z'),
    ('legacy', 'sub_4', 'cus_b', 'plan_m', 2, 'active', 'USD', 1000, 'month', 1,
     '2026-04-01', 1, '2026-05-01', '2026-06-01', '2026-04-01 10:00Z'),
    ('legacy', 'sub_5', 'cus_b', 'plan_y', 1, 'trialing', 'EUR', 12000, 'year', 1,
     '2026-06-01', NULL, '2026-05-18', '2026-06-01', '2026-05-18 10:00Z'),
    ('legacy', 'sub_6', 'cus_c', 'plan_m', 1, 'canceled', 'USD', 1000, 'month', 1,
     '2026-01-03', 2, '2026-03-03', '2026-04-03', '2026-01-03 10:00Z'),
    ('legacy', 'sub_7', 'cus_c', 'plan_w', 1, 'paused', 'USD', 700, 'week', 2,
     '2026-02-03', 4, '2026-04-03', '2026-04-17', '2026-02-03 10:00Z');
INSERT INTO coupons (organization_id, id, code, name, percent_off, duration)
VALUES ('legacy', 'coup_half', 'half', 'Half', 5000, 'forever');
INSERT INTO discounts (organization_id, id, coupon_id, customer_id, subscription_id)
VALUES ('legacy', 'di_1', 'coup_half', 'cus_b', NULL);
INSERT INTO discount_redemptions (organization_id, discount_id, period_key, invoice_id)
VALUES ('legacy', 'di_1', 'sub_4:1', 'inv_x'), ('legacy', 'di_1', 'sub_4:0', 'inv_y');
INSERT INTO payments (organization_id, id, customer_id, amount, currency, status, capture_method,
    stripe_payment_intent_id, amount_captured, amount_refunded, created_at, updated_at)
VALUES
    ('legacy', 'pay_1', 'cus_a', 5000, 'USD', 'succeeded', 'automatic', 'pi_1', 5000, 1500,
     '2026-05-01 10:00Z', '2026-05-09 12:00Z'),
    ('legacy', 'pay_2', 'cus_a', 900, 'EUR', 'succeeded', 'automatic', 'pi_2', 900, 0,
     '2026-05-02 23:55Z', '2026-05-02 23:56Z'),
    ('legacy', 'pay_3', 'cus_b', 700, 'USD', 'failed', 'automatic', 'pi_3', 0, 0,
     '2026-05-03 10:00Z', '2026-05-03 10:01Z'),
    ('legacy', 'pay_4', 'cus_b', 800, 'USD', 'requires_confirmation', 'automatic', 'pi_4', 0, 0,
     '2026-05-03 10:00Z', '2026-05-03 10:00Z');
INSERT INTO refunds (organization_id, id, payment_id, customer_id, amount, currency, reason,
    status, stripe_refund_id, stripe_idempotency_key, requested_by, created_at, updated_at)
VALUES
    ('legacy', 're_1', 'pay_1', 'cus_a', 1500, 'USD', 'other', 'succeeded', 're_s1', 'k1', 'x',
     '2026-05-05 10:00Z', '2026-05-05 10:00:02Z'),
    ('legacy', 're_2', 'pay_1', 'cus_a', 200, 'USD', 'other', 'pending_approval', NULL, NULL, 'x',
     '2026-05-06 10:00Z', '2026-05-06 10:00Z');
"""


async def test_migration_stamps_times_and_builds_exact_statistics_from_existing_rows(
    database_factory: Callable[[], Any],
) -> None:
    url = await database_factory()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(migrate._CREATE_TABLE)
        for migration in migrate.available():
            if migration.version >= 7:
                break
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        await conn.execute(DATA)
    finally:
        await conn.close()
    await migrate.apply_migrations(url)

    db = Database(url, min_size=1, max_size=2)
    await db.connect()
    try:
        await assert_rollups_match_raw(db, ORG)
        stamps = {
            row["id"]: (row["succeeded_at"], row["failed_at"])
            for row in await db.fetch_all("SELECT id, succeeded_at, failed_at FROM payments")
        }
        # pay_1 was last changed by its refund's success, so it succeeded before the refund.
        assert str(stamps["pay_1"][0]) == "2026-05-05 10:00:00+00:00"
        assert str(stamps["pay_2"][0]) == "2026-05-02 23:56:00+00:00"
        assert str(stamps["pay_3"][1]) == "2026-05-03 10:01:00+00:00"
        assert stamps["pay_4"] == (None, None)
        totals = {
            (row["currency"], row["status"]): (row["subscriptions"], row["mrr"])
            for row in await db.fetch_all(
                "SELECT currency, status, sum(subscriptions) AS subscriptions, sum(mrr) AS mrr "
                "FROM subscription_stat_totals GROUP BY currency, status"
            )
        }
        # sub_1 1000 + sub_2 700 x 3 x 52 / 24 = 4550 + sub_4 2000 less half = 1000
        assert totals[("USD", "active")] == (2, 2000)
        assert totals[("USD", "past_due")] == (1, 4550)
        assert totals[("EUR", "active")] == (1, 1000)  # 12000 a year
        assert (totals[("EUR", "trialing")], totals[("USD", "canceled")]) == ((1, 0), (1, 0))
        movements = [
            (row["subscription_id"], row["movement"])
            for row in await db.fetch_all(
                "SELECT subscription_id, movement FROM subscription_stat_events "
                "WHERE movement IS NOT NULL ORDER BY occurred_at, id"
            )
        ]
        assert movements == [
            ("sub_3", "new"),  # cus_a's first EUR subscription
            ("sub_1", "new"),  # cus_a's first USD one
            ("sub_2", "expansion"),
            ("sub_4", "new"),
        ]
    finally:
        await db.disconnect()
