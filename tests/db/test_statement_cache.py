"""The statement cache (``db/statement_cache.py``) gives exactly the SQL and arguments
`databases` itself would, for every statement shape, first time and from the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from databases.backends.dialects.psycopg import dialect as databases_dialect
from databases.backends.postgres import PostgresConnection

from app.core.settings import Settings
from app.demo import DemoOptions, run_demo
from db.statement_cache import CachingPostgresBackend, StatementCache
from db.tables import idempotency_keys, invoices, plans
from tests.support import new_org

DIALECT: Any = CachingPostgresBackend("postgresql://x@localhost/y")._dialect


def _databases_compile(query: Any) -> tuple[str, list[Any]]:
    plain = PostgresConnection.__new__(PostgresConnection)
    plain._dialect = DIALECT
    sql, args, _ = PostgresConnection._compile(plain, query)
    return sql, args


def _statements(n: int) -> list[Any]:
    """Statements of the shapes the repositories build, with values that differ per ``n``."""
    at = datetime(2027, 1, n, tzinfo=UTC)
    return [
        sa.select(plans).where(plans.c.organization_id == f"org{n}", plans.c.id == f"p{n}"),
        sa.select(invoices.c.id)
        .where(invoices.c.organization_id == f"org{n}", invoices.c.created_at < at)
        .order_by(invoices.c.id)
        .limit(n + 1),
        sa.insert(idempotency_keys)
        .values(
            organization_id=f"org{n}",
            key=f"k{n}",
            operation="op",
            request_hash="h",
            resource_id="r",
            state="in_progress",
            response={"n": n, "nested": [1, n]},
            lease_token="t",
            locked_until=sa.func.now() + sa.literal(timedelta(seconds=n), sa.Interval()),
            attempts=1,
            created_at=at,
        )
        .returning(idempotency_keys.c.key),
        sa.update(plans)
        .where(plans.c.organization_id == f"org{n}", plans.c.id == f"p{n}")
        .values(name=f"name {n}", updated_at=sa.func.now()),
        sa.text("SELECT :a + 1 AS b, :c AS d").bindparams(a=n, c=f"x{n}"),
        sa.select(sa.func.count()).select_from(plans).where(plans.c.amount > n * 100),
    ]


def test_the_cache_gives_what_databases_gives_first_time_and_from_the_cache() -> None:
    cache = StatementCache()
    for n in (1, 2, 3):
        for statement in _statements(n):
            found = cache.compile(DIALECT, statement)
            assert found is not None, statement
            sql, args, _ = found
            assert (sql, args) == _databases_compile(statement)
    assert cache.misses == len(_statements(1))
    assert cache.hits == 2 * len(_statements(1))


def test_statements_whose_text_depends_on_values_are_not_cached() -> None:
    cache = StatementCache()
    for ids in (["a"], ["a", "b", "c"]):
        statement = sa.select(plans.c.id).where(plans.c.id.in_(ids))
        assert cache.compile(DIALECT, statement) is None
    assert (cache.hits, cache.misses, cache.uncached) == (0, 0, 2)


def test_the_dialect_is_databases_own() -> None:
    assert type(DIALECT) is type(databases_dialect(paramstyle="pyformat"))


async def test_every_statement_of_a_demo_year_compiles_as_databases_would(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run a small demo (plans, customers, subscriptions, renewals, refunds, credit notes,
    ledger, rollups) with each cached compile checked against `databases`' own."""
    checked: list[int] = []
    real = StatementCache.compile

    def checking(self: StatementCache, dialect: Any, query: Any) -> Any:
        found = real(self, dialect, query)
        if found is not None:
            assert found[:2] == _databases_compile(query), str(query)[:300]
            checked.append(1)
        return found

    monkeypatch.setattr(StatementCache, "compile", checking)
    report = await run_demo(settings, DemoOptions(org=new_org(), customers=5, months=2, seed=3))
    assert report.violations == []
    assert len(checked) > 500
