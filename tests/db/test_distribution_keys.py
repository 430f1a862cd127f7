"""Scale-out stays open: every table's primary, unique and foreign keys lead with
``organization_id``, the distribution column a distributed PostgreSQL (Citus) would shard by
(docs/operations.md, "Scaling out further"). Two tables are global by design."""

from __future__ import annotations

import asyncpg

GLOBAL = {"organizations", "schema_migrations"}

_KEYS = """
SELECT rel.relname AS table_name, con.conname AS name, con.contype AS kind,
       (SELECT attname FROM pg_attribute
        WHERE attrelid = con.conrelid AND attnum = con.conkey[1]) AS first_column
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = rel.relnamespace
WHERE ns.nspname = 'public' AND con.contype IN ('p', 'u', 'f')
ORDER BY 1, 2
"""

_UNIQUE_INDEXES = """
SELECT t.relname AS table_name, i.relname AS name,
       (SELECT attname FROM pg_attribute
        WHERE attrelid = ix.indrelid AND attnum = ix.indkey[0]) AS first_column
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace ns ON ns.oid = t.relnamespace
WHERE ns.nspname = 'public' AND ix.indisunique
"""


async def test_every_key_leads_with_the_organization(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        keys = await conn.fetch(_KEYS)
        indexes = await conn.fetch(_UNIQUE_INDEXES)
    finally:
        await conn.close()
    assert keys, "no constraints found: wrong database?"
    offending = [
        f"{r['table_name']}.{r['name']} ({r['kind']}) leads with {r['first_column']}"
        for r in keys
        if r["table_name"] not in GLOBAL and r["first_column"] != "organization_id"
    ] + [
        f"{r['table_name']}.{r['name']} (unique index) leads with {r['first_column']}"
        for r in indexes
        if r["table_name"] not in GLOBAL and r["first_column"] != "organization_id"
    ]
    assert offending == [], "\n".join(offending)
