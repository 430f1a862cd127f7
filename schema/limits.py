"""Protections against abusive documents, applied before anything executes.

Depth, aliases and tokens use strawberry's own limiters (see ``schema.build``); this module adds
what it lacks: a query cost rule in the style of GitHub and Shopify (a connection's `first`
multiplies the cost of what is selected under it) and a cap on mutations per document.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from schema.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = ["QueryCostLimiter", "max_mutations_rule", "query_cost"]


def _first(field: FieldNode, variables: Mapping[str, Any]) -> int | None:
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            return given if isinstance(given, int) else DEFAULT_PAGE_SIZE
    return None


def _is_connection(field: FieldNode) -> bool:
    selections = field.selection_set.selections if field.selection_set else ()
    return any(isinstance(s, FieldNode) and s.name.value == "edges" for s in selections)


def query_cost(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """Each field costs 1; the selection under a connection costs `first` times its own cost
    (default page size when `first` is omitted, at most the page cap)."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):
                continue
            first = _first(selection, variables)
            if first is None and _is_connection(selection):
                first = DEFAULT_PAGE_SIZE
            factor = 1 if first is None else min(max(first, 1), MAX_PAGE_SIZE)
            total += 1 + factor * query_cost(selection.selection_set, fragments, variables)
        elif isinstance(selection, InlineFragmentNode):
            total += query_cost(selection.selection_set, fragments, variables)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                total += query_cost(fragment.selection_set, fragments, variables)
    return total


class QueryCostLimiter(SchemaExtension):
    """Refuse an operation whose cost exceeds ``max_cost`` before it executes."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if context.operation_name:
                operations = [
                    o for o in operations if o.name and o.name.value == context.operation_name
                ]
            variables = context.variables or {}
            cost = sum(query_cost(o.selection_set, fragments, variables) for o in operations[:1])
            if cost > self.max_cost:
                message = (
                    f"Query cost {cost} exceeds the limit of {self.max_cost}: ask for fewer "
                    "nodes (a connection's `first` multiplies the cost of its selection)."
                )
                context.result = GraphQLExecutionResult(
                    data=None,
                    errors=[GraphQLError(message, extensions={"code": "QUERY_TOO_COSTLY"})],
                )
        yield


def max_mutations_rule(limit: int) -> type[ValidationRule]:
    class MaxMutations(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            if node.operation is OperationType.MUTATION:
                count = len(node.selection_set.selections)
                if count > limit:
                    self.report_error(
                        GraphQLError(
                            f"A document may run at most {limit} mutations; it has {count}.",
                            node,
                            extensions={"code": "TOO_MANY_MUTATIONS"},
                        )
                    )

    return MaxMutations
