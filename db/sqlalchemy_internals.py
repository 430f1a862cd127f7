"""What `databases` reads of SQLAlchemy's private names (pinned: databases 0.9.0 over
SQLAlchemy 2.1.9, the PostgreSQL backend that ``db/connection.py`` uses).

Our code reaches into neither library; ``databases`` does, and its last release predates
SQLAlchemy 2.1. Its PostgreSQL backend compiles every query with SQLAlchemy and then reads the
compiled statement's ``_bind_processors`` (to convert parameters) and ``_result_columns`` (to
type the result columns, whose first object may be a ``sqlalchemy.sql.compiler._CompileLabel``),
and each row value goes through ``TypeEngine._cached_result_processor``. (It also sets the
dialect's ``_backslash_escapes`` and ``_has_native_hstore``: writes, which cannot fail, and
SQLAlchemy 2.1 no longer reads the second; we use no hstore.) ``missing_private_names`` checks
the reads on the installed SQLAlchemy; ``tests/test_library_internals.py`` runs it, so an
upgrade of either library that breaks them fails there, naming this module.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from databases.backends.dialects.psycopg import dialect as databases_dialect
from sqlalchemy.sql import compiler

__all__ = ["missing_private_names"]


def missing_private_names() -> list[str]:
    """The private SQLAlchemy names `databases` relies on that are missing or shaped otherwise
    than it expects; empty when all is as it expects."""
    missing: list[str] = []
    make_dialect: Any = databases_dialect  # untyped
    dialect: Any = make_dialect(paramstyle="pyformat")
    if not isinstance(getattr(compiler, "_CompileLabel", None), type):
        missing.append("sqlalchemy.sql.compiler._CompileLabel")

    table = sa.table("t", sa.column("n", sa.Integer))
    query = sa.select(table.c.n.label("m")).where(table.c.n == sa.bindparam("x"))
    compiled: Any = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    if not isinstance(getattr(compiled, "_bind_processors", None), dict):
        missing.append("SQLCompiler._bind_processors (a dict)")
    columns = getattr(compiled, "_result_columns", None)
    if not (
        isinstance(columns, list)
        and len(columns) == 1
        and len(columns[0]) == 4  # (keyname, name, objects, type), unpacked by databases
        and isinstance(columns[0][3], sa.Integer)
    ):
        missing.append("SQLCompiler._result_columns (entries of keyname, name, objects, type)")
    if not callable(getattr(sa.Integer(), "_cached_result_processor", None)):
        missing.append("TypeEngine._cached_result_processor")
    return missing
