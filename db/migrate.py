"""Numbered SQL migrations, applied in order, each in its own transaction.

Applied versions are recorded in ``schema_migrations`` with a checksum; a session-level advisory
lock makes concurrent starts safe (the second process waits, then finds nothing to do). Runs on a
raw asyncpg connection because migration files hold several statements.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

__all__ = ["Migration", "MigrationError", "apply_migrations", "available", "pending"]

# Any constant works; it only has to be the same for every process of this service.
_LOCK_KEY = 0x6269_6C6C_696E_67  # "billing"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for entry in resources.files("db.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"Two migration files share a version: {versions}")
    return found


async def _applied(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _check(applied: dict[int, str], known: list[Migration]) -> list[Migration]:
    by_version = {m.version: m for m in known}
    for version, checksum in applied.items():
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"The database has migration {version}, which this code does not know: "
                "it was migrated by a newer release."
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"Migration {version:04d}_{migration.name}.sql changed after it was applied."
            )
    return [m for m in known if m.version not in applied]


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    """Migrations not yet applied (raises if the applied ones disagree with the files)."""
    return _check(await _applied(conn), available())


async def apply_migrations(dsn: str) -> list[Migration]:
    """Apply every pending migration; return those this call applied."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            done = []
            for migration in await pending(conn):
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                done.append(migration)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def status(fetch_applied: list[tuple[int, str]]) -> list[Migration]:
    """Pending migrations given the applied (version, checksum) pairs read by the caller."""
    return _check(dict(fetch_applied), available())
