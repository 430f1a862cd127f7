"""Adapts the strawberry schema to Starlette: authentication, the per-request Context, strict
JSON, and the WebSocket rules (token expiry, message size and shape, connections per token;
the subclasses of strawberry's WebSocket machinery that apply them are in
``app/web/strawberry_internals.py``).

Every way in runs the same checks: an HTTP body and a WebSocket message go through the same
JSON decoder (``app/web/strict_json.py``); an operation over either transport is costed and
charged by the same extension (``schema.throttling``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cross_web import HTTPException, StarletteRequestAdapter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from app.context import Context
from app.core.auth import Principal
from app.core.errors import Unauthenticated
from app.services import Services
from app.web.graphiql import graphiql_policy, offline_graphiql_html
from app.web.request_log import note
from app.web.strawberry_internals import ConnectionsExceeded, TransportWSHandler, WebSocketAdapter
from app.web.strict_json import InvalidJSON, decode_strict_json

__all__ = ["BillingGraphQL"]


def _persisted(data: object) -> bool:
    extensions = getattr(data, "extensions", None)
    return isinstance(extensions, dict) and extensions.get("persistedQuery") is not None


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else value


class _RequestAdapter(StarletteRequestAdapter):
    """Media types are case-insensitive (RFC 9110): `application/JSON` is JSON. Keeps the
    Starlette request, for the request's log line."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.starlette_request = request

    @property
    def content_type(self) -> str | None:
        value = super().content_type
        if value is None:
            return None
        media, sep, parameters = value.partition(";")
        return media.strip().lower() + sep + parameters


class BillingGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    request_adapter_class = _RequestAdapter
    websocket_adapter_class = WebSocketAdapter

    def __init__(
        self,
        schema: Any,
        *,
        graphiql: bool,
        init_timeout_seconds: int = 10,
        max_subscriptions: int = 10,
        max_message_bytes: int = 262_144,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            # GET carries persisted queries only (parse_http_body); mutations never run on GET.
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=init_timeout_seconds),
            max_subscriptions_per_connection=max_subscriptions,
        )
        self.max_message_bytes = max_message_bytes

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its assets served from here, so it works offline
        (``app/web/graphiql.py``)."""
        return HTMLResponse(
            offline_graphiql_html(),
            headers={
                "Content-Security-Policy": graphiql_policy(),
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def parse_http_body(self, request: Any) -> Any:
        """The request's GraphQL data; its operation name goes into the request's log line."""
        data = await super().parse_http_body(request)
        if request.method == "GET" and not _persisted(data):
            raise HTTPException(
                400,
                "GET /graphql runs persisted queries only (`extensions` with a "
                "`persistedQuery` hash); send other operations with POST.",
            )
        names = [item.operation_name for item in (data if isinstance(data, list) else [data])]
        if isinstance(request, _RequestAdapter):
            state = request.starlette_request.scope.setdefault("state", {})
            note(state, operation=",".join(n or "-" for n in names))
        return data

    def decode_json(self, data: str | bytes) -> object:
        return decode_strict_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except InvalidJSON as exc:
            raise HTTPException(400, exc.reason) from None

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        services: Services = request.app.state.services
        principal, error = await self._authenticate(
            services, _bearer(request.headers.get("authorization"))
        )
        http_response = None if isinstance(request, WebSocket) else response
        if principal is not None and not isinstance(request, WebSocket):
            note(request.scope.setdefault("state", {}), org=principal.org)
        return Context(
            services, principal=principal, auth_error=error, request=request, response=http_response
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws clients authenticate in connection_init's payload:
        ``{"authorization": "Bearer <token>"}``; a token holds at most
        WS_MAX_CONNECTIONS_PER_TOKEN connections at once, across processes."""
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        token = _bearer(str(params.get("authorization") or params.get("Authorization") or ""))
        if token:
            context.principal, context.auth_error = await self._authenticate(
                context.services, token
            )
        principal = context.principal
        if principal is None:
            raise ConnectionRejectionError({"code": "UNAUTHENTICATED"})
        slot = await context.services.connections.acquire(principal)
        if slot is None:
            limit = context.services.connections.per_token
            raise ConnectionsExceeded(
                f"This token already holds {limit} open connections "
                f"(WS_MAX_CONNECTIONS_PER_TOKEN={limit}); close one first."
            )
        context.connection_slot = (principal, slot)
        return None

    @staticmethod
    async def _authenticate(
        services: Services, token: str | None
    ) -> tuple[Principal | None, Unauthenticated | None]:
        """An API key, an OIDC token or one of the service's own tokens (app.identity)."""
        if token is None:
            return None, None
        try:
            return await services.identity.authenticate(token), None
        except Unauthenticated as exc:
            return None, exc
