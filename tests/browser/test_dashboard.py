"""The /dashboard page in headless Chromium against a real `billing serve`.

Signs in with an admin token (with `?locale=en-US`, so amounts read "$50.00"), then a payment
is confirmed through the API; the new total, the chart's bar for today and the payment must
appear on the page without a reload. Keeps a screenshot under the test's tmp_path. Needs
Debian's `chromium` (`apt-get install chromium`): skipped without it, except in CI (CI=true),
where it fails. Locale formatting, the chart's axes and tooltips, the MRR trend and the layout
at phone and desktop widths are in `test_dashboard_format.py`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from tests.browser.cdp import CHROMIUM, Page, chromium
from tests.conftest import CONFIRM_PAYMENT, CREATE_CUSTOMER, CREATE_PAYMENT
from tests.live_support import serving
from tests.support import GraphQLClient, new_org, token

pytestmark = [pytest.mark.slow, pytest.mark.once]


@pytest.fixture
def browser_available() -> None:
    if not Path(CHROMIUM).exists():
        reason = f"headless Chromium not found at {CHROMIUM}: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


async def payment(api: GraphQLClient, customer_id: str, amount: int) -> dict[str, Any]:
    variables = {
        "input": {
            "customerId": customer_id,
            "amount": {"amount": amount, "currency": "USD"},
            "paymentMethodId": "pm_card_visa",
            "description": "Browser test",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    made = (await api.data(CREATE_PAYMENT, variables))["paymentIntentCreate"]
    assert made["errors"] == [], made
    created: dict[str, Any] = made["payment"]
    return created


async def confirm(api: GraphQLClient, payment_id: str) -> None:
    variables = {"input": {"paymentId": payment_id, "idempotencyKey": str(uuid.uuid4())}}
    done = (await api.data(CONFIRM_PAYMENT, variables))["paymentIntentConfirm"]
    assert done["errors"] == [], done


def text_of(selector: str, what: str = "textContent") -> str:
    """JavaScript: a property of the first element matching ``selector``, or null (in
    parentheses, so it can be compared)."""
    return f"(document.querySelector({json.dumps(selector)})?.{what} ?? null)"


def figure(field: str) -> str:
    return text_of(f'[data-currency="USD"] [data-field="{field}"]')


def row_status(payment_id: str) -> str:
    return text_of(f'tr[data-payment-id="{payment_id}"] .pill')


TODAY_BAR = text_of('[data-currency="USD"] rect.today', "dataset.amount")


async def sign_in(page: Page, bearer: str) -> None:
    await page.wait_for("document.getElementById('token') !== null")
    await page.type_into("#token", bearer)
    await page.evaluate("document.querySelector('#sign-in-form button[type=submit]').click()")


@pytest.mark.usefixtures("browser_available")
async def test_dashboard_shows_a_confirmed_payment_live(settings: Settings, tmp_path: Path) -> None:
    org = new_org()
    admin = token(settings, org, "admin")
    with serving(settings, tmp_path, {}) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            api = GraphQLClient(http, admin)
            made = await api.data(
                CREATE_CUSTOMER, {"input": {"email": "ada@example.com", "name": "Ada Lovelace"}}
            )
            customer = made["customerCreate"]["customer"]
            first = await payment(api, customer["id"], 5000)
            await confirm(api, first["id"])
            second = await payment(api, customer["id"], 2599)

            async with chromium(tmp_path / "profile", tmp_path / "chromium.log") as page:
                await page.goto(f"{server.url}/dashboard?locale=en-US")
                await sign_in(page, admin)
                await page.wait_for(f"{figure('today')} === '$50.00'")
                await page.wait_for(f"{row_status(first['id'])} === 'succeeded'")
                assert await page.evaluate("document.getElementById('status').textContent") == (
                    "Live"
                )
                assert await page.evaluate("sessionStorage.length") == 1
                await page.evaluate("window.__sameDocument = true")

                await confirm(api, second["id"])

                await page.wait_for(f"{figure('today')} === '$75.99'")
                assert await page.evaluate(figure("thisMonth")) == "$75.99"
                assert await page.evaluate(figure("netTotal")) == "$75.99"
                assert await page.evaluate(figure("paymentsToday")) == "2"
                await page.wait_for(f"{TODAY_BAR} === '7599'")
                await page.wait_for(f"{row_status(second['id'])} === 'succeeded'")
                assert await page.evaluate("window.__sameDocument === true"), "page reloaded"
                rows = await page.evaluate(
                    "[...document.querySelectorAll('#payments tbody tr')]"
                    ".map(r => r.dataset.paymentId)"
                )
                assert rows[:2] == [second["id"], first["id"]], rows  # newest first
                shot = await page.screenshot(tmp_path / "dashboard.png")
                print(f"\ndashboard screenshot: {shot}")

                # A token without the admin role is turned away with a message.
                await page.evaluate("document.getElementById('sign-out').click()")
                await sign_in(page, token(settings, org, "service"))
                message = await page.wait_for("document.getElementById('token-error').textContent")
                assert "admin token" in message
                assert await page.evaluate("sessionStorage.length") == 0
                assert page.problems == [], json.dumps(page.problems, indent=2)


async def test_dashboard_is_one_self_contained_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    html = response.text
    # No CDN and no build: nothing is loaded from elsewhere, script and style are inline.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html
    assert "url(" not in html
    assert "graphql-transport-ws" in html
