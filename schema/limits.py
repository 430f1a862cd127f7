"""Protections against abusive documents, applied before anything executes.

Depth, aliases and tokens use strawberry's own limiters (see ``schema.build``); this module adds
what it lacks: a query cost in the style of GitHub and Shopify, computed on the resolved
selection (fragments and inline fragments expanded, types known from the schema), and a cap on
mutations per document. The cost both refuses over-large documents and is what the rate limit
charges (``app.throttling.budget``).

The cost model (also in docs/security.md): every field costs 1; under a connection, what is
selected in `edges` (or `nodes`) costs `first` times its own cost (the default page size when
`first` is omitted, at most the page cap), while `pageInfo`, `totalCount` and `summary` count
once; a plain list of objects counts its selection `LIST_ESTIMATE` times. Introspection fields
are free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
)

from schema.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = [
    "LIST_ESTIMATE",
    "MUTATION_COST",
    "TOO_COMPLEX",
    "CostedOperation",
    "actual_cost",
    "max_mutations_rule",
    "operation_cost",
]

LIST_ESTIMATE = 10
"""How many items a plain (unpaginated) list of objects is assumed to hold."""

MUTATION_COST = 10
"""Added for each mutation of an operation: a write costs more than a read."""

_PAGED = frozenset({"edges", "nodes"})
_MAX_STEPS = 20_000  # fields visited (fragments expanded) before a document counts as too costly
TOO_COMPLEX = 2**31 - 1
"""The cost of a document whose fragments expand past what is worth computing."""


class _TooComplex(Exception):
    pass


_Composite = GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType


@dataclass(frozen=True, slots=True)
class CostedOperation:
    """The operation a request runs and what it is charged before execution."""

    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    cost: int


def _unwrap(type_: GraphQLOutputType) -> tuple[Any, bool]:
    """The named type under NonNull/List wrappers, and whether a list wraps it."""
    is_list = False
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        if isinstance(type_, GraphQLList):
            is_list = True
        type_ = type_.of_type
    return type_, is_list


def _is_connection(type_: Any) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and "edges" in type_.fields
        and ("pageInfo" in type_.fields)
    )


def _first(field: FieldNode, variables: Mapping[str, Any]) -> int:
    for argument in field.arguments or ():
        if argument.name.value not in ("first", "last"):
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            given: object = int(value.value)
        elif isinstance(value, VariableNode):
            given = variables.get(value.name.value)
        else:
            continue
        if isinstance(given, int) and not isinstance(given, bool):
            return min(max(given, 1), MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE


class _Coster:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.steps = 0
        # Expanded selection sets by (selection set, parent type): measuring a result expands
        # the same selection set once per item of a list otherwise.
        self._expanded: dict[tuple[int, Any], list[tuple[FieldNode, Any]]] = {}

    def selection(self, selection_set: SelectionSetNode | None, parent: Any) -> int:
        """Cost of a selection set on ``parent`` (a composite type, or None when unknown)."""
        return sum(self.field(node, owner) for node, owner in self.fields(selection_set, parent))

    def field(self, node: FieldNode, parent: Any) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        definition = (
            parent.fields.get(name)
            if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        if definition is None:
            # Unknown to the schema (validation refuses it) or on a union: count it plainly.
            return 1 + self.selection(node.selection_set, None)
        named, is_list = _unwrap(definition.type)
        if _is_connection(named):
            return 1 + self.connection(node, named, _first(node, self.variables))
        factor = LIST_ESTIMATE if is_list and isinstance(named, _Composite) else 1
        return 1 + factor * self.selection(node.selection_set, named)

    def connection(self, node: FieldNode, connection: GraphQLObjectType, first: int) -> int:
        """Selections of a connection: `edges`/`nodes` cost `first` times, the rest once."""
        total = 0
        for child, owner in self.fields(node.selection_set, connection):
            if child.name.value in _PAGED:
                definition = connection.fields.get(child.name.value)
                named = _unwrap(definition.type)[0] if definition else None
                total += 1 + first * self.selection(child.selection_set, named)
            else:
                total += self.field(child, owner)
        return total

    def fields(
        self,
        selection_set: SelectionSetNode | None,
        parent: Any,
        visited: set[str] | None = None,
    ) -> list[tuple[FieldNode, Any]]:
        """The field nodes of a selection set, fragments expanded, each with its parent type.
        Like execution, a fragment spread is expanded once per selection set."""
        found: list[tuple[FieldNode, Any]] = []
        if selection_set is None:
            return found
        if visited is None:
            key = (id(selection_set), parent)
            known = self._expanded.get(key)
            if known is None:
                known = self._expanded[key] = self.fields(selection_set, parent, set())
            return known
        for node in selection_set.selections:
            self.steps += 1
            if self.steps > _MAX_STEPS:
                raise _TooComplex
            if isinstance(node, FieldNode):
                found.append((node, parent))
            elif isinstance(node, InlineFragmentNode):
                condition = (
                    self.schema.get_type(node.type_condition.name.value)
                    if node.type_condition
                    else parent
                )
                found += self.fields(node.selection_set, condition, visited)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in visited:
                visited.add(node.name.value)
                fragment = self.fragments.get(node.name.value)
                if fragment is not None:
                    condition = self.schema.get_type(fragment.type_condition.name.value)
                    found += self.fields(fragment.selection_set, condition, visited)
        return found


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The requested cost of ``operation`` (see the module docstring for the model)."""
    root = schema.get_root_type(operation.operation)
    try:
        cost = _Coster(schema, fragments, variables).selection(operation.selection_set, root)
    except _TooComplex:
        return TOO_COMPLEX
    if operation.operation is OperationType.MUTATION:
        cost += MUTATION_COST * len(operation.selection_set.selections)
    return cost


def actual_cost(
    schema: GraphQLSchema,
    costed: CostedOperation,
    variables: Mapping[str, Any],
    data: Mapping[str, Any] | None,
) -> int:
    """What the operation cost given what it returned: connections and lists count the items
    they held rather than their page size. Never more than the requested cost."""
    if data is None:
        return min(costed.cost, 1)
    coster = _Coster(schema, costed.fragments, variables)
    root = schema.get_root_type(costed.operation.operation)
    try:
        measured = _measure(coster, costed.operation.selection_set, root, data)
    except _TooComplex:
        return costed.cost
    if costed.operation.operation is OperationType.MUTATION:
        measured += MUTATION_COST * len(costed.operation.selection_set.selections)
    return min(measured, costed.cost)


def _measure(
    coster: _Coster,
    selection_set: SelectionSetNode | None,
    parent: Any,
    value: Any,
) -> int:
    if not isinstance(value, Mapping):
        return 0
    total = 0
    for node, owner in coster.fields(selection_set, parent):
        name = node.name.value
        if name.startswith("__"):
            continue
        key = node.alias.value if node.alias else name
        if key not in value:
            continue  # another type's fragment, or skipped
        definition = (
            owner.fields.get(name)
            if isinstance(owner, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        named = _unwrap(definition.type)[0] if definition else None
        item = value[key]
        total += 1
        if isinstance(item, list):
            total += sum(_measure(coster, node.selection_set, named, i) for i in item)
        elif item is not None and node.selection_set is not None:
            total += _measure(coster, node.selection_set, named, item)
    return total


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
