"""Helpers shared by the tests (not fixtures)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from app.core.auth import Role, mint_token
from app.core.settings import Settings


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (keeps ?host=/socket options)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def new_org() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


def token(
    settings: Settings, org: str, role: str = "admin", sub: str | None = None, ttl: int = 600
) -> str:
    return mint_token(
        settings, org=org, role=Role(role), subject=sub or f"test-{role}", ttl_seconds=ttl
    )


class GraphQLClient:
    """POSTs operations to the in-process app, optionally with a bearer token."""

    def __init__(self, http: httpx.AsyncClient, bearer: str | None = None) -> None:
        self.http = http
        self.bearer = bearer

    def as_(self, bearer: str | None) -> GraphQLClient:
        return GraphQLClient(self.http, bearer)

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.bearer}"} if self.bearer else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.raw(query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a response that must have no top-level errors."""
        body = await self(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code", "") for e in body.get("errors", [])]
