"""Migration 0016 on a database with statistics: every payment failed now gets the decline it
had (at its failed_at), the rollups stay exact without a rebuild, and a rebuild after a bulk
load of history records the declines of the failed payments it brought."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from db import migrate
from db.connection import Database
from tests.stats_support import assert_rollups_match_raw

ORG = "legacy"
DECLINES_VERSION = 16

DATA = """
INSERT INTO organizations (id) VALUES ('legacy');
INSERT INTO customers (organization_id, id, email, name, created_at) VALUES
    ('legacy', 'cus_a', 'a@example.com', 'A', '2026-01-01');
INSERT INTO payments (organization_id, id, customer_id, amount, currency, status, capture_method,
    stripe_payment_intent_id, amount_captured, failure_code, succeeded_at, failed_at)
VALUES
    ('legacy', 'pay_ok', 'cus_a', 5000, 'USD', 'succeeded', 'automatic', 'pi_1', 5000, NULL,
     '2026-05-01 10:00Z', NULL),
    ('legacy', 'pay_failed', 'cus_a', 700, 'USD', 'failed', 'automatic', 'pi_2', 0,
     'card_declined', NULL, '2026-05-03 10:01Z'),
    -- declined once, then canceled: that decline was kept nowhere and cannot be recovered
    ('legacy', 'pay_canceled', 'cus_a', 800, 'EUR', 'canceled', 'automatic', 'pi_3', 0, NULL,
     NULL, NULL);
SELECT stats_rebuild_revenue();
"""
BULK = """
INSERT INTO payments (organization_id, id, customer_id, amount, currency, status, capture_method,
    stripe_payment_intent_id, amount_captured, failure_code, failed_at)
VALUES ('legacy', 'pay_bulk', 'cus_a', 900, 'USD', 'failed', 'automatic', 'pi_4', 0,
        'expired_card', '2026-04-02 08:00Z');
"""


async def test_failed_payments_get_their_decline_and_the_rollups_stay_exact(
    database_factory: Callable[[], Any],
) -> None:
    url = await database_factory()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(migrate._CREATE_TABLE)
        for migration in migrate.available():
            if migration.version >= DECLINES_VERSION:
                break
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        await conn.execute(DATA)
        before = await conn.fetch(
            "SELECT currency, bucket, gross, payments, failed FROM revenue_rollups "
            "ORDER BY currency, bucket"
        )
    finally:
        await conn.close()
    applied = await migrate.apply_migrations(url)
    assert DECLINES_VERSION in [m.version for m in applied]

    db = Database(url, min_size=1, max_size=2)
    await db.connect()
    try:
        declines = [
            (
                r["payment_id"],
                r["attempt_key"],
                r["currency"],
                r["amount"],
                r["failure_code"],
                str(r["declined_at"]),
            )
            for r in await db.fetch_all("SELECT * FROM payment_declines ORDER BY payment_id")
        ]
        assert declines == [
            ("pay_failed", "history", "USD", 700, "card_declined", "2026-05-03 10:01:00+00:00")
        ]
        after = await db.fetch_all(
            "SELECT currency, bucket, gross, payments, failed FROM revenue_rollups "
            "ORDER BY currency, bucket"
        )
        assert [tuple(r._mapping.values()) for r in after] == [tuple(r.values()) for r in before]
        assert [int(r["failed"]) for r in after] == [0, 1]
        await assert_rollups_match_raw(db, ORG)

        # History loaded in bulk, then the rollups rebuilt: its failed payment is a decline.
        await db.execute(BULK)
        await db.execute("SELECT stats_rebuild_revenue()")
        bulk = await db.fetch_one(
            "SELECT attempt_key, declined_at FROM payment_declines WHERE payment_id = 'pay_bulk'"
        )
        assert bulk is not None
        assert (bulk["attempt_key"], str(bulk["declined_at"])) == (
            "history",
            "2026-04-02 08:00:00+00:00",
        )
        await db.execute("SELECT stats_rebuild_revenue()")  # a second rebuild adds nothing
        count = await db.fetch_one("SELECT count(*) AS n FROM payment_declines")
        assert count is not None
        assert count["n"] == 2
        await assert_rollups_match_raw(db, ORG)
    finally:
        await db.disconnect()
