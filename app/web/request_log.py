"""One log line per HTTP request, and a request id the caller can follow.

``X-Request-ID`` is taken from the request when it is a plain token (letters, digits, ``.``,
``_``, ``-``; at most 128), otherwise made here, and echoed on the response. The line says the
method, the route template (never the raw path: ids stay out of the logs), the status, the
duration, the request id, and for GraphQL the operation name and the caller's organization
(what ``note`` recorded while the request ran). Never bodies, variables, tokens or card data.
``JsonFormatter`` writes every log record as one JSON object per line (production).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.metrics import route_template

__all__ = ["REQUEST_ID", "JsonFormatter", "RequestLog", "note"]

log = logging.getLogger("billing.request")

_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_NOTES = "billing_request_log"
REQUEST_ID = "request_id"
"""The key of the request's id in its scope state (the audit log records it)."""
_SHOWN = ("operation", "org", "request_id")


def note(state: MutableMapping[str, Any], **fields: str | None) -> None:
    """Add fields to the current request's log line (``state``: the request's scope state)."""
    notes = state.get(_NOTES)
    if isinstance(notes, dict):
        notes.update({k: v for k, v in fields.items() if v})


class RequestLog:
    """ASGI middleware: the request id, then one line when the response is done."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _ID.fullmatch(given) else uuid.uuid4().hex
        notes: dict[str, str] = {}
        state = scope.setdefault("state", {})
        state[_NOTES] = notes
        state[REQUEST_ID] = request_id
        status = 500
        started = time.perf_counter()

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            fields = {
                "method": scope["method"],
                "route": route_template(scope),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                **notes,
                "request_id": request_id,
            }
            shown = " ".join(f"{k}={v}" for k, v in fields.items() if k in _SHOWN)
            log.info(
                "%s %s %d %.1f ms %s",
                fields["method"],
                fields["route"],
                status,
                fields["duration_ms"],
                shown,
                extra=fields,
            )


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # the type only: messages can leak
        return json.dumps(entry, default=str)
