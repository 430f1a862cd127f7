"""CORS: browsers on the origins in CORS_ORIGINS may call the API with a bearer token (never
cookies); other origins get no CORS headers, and without the setting none are sent at all."""

from __future__ import annotations

import httpx

from app.core.settings import Settings
from app.web.app import create_app
from tests.conftest import running
from tests.support import token

APP = "https://app.example.com"
QUERY = {"query": "{ serviceInfo { name } }"}


async def test_only_the_configured_origins_are_allowed(settings: Settings, org: str) -> None:
    configured = settings.with_overrides(cors_origins=(APP, "http://localhost:5173"))
    auth = {"authorization": f"Bearer {token(settings, org, 'admin')}"}
    async for client in running(create_app(configured)):
        preflight = await client.options(
            "/graphql",
            headers={
                "origin": APP,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == APP
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in preflight.headers

        answer = await client.post("/graphql", json=QUERY, headers={"origin": APP, **auth})
        assert answer.json()["data"] == {"serviceInfo": {"name": "billing"}}
        assert answer.headers["access-control-allow-origin"] == APP
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()

        # Another origin: the preflight is refused and answers carry no CORS header, so the
        # browser does not let that page read them.
        other = "https://evil.example.net"
        refused = await client.options(
            "/graphql",
            headers={"origin": other, "access-control-request-method": "POST"},
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        answer = await client.post("/usage/events", json=[], headers={"origin": other, **auth})
        assert "access-control-allow-origin" not in answer.headers


async def test_without_the_setting_no_cors_headers(http: httpx.AsyncClient) -> None:
    preflight = await http.options(
        "/graphql", headers={"origin": APP, "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = await http.post("/graphql", json=QUERY, headers={"origin": APP})
    assert "access-control-allow-origin" not in answer.headers
