"""The one place schema/ reads a private attribute of strawberry (pinned 0.341).

A strawberry ``Schema`` keeps the graphql-core schema it built as ``_schema`` and offers no
public accessor; validating a document and measuring its cost need that schema.
``tests/test_library_internals.py`` fails, naming this module, if an upgrade removes it.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema

__all__ = ["graphql_core_schema"]


def graphql_core_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema behind a strawberry schema."""
    built: GraphQLSchema = schema._schema
    return built
