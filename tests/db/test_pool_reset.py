"""Pool connections go back without asyncpg's reset query (``db/connection.py``), which is safe
only while no statement leaves session state behind. These tests keep that true."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from db.connection import Database, PooledConnection

ROOT = Path(__file__).resolve().parents[2]

# Statements that would leave state on a pooled connection past its transaction.
SESSION_STATE = {
    "session advisory lock": re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.I),
    "LISTEN": re.compile(r"""["'`]\s*LISTEN\b""", re.I),
    "SET outside SET LOCAL": re.compile(
        r"""["'`]\s*SET\s+(?!LOCAL\b)(SESSION\s+)?\w+\s*(=|TO\b)""", re.I
    ),
    "session set_config": re.compile(r"set_config\s*\([^)]*,\s*false\s*\)", re.I),
    "cursor WITH HOLD": re.compile(r"WITH\s+HOLD", re.I),
}
# Their own connections, never the pool's.
OWN_CONNECTIONS = {"db/migrate.py", "app/core/pubsub.py", "db/connection.py"}


def test_no_code_leaves_session_state_on_a_pooled_connection() -> None:
    found = []
    for path in sorted(
        [*ROOT.glob("app/**/*.py"), *ROOT.glob("db/**/*.py"), *ROOT.glob("resolvers/**/*.py")]
    ):
        relative = path.relative_to(ROOT).as_posix()
        if relative in OWN_CONNECTIONS:
            continue
        text = path.read_text()
        found += [
            f"{relative}: {name}" for name, pattern in SESSION_STATE.items() if pattern.search(text)
        ]
    assert found == [], "session state on a pooled connection (see db/connection.py): " + str(found)


def test_the_patterns_catch_what_they_are_for() -> None:
    """The scan above can fail: each pattern matches the statement it guards against."""
    samples = {
        "session advisory lock": "SELECT pg_advisory_lock(42)",
        "LISTEN": '"LISTEN billing_events"',
        "SET outside SET LOCAL": "'SET statement_timeout = 5'",
        "session set_config": "SELECT set_config('x.y', '1', false)",
        "cursor WITH HOLD": "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    }
    for name, sample in samples.items():
        assert SESSION_STATE[name].search(sample), name
    assert not SESSION_STATE["SET outside SET LOCAL"].search("'SET LOCAL lock_timeout = 5'")
    assert not SESSION_STATE["session advisory lock"].search("pg_advisory_xact_lock(1)")


async def test_pool_connections_skip_the_reset_but_roll_back_open_transactions(
    database_url: str,
) -> None:
    db = Database(database_url, min_size=1, max_size=1)
    await db.connect()
    try:
        async with db.transaction():
            pid = await db.fetch_val("SELECT pg_backend_pid()")
            await db.execute("SELECT pg_advisory_xact_lock(778899)")
        # The lock ended with its transaction; the same connection (max_size=1) serves on.
        assert await db.fetch_val("SELECT pg_backend_pid()") == pid
        held = await db.fetch_val(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 778899"
        )
        assert held == 0
        raw = await asyncpg.connect(database_url, connection_class=PooledConnection)
        try:
            assert raw.get_reset_query() == ""
            transaction = raw.transaction()
            await transaction.start()
            await raw.execute("CREATE TEMP TABLE pool_reset_probe (n int) ON COMMIT DROP")
            await raw.reset()  # what the pool does on release: ROLLBACK is still sent
            assert not raw.is_in_transaction()
        finally:
            await raw.close()
    finally:
        await db.disconnect()
