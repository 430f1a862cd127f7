"""GraphiQL in headless Chromium on a machine without internet access: every asset loads from
the server itself, the editor renders, and the page reaches the endpoint. Skipped without
Debian's `chromium`, except in CI (CI=true), where it fails (fixture ``browser_available``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.settings import Settings
from tests.browser.cdp import chromium
from tests.browser.test_dashboard import browser_available  # noqa: F401 - a fixture
from tests.live_support import serving

pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("browser_available")
async def test_graphiql_renders_and_runs_a_query_offline(
    settings: Settings, tmp_path: Path
) -> None:
    with serving(settings, tmp_path, {}) as (server,):
        async with chromium(tmp_path / "profile", tmp_path / "chromium.log") as page:
            await page.goto(f"{server.url}/graphql")
            await page.wait_for("document.querySelector('.graphiql-container') !== null", 30)
            # Every asset loaded (a failed load is a console error) and React rendered the
            # editor from the shipped GraphiQL bundle.
            assert await page.evaluate("typeof window.GraphiQL") == "function"
            answer = await page.evaluate(
                "fetch('/graphql', {method: 'POST', headers: {'content-type': "
                "'application/json'}, body: JSON.stringify({query: '{ __typename }'})})"
                ".then(r => r.json())"
            )
            assert answer["data"] == {"__typename": "Query"}, answer
            shot = await page.screenshot(tmp_path / "graphiql.png")
            print(f"\ngraphiql screenshot: {shot}")
            assert page.problems == [], json.dumps(page.problems, indent=2)
