"""Validation of GraphQL documents, once per distinct query text.

Validating a document against the schema is the most expensive step of a small request (a
profile of `plan(id)` spent 44 % of its time there), and its result depends only on the query
text and the rules, never on variables or the caller. strawberry's own ``ValidationCache``
never hit for us: its key includes the validation rules, and strawberry's depth and alias
limiter extensions build a new rule class on every request; and its key hashes the parsed
document, a tree of frozen dataclasses hashed node by node on every lookup.

So the schema's rules are built once (``validation_rules``: graphql-core's specified rules,
strawberry's two, depth, aliases, mutations per document, storable strings, and in production
no introspection) and ``CachedValidation`` keys its bounded LRU by the query text alone. A
document that fails validation is cached too (its errors), so repeating a bad query costs no
more than a good one; the cache is bounded, so unique texts cannot grow memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from graphql import DocumentNode, GraphQLError, GraphQLSchema, specified_rules, validate
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from schema.strawberry_internals import graphql_core_schema

__all__ = ["CachedValidation", "ValidationResults", "validation_rules"]


def validation_rules(
    *, max_depth: int, max_aliases: int, extra: Sequence[type[ASTValidationRule]]
) -> tuple[type[ASTValidationRule], ...]:
    """Every rule a document is validated with, built once per schema."""
    return (
        *specified_rules,
        MaybeNullValidationRule,
        OneOfInputValidationRule,
        depth_rule(max_depth, None, None),
        alias_rule(max_aliases),
        *extra,
    )


class ValidationResults:
    """A bounded LRU of validation errors by query text (thread-safe: one per schema)."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], maxsize: int = 512) -> None:
        self.rules = rules
        self._maxsize = maxsize
        self._errors: OrderedDict[str, list[GraphQLError]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def errors(
        self, schema: GraphQLSchema, query: str, document: DocumentNode
    ) -> list[GraphQLError]:
        with self._lock:
            found = self._errors.get(query)
            if found is not None:
                self._errors.move_to_end(query)
                self.hits += 1
                return found
        errors = validate(schema, document, self.rules)
        with self._lock:
            self.misses += 1
            self._errors[query] = errors
            if len(self._errors) > self._maxsize:
                self._errors.popitem(last=False)
        return errors


class CachedValidation(SchemaExtension):
    """Validates each document with the schema's rules, once per distinct query text."""

    def __init__(self, results: ValidationResults) -> None:
        super().__init__()
        self._results = results

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        refused = bool(context.pre_execution_errors)  # e.g. an unknown persisted query
        if not refused and context.graphql_document is not None and context.query is not None:
            context.pre_execution_errors = self._results.errors(
                graphql_core_schema(context.schema), context.query, context.graphql_document
            )
        yield
