"""Per-token (per-IP when anonymous) request rate limit on /graphql, across processes.

Counters live in PostgreSQL (an UNLOGGED table, one upsert per request), so every API process
shares them without another service; over the limit a request gets 429 with Retry-After.
"""

from __future__ import annotations

import logging
import random

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import decode_token
from app.errors import Unauthenticated
from db.repositories.rate_limits import RateLimitRepository

__all__ = ["RateLimit"]

log = logging.getLogger(__name__)

_PRUNE_PROBABILITY = 0.001


class RateLimit:
    def __init__(self, app: ASGIApp, *, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services
        settings = services.settings
        org, bucket, limit = "", f"ip:{_client_ip(scope)}", settings.rate_limit_anonymous_per_minute
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            try:
                principal = decode_token(settings, token.strip())
            except Unauthenticated:
                pass  # counted by IP; the GraphQL layer reports why the token is refused
            else:
                org, bucket = principal.org, f"sub:{principal.subject}"
                limit = settings.rate_limit_per_minute
        if limit > 0:
            repository = RateLimitRepository(services.db)
            hits, retry_after = await repository.hit(org, bucket)
            if random.random() < _PRUNE_PROBABILITY:  # noqa: S311 - not security relevant
                await repository.prune()
            if hits > limit:
                response = JSONResponse(
                    {
                        "errors": [
                            {
                                "message": f"Rate limit of {limit} requests per minute exceeded.",
                                "extensions": {"code": "RATE_LIMITED"},
                            }
                        ]
                    },
                    status_code=429,
                    headers={"Retry-After": str(retry_after)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
