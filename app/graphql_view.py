"""Adapts the strawberry schema to Starlette: authentication and the per-request Context."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types.unset import UnsetType

from app.auth import Principal, decode_token
from app.context import Context
from app.errors import Unauthenticated
from app.services import Services

__all__ = ["BillingGraphQL"]


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else value


class _TransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with a refusal that names the per-connection limit (strawberry's
    own says only "Subscription limit reached")."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                f"This connection already runs {limit} subscriptions, the most one connection "
                f"may run (WS_MAX_SUBSCRIPTIONS_PER_CONNECTION={limit}); complete one or open "
                "another connection.",
                extensions={"code": "SUBSCRIPTION_LIMIT", "limit": limit},
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)


class BillingGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = _TransportWS

    def __init__(
        self,
        schema: Any,
        *,
        graphiql: bool,
        init_timeout_seconds: int = 10,
        max_subscriptions: int = 10,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
            multipart_uploads_enabled=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=init_timeout_seconds),
            max_subscriptions_per_connection=max_subscriptions,
        )

    def decode_json(self, data: str | bytes) -> object:
        """JSON in UTF-8 only (json.loads would guess UTF-16/32 from a BOM and fail with a
        UnicodeDecodeError), and no NUL characters: PostgreSQL text cannot store them."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise HTTPException(400, "The request body is not valid UTF-8.") from None
        if "\x00" in data or "\\u0000" in data.lower():
            raise HTTPException(400, "The request contains a NUL character, which is not allowed.")
        return json.loads(data)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services: Services = request.app.state.services
        principal, error = self._authenticate(
            services, _bearer(request.headers.get("authorization"))
        )
        return Context(services, principal=principal, auth_error=error, request=request)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws clients authenticate in connection_init's payload:
        ``{"authorization": "Bearer <token>"}``."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        token = _bearer(str(params.get("authorization") or params.get("Authorization") or ""))
        if token:
            context.principal, context.auth_error = self._authenticate(context.services, token)
        if context.principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        return None

    @staticmethod
    def _authenticate(
        services: Services, token: str | None
    ) -> tuple[Principal | None, Unauthenticated | None]:
        if token is None:
            return None, None
        try:
            return decode_token(services.settings, token), None
        except Unauthenticated as exc:
            return None, exc
