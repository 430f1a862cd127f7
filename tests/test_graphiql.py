"""GraphiQL works offline: the page loads its assets from this server, byte for byte what
strawberry pinned (the browser checks the integrity hashes; so do these tests)."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from app.core.settings import Settings
from app.web.app import create_app
from app.web.graphiql import ASSETS, UnknownAsset, offline_graphiql_html
from tests.conftest import running

_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.DOTALL)
_ATTR = re.compile(r'(src|href|integrity)="([^"]*)"')


def _assets(page: str) -> list[tuple[str, str]]:
    """(url, integrity) of every script and stylesheet of the page."""
    found = []
    for tag in _TAG.findall(page):
        attrs = dict(_ATTR.findall(tag))
        url = attrs.get("src") or attrs.get("href")
        if url:
            found.append((url, attrs.get("integrity", "")))
    return found


async def test_graphiql_loads_nothing_from_another_host(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "unpkg.com" not in page.text
    assets = _assets(page.text)
    assert len(assets) == len(ASSETS) == 7
    for url, integrity in assets:
        assert url.startswith("/graphiql/assets/"), url
        served = await http.get(url)
        assert served.status_code == 200, url
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert served.headers["content-type"].startswith(kind), url
        digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        assert integrity == f"sha384-{digest}", f"{url} is not the file strawberry pinned"


async def test_only_the_shipped_files_are_served(http: httpx.AsyncClient) -> None:
    for name in ("NOTICE.md", "dashboard.html", "..%2Fdashboard.html", "graphiql.min.js.map"):
        assert (await http.get(f"/graphiql/assets/{name}")).status_code == 404, name


def test_a_remote_url_nobody_shipped_stops_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_graphiql_html.cache_clear()
    page = '<script src="https://cdn.example.com/new-graphiql.js"></script>'
    monkeypatch.setattr("app.web.graphiql.get_graphql_ide_html", lambda graphql_ide: page)
    try:
        with pytest.raises(UnknownAsset, match=r"cdn\.example\.com"):
            offline_graphiql_html()
    finally:
        offline_graphiql_html.cache_clear()


async def test_the_root_links_the_explorer_and_the_dashboard(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for link in ('href="/graphql"', 'href="/dashboard"', 'href="/ready"'):
        assert link in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")


async def test_graphiql_page_has_a_strict_policy(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"accept": "text/html"})
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    sources = policy["script-src"].split()
    assert sources[0] == "'self'"
    assert all(s.startswith("'sha256-") for s in sources[1:])
    assert len(sources) == 2  # strawberry's one inline script, by its hash
    assert "unsafe-inline" not in policy["script-src"]


async def test_in_production_the_root_says_where_the_api_is(settings: Settings) -> None:
    production = settings.with_overrides(env="production")
    async for client in running(create_app(production)):
        response = await client.get("/")
        assert response.json() == {"graphql": "/graphql", "health": "/health", "ready": "/ready"}
