"""The GraphQL schema (code-first, strawberry). ``schema.graphql`` is exported from here."""

from schema.build import build_schema, schema

__all__ = ["build_schema", "schema"]
