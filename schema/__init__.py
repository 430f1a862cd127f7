"""The GraphQL schema (code-first, strawberry). ``schema.graphql`` is exported from here."""

from schema.build import Limits, build_schema, schema

__all__ = ["Limits", "build_schema", "schema"]
