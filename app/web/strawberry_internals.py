"""Every subclass of strawberry's WebSocket machinery, which strawberry documents no extension
point for (pinned: strawberry-graphql 0.341.2, its graphql-transport-ws handler and ASGI
WebSocket adapter).

``app/web/graphql_view.py`` plugs these in through the view's ``websocket_adapter_class`` and
``graphql_transport_ws_handler_class``. What they rely on beyond strawberry's public API:
``ASGIWebSocketAdapter.iter_json`` / ``.send_json`` / ``.ws`` / ``.view`` / ``.close``, and
``BaseGraphQLTransportWSHandler.handle_message`` / ``handle_connection_init`` /
``handle_subscribe`` / ``handle_invalid_message`` / ``send_message`` / ``shutdown`` with its
``websocket``, ``context``, ``operations``, ``connection_acknowledged`` and
``max_subscriptions_per_connection`` attributes. ``tests/test_library_internals.py`` checks
those names and signatures on every run, so an upgrade that changes them fails there, naming
this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonTextMessageReceived, WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)

from app.context import Context
from app.core.auth import Principal

__all__ = ["ConnectionsExceeded", "LimitedView", "TransportWSHandler", "WebSocketAdapter"]

log = logging.getLogger(__name__)

# graphql-transport-ws close codes (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md)
_BAD_REQUEST = 4400
_UNAUTHORIZED = 4401
_TOO_MANY = 4429
_MESSAGE_TOO_BIG = 1009  # RFC 6455


@runtime_checkable
class LimitedView(Protocol):
    """What the adapter needs of the view: the message size limit and the JSON decoder (which
    raises ``json.JSONDecodeError`` with the reason as its ``msg``)."""

    max_message_bytes: int

    def decode_json(self, data: str | bytes) -> object: ...


class _EncodedData:
    """The JSON text of recently sent ``next`` results' ``data``, by the identity of the data
    object (held, so the identity is not reused while cached). A result shared by many
    subscribers (``schema/live.py`` executes a revenue snapshot once per document) is one data
    object: it is encoded once, not once per subscriber. One per process; the event loop is
    single-threaded, so no lock."""

    def __init__(self, maxsize: int = 64) -> None:
        self._maxsize = maxsize
        self._texts: OrderedDict[int, tuple[object, str]] = OrderedDict()
        self.hits = 0

    def text(self, data: object) -> str:
        entry = self._texts.get(id(data))
        if entry is not None and entry[0] is data:
            self.hits += 1
            return entry[1]
        text = json.dumps(data)
        self._texts[id(data)] = (data, text)
        if len(self._texts) > self._maxsize:
            self._texts.popitem(last=False)
        return text


encoded_data = _EncodedData()


def next_message_text(message: Mapping[str, object]) -> str | None:
    """The JSON text of a ``next`` message whose ``data`` is an object, with the data's text
    taken from ``encoded_data``; None for any other message."""
    payload = message.get("payload")
    if message.get("type") != "next" or not isinstance(payload, dict):
        return None
    data = payload.get("data")
    if not isinstance(data, dict):
        return None
    rest = {key: value for key, value in payload.items() if key != "data"}
    tail = "}" if not rest else "," + json.dumps(rest)[1:]
    return (
        f'{{"id": {json.dumps(message.get("id"))}, "type": "next", '
        f'"payload": {{"data": {encoded_data.text(data)}{tail}}}'
    )


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Refuses messages larger than the HTTP body limit (close 1009) before decoding them,
    and closes with 4400 and the reason when a message is not strict JSON (a close reason
    holds at most 123 bytes). Sends ``next`` messages with their data encoded once per result
    (``next_message_text``)."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        text = next_message_text(message)
        if text is None:
            await super().send_json(message)
            return
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        view = self.view
        assert isinstance(view, LimitedView)
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if len(text) > view.max_message_bytes:
                    await self.close(
                        _MESSAGE_TOO_BIG,
                        f"Message exceeds {view.max_message_bytes} bytes (MAX_BODY_BYTES).",
                    )
                    return
                try:
                    message = view.decode_json(text)
                except json.JSONDecodeError as exc:
                    if ignore_parsing_errors:
                        continue
                    await self.close(_BAD_REQUEST, exc.msg[:120])
                    return
                yield message
        except KeyError as exc:
            raise NonTextMessageReceived from exc
        except WebSocketDisconnect:
            pass


class ConnectionsExceeded(Exception):
    """Raised by the view's ``on_ws_connect``: the token holds all the connections it may;
    the socket is closed with 4429 and the message."""


def _shape_problem(message: object) -> str | None:
    """What is wrong with a graphql-transport-ws message's shape, if anything."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message is an object with a string `type`."
    if message["type"] != "subscribe":
        return None
    payload = message.get("payload")
    if not isinstance(message.get("id"), str) or not 0 < len(message["id"]) <= 128:
        return "A subscribe message has a string `id` of 1-128 characters."
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "A subscribe message's payload has a string `query`."
    if not isinstance(payload.get("variables"), dict | None):
        return "A subscribe message's `variables` is an object or null."
    if not isinstance(payload.get("operationName"), str | None):
        return "A subscribe message's `operationName` is a string or null."
    return None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with our rules: a token's expiry closes the socket (4401) and is
    checked before every operation; a token may hold a limited number of connections across
    processes (4429); malformed messages close with 4400; past the per-connection operation
    limit a new one gets an error naming the limit."""

    _expiry_task: asyncio.Task[None] | None = None
    _key_task: asyncio.Task[None] | None = None
    _unwatch_key: Callable[[], None] | None = None

    async def handle_message(self, message: Message) -> None:
        problem = _shape_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except ConnectionsExceeded as exc:
            await self.websocket.close(code=_TOO_MANY, reason=str(exc))
            return
        if self.connection_acknowledged:
            self._watch_expiry()
            self._watch_key()

    def _principal(self) -> Principal | None:
        return self.context.principal

    def _watch_expiry(self) -> None:
        principal = self._principal()
        if principal is None or principal.expires_at is None:
            return

        async def close_at_expiry(at: datetime) -> None:
            await asyncio.sleep(max((at - datetime.now(UTC)).total_seconds(), 0))
            await self._close_expired()

        self._expiry_task = asyncio.create_task(close_at_expiry(principal.expires_at))

    def _watch_key(self) -> None:
        """A connection signed in with an API key closes (4401) when the key is revoked or
        expires, in whichever process that happens: told by the key cache's invalidations,
        with the cache's lifetime as the backstop (app/identity/api_keys.py)."""
        principal = self._principal()
        if principal is None or principal.key_id is None:
            return
        keys = self.context.services.identity.api_keys
        changed = asyncio.Event()
        self._unwatch_key = keys.watch(principal.key_id, changed.set)

        async def check_on_change(prefix: str, key_id: str) -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=keys.cache_seconds)
                changed.clear()
                try:
                    key = await keys.current(prefix, key_id)
                except Exception as exc:  # noqa: BLE001 - e.g. the database is away: try again
                    log.warning("could not check an API key: %s", type(exc).__name__)
                    changed.set()
                    await asyncio.sleep(1)
                    continue
                if key is None or key.revoked_at is not None:
                    await self._close_revoked()
                    return
                current = self._principal()
                if current is not None and current.expires_at != key.expires_at:
                    # Rolled: the grace period ends it sooner; the expiry watch follows.
                    self.context.principal = dataclasses.replace(current, expires_at=key.expires_at)
                    if self._expiry_task is not None:
                        self._expiry_task.cancel()
                        self._expiry_task = None
                    self._watch_expiry()

        self._key_task = asyncio.create_task(check_on_change(principal.subject, principal.key_id))

    async def _close_revoked(self) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(
                code=_UNAUTHORIZED, reason="API key revoked: reconnect with a valid key."
            )

    async def _close_expired(self) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(
                code=_UNAUTHORIZED, reason="Token expired: reconnect with a new token."
            )

    def _expired(self) -> bool:
        principal = self._principal()
        return (
            principal is not None
            and principal.expires_at is not None
            and principal.expires_at <= datetime.now(UTC)
        )

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and self._expired():
            await self._close_expired()
            return
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

    async def shutdown(self) -> None:
        if self._unwatch_key is not None:
            self._unwatch_key()
            self._unwatch_key = None
        for task in (self._expiry_task, self._key_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await super().shutdown()
        held = self.context.connection_slot
        if held is not None:
            self.context.connection_slot = None
            with contextlib.suppress(Exception):
                await self.context.services.connections.release(*held)
