"""The query-cost extension: refuses documents over the cost limit, charges the caller's rate
limit budget (``app.throttling.budget``) before execution, and reports what was charged on every
response, as Shopify does:

    "extensions": {"cost": {"requestedQueryCost": 151, "actualQueryCost": 31,
      "throttleStatus": {"maximumAvailable": 25000, "currentlyAvailable": 24969,
                         "restoreRate": 500}}}

HTTP and WebSocket operations run through it alike.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
)
from strawberry.extensions import SchemaExtension

from app.context import Context
from app.throttling import Caller, Throttle, ThrottleStatus
from schema.limits import CostedOperation, actual_cost, operation_cost
from schema.strawberry_internals import graphql_core_schema

__all__ = ["QueryCost"]

log = logging.getLogger("billing.graphql")

INVALID_DOCUMENT_COST = 1
"""Charged for a document refused before execution (syntax or validation errors)."""


def _operation(
    document: DocumentNode, name: str | None
) -> tuple[OperationDefinitionNode, dict[str, FragmentDefinitionNode]] | None:
    """The operation a request runs (validation has made sure there is exactly one)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        operations = [o for o in operations if o.name and o.name.value == name]
    return (operations[0], fragments) if len(operations) == 1 else None


class QueryCost(SchemaExtension):
    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost
        self._requested: int | None = None
        self._actual: int | None = None
        self._status: ThrottleStatus | None = None
        self._charged = False

    def _charging(self) -> tuple[Throttle, Caller] | None:
        """The rate limiter and the caller's bucket, when this caller is limited."""
        context = self.execution_context.context
        if not isinstance(context, Context):
            return None
        caller = context.throttle_caller()
        return (context.services.throttle, caller) if caller is not None else None

    async def on_parse(self) -> AsyncIterator[None]:
        yield
        await self._charge_if_refused()

    async def on_validate(self) -> AsyncIterator[None]:
        yield
        await self._charge_if_refused()

    async def _charge_if_refused(self) -> None:
        """A document refused before execution (syntax or validation errors) costs a little,
        so floods of bad documents still count."""
        if self._charged or not self.execution_context.pre_execution_errors:
            return
        charging = self._charging()
        if charging is None:
            return
        throttle, caller = charging
        self._charged = True
        try:
            self._status = await throttle.spend(caller, INVALID_DOCUMENT_COST)
        except Exception as exc:  # noqa: BLE001 - the answer is an error already
            log.error("rate limit failed: %s", type(exc).__name__)

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        document = execution.graphql_document
        found = _operation(document, execution.operation_name) if document else None
        if found is None:
            yield
            return
        operation, fragments = found
        schema = graphql_core_schema(execution.schema)
        variables = execution.variables or {}
        charging = self._charging()
        try:
            cost = await self._admit(operation, fragments, variables, charging)
        except GraphQLError:
            raise
        except Exception as exc:  # noqa: BLE001 - pre-execution errors are shown as they are
            log.error("query cost or rate limit failed: %s", type(exc).__name__)
            raise GraphQLError(
                "Unexpected error.", extensions={"code": "INTERNAL_SERVER_ERROR"}
            ) from None
        yield
        if operation.operation is OperationType.SUBSCRIPTION:
            self._actual = cost  # a stream's events are not charged; its setup costs in full
            return
        data = getattr(execution.result, "data", None)
        if data is None or isinstance(data, dict):
            costed = CostedOperation(operation, fragments, cost)
            try:
                self._actual = actual_cost(schema, costed, variables, data)
            except Exception as exc:  # noqa: BLE001 - no refund is the safe side
                log.error("actual query cost failed: %s", type(exc).__name__)
                return
            if charging is not None:
                throttle, caller = charging
                throttle.refund(caller, cost - self._actual)

    async def _admit(
        self,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        charging: tuple[Throttle, Caller] | None,
    ) -> int:
        """Cost the operation, refuse it past the limit, charge the caller's budget."""
        cost = operation_cost(
            graphql_core_schema(self.execution_context.schema), operation, fragments, variables
        )
        self._requested = cost
        if cost > self.max_cost:
            raise GraphQLError(
                f"Query cost {cost} exceeds the limit of {self.max_cost}: ask for fewer nodes "
                "(a connection's `first` multiplies the cost of its selection).",
                extensions={"code": "QUERY_TOO_COSTLY", "requestedQueryCost": cost},
            )
        if charging is None:
            return cost
        throttle, caller = charging
        self._charged = True
        status = self._status = await throttle.spend(caller, cost)
        if not status.granted:
            retry = status.seconds_until(cost)
            self.execution_context.context.set_response_header("Retry-After", str(retry))
            raise GraphQLError(
                f"Throttled: this operation costs {cost} points and "
                f"{status.currently_available} of {status.maximum_available} are available "
                f"(they refill at {status.restore_rate} per second); retry in {retry} s.",
                extensions={"code": "THROTTLED", "retryAfterSeconds": retry},
            )
        return cost

    def get_results(self) -> dict[str, Any]:
        if self._requested is None and self._status is None:
            return {}
        cost: dict[str, Any] = {
            "requestedQueryCost": self._requested,
            "actualQueryCost": self._actual,
        }
        if self._status is not None:
            cost["throttleStatus"] = {
                "maximumAvailable": self._status.maximum_available,
                "currentlyAvailable": self._status.currently_available,
                "restoreRate": self._status.restore_rate,
            }
        return {"cost": cost}
