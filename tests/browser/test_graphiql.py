"""GraphiQL in headless Chromium on a machine without internet access: every asset loads from
the server itself under the page's Content-Security-Policy, and a query typed in the page with
a token in its headers editor runs and shows its result. Skipped without Debian's `chromium`,
except in CI (CI=true), where it fails (fixture ``browser_available``)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest

from app.core.settings import Settings
from tests.browser.cdp import chromium
from tests.browser.test_dashboard import browser_available  # noqa: F401 - a fixture
from tests.conftest import CREATE_PLAN
from tests.live_support import serving
from tests.support import GraphQLClient, new_org, token

pytestmark = [pytest.mark.slow, pytest.mark.once]

QUERY = "{ plans(first: 5) { edges { node { code name } } } }"


@pytest.mark.usefixtures("browser_available")
async def test_graphiql_runs_a_query_with_a_token_offline(
    settings: Settings, tmp_path: Path
) -> None:
    org = new_org()
    admin = token(settings, org, "admin")
    with serving(settings, tmp_path, {}) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            made = await GraphQLClient(http, admin).data(
                CREATE_PLAN,
                {
                    "input": {
                        "code": "graphiql-offline",
                        "name": "Seen in GraphiQL",
                        "tier": "BASIC",
                        "price": {"amount": 900, "currency": "EUR"},
                        "interval": "MONTH",
                    }
                },
            )
            assert made["planCreate"]["errors"] == []
        headers = json.dumps({"Authorization": f"Bearer {admin}"})
        # The page decodes its parameters with decodeURIComponent: spaces as %20, not "+".
        query = urlencode({"q": QUERY, "headers": headers}, quote_via=quote)
        url = f"{server.url}/graphql?{query}"
        async with chromium(tmp_path / "profile", tmp_path / "chromium.log") as page:
            await page.goto(url)
            await page.wait_for("document.querySelector('.graphiql-execute-button') !== null", 30)
            await page.evaluate("document.querySelector('.graphiql-execute-button').click()")
            shown = await page.wait_for(
                "(document.querySelector('.graphiql-response')?.innerText ?? '')"
                ".includes('Seen in GraphiQL') && "
                "document.querySelector('.graphiql-response').innerText",
                30,
            )
            assert "graphiql-offline" in shown
            shot = await page.screenshot(tmp_path / "graphiql.png")
            print(f"\ngraphiql screenshot: {shot}")
            assert page.problems == [], json.dumps(page.problems, indent=2)
