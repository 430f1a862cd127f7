"""Migrations: fresh apply, re-run, concurrent starts, tampering, and /ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from app.core.settings import Settings
from app.web.app import create_app
from db import migrate
from db.tables import metadata
from tests.conftest import running


async def test_fresh_database_gets_every_migration_and_rerun_is_a_no_op(
    database_factory: Callable[[], Any],
) -> None:
    url = await database_factory()
    applied = await migrate.apply_migrations(url)
    assert [m.version for m in applied] == [m.version for m in migrate.available()]
    assert await migrate.apply_migrations(url) == []
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [(r["version"], r["checksum"]) for r in rows] == [
        (m.version, m.checksum) for m in migrate.available()
    ]


async def test_concurrent_starts_apply_each_migration_once(
    database_factory: Callable[[], Any],
) -> None:
    url = await database_factory()
    results = await asyncio.gather(*(migrate.apply_migrations(url) for _ in range(5)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in migrate.available()]


async def test_changed_migration_file_is_detected(database_factory: Callable[[], Any]) -> None:
    url = await database_factory()
    await migrate.apply_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(
            migrate.MigrationError,
            match=r"0001_organizations_and_plans\.sql changed after it was applied",
        ):
            await migrate.pending(conn)
        await conn.execute(
            "UPDATE schema_migrations SET checksum = $1 WHERE version = 1",
            migrate.available()[0].checksum,
        )
        await conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 'y')")
    finally:
        await conn.close()
    with pytest.raises(migrate.MigrationError, match="newer release"):
        await migrate.apply_migrations(url)


async def test_tables_module_matches_the_migrated_schema(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
        )
    finally:
        await conn.close()
    in_database = {(r["table_name"], r["column_name"], r["is_nullable"] == "YES") for r in rows}
    described = {
        (table.name, column.name, bool(column.nullable))
        for table in metadata.tables.values()
        for column in table.columns
    }
    assert described == in_database


async def test_ready_reports_pending_migrations_and_unreachable_database(
    database_factory: Callable[[], Any], settings: Settings, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/health")).json() == {"status": "ok"}
    assert (await http.get("/ready")).json() == {"status": "ready"}

    empty = await database_factory()
    async for client in running(create_app(settings.with_overrides(database_url=empty))):
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
        await migrate.apply_migrations(empty)
        assert (await client.get("/ready")).status_code == 200
        services = client._transport.app.state.services  # type: ignore[attr-defined]
        await services.db.disconnect()
        down = await client.get("/ready")
        assert down.status_code == 503
        assert down.json() == {"status": "not_ready", "reason": "database unreachable"}
        await services.db.connect()


def test_every_table_key_includes_the_organization() -> None:
    for table in metadata.tables.values():
        if table.name == "organizations":
            continue
        assert "organization_id" in table.columns, table.name
        assert table.primary_key.columns.keys()[0] == "organization_id", table.name
        assert isinstance(table.c.organization_id.type, sa.Text)
