"""The GraphQL schema (code-first, strawberry). ``schema.graphql`` is exported from here."""

from schema.build import Limits, build_schema, schema
from schema.persisted import PersistedQueries

__all__ = ["Limits", "PersistedQueries", "build_schema", "schema"]
