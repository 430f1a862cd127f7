"""The /dashboard page's formatting in headless Chromium: `?locale=de-DE`, EUR, JPY and USD.

Every amount is compared with what Chromium's own `Intl` makes of it (the spaces Intl puts
between number and symbol are not written out here); the 30-day chart has money ticks on its y
axis and date ticks on its x axis, and each bar a tooltip with its date and amount on focus and
on hover; the MRR trend compares MRR now with MRR 30 days before (`subscriptionStats.mrrAtStart`,
with the organization's test clock moved on a month between two subscriptions). The layout is
checked at 1280 and 390 CSS pixels wide: no horizontal scrolling, the same type size, cards
side by side or stacked; both screenshots are kept under the test's tmp_path.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from tests.browser.cdp import Page, chromium
from tests.browser.test_dashboard import browser_available, confirm, sign_in
from tests.conftest import CREATE_CUSTOMER, CREATE_PAYMENT, CREATE_PLAN
from tests.live_support import serving
from tests.stats_support import ADVANCE, SET_CARD, SUBSCRIBE
from tests.support import GraphQLClient, new_org, token

pytestmark = [pytest.mark.slow, pytest.mark.once]

__all__ = ["browser_available"]  # the fixture, shared with test_dashboard.py


async def ok(api: GraphQLClient, document: str, name: str, values: dict[str, Any]) -> Any:
    payload = (await api.data(document, {"input": values}))[name]
    assert payload["errors"] == [], payload
    return payload


async def paid(api: GraphQLClient, customer_id: str, amount: int, currency: str) -> str:
    made = await ok(
        api,
        CREATE_PAYMENT,
        "paymentIntentCreate",
        {
            "customerId": customer_id,
            "amount": {"amount": amount, "currency": currency},
            "paymentMethodId": "pm_card_visa",
            "description": f"Browser test {currency}",
            "idempotencyKey": str(uuid.uuid4()),
        },
    )
    payment_id: str = made["payment"]["id"]
    await confirm(api, payment_id)
    return payment_id


async def subscriber(api: GraphQLClient, name: str, plan_id: str) -> None:
    customer = (
        await ok(
            api,
            CREATE_CUSTOMER,
            "customerCreate",
            {"email": f"{name.lower()}@example.com", "name": name},
        )
    )["customer"]
    await ok(
        api,
        SET_CARD,
        "customerSetDefaultPaymentMethod",
        {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"},
    )
    await ok(
        api,
        SUBSCRIBE,
        "subscriptionCreate",
        {
            "customerId": customer["id"],
            "planId": plan_id,
            "trialDays": 0,
            "idempotencyKey": str(uuid.uuid4()),
        },
    )


async def plan(api: GraphQLClient, code: str, amount: int) -> str:
    values = {
        "code": code,
        "name": code.title(),
        "tier": "PRO",
        "price": {"amount": amount, "currency": "USD"},
        "interval": "MONTH",
    }
    plan_id: str = (await ok(api, CREATE_PLAN, "planCreate", values))["plan"]["id"]
    return plan_id


def js(value: Any) -> str:
    return json.dumps(value)


def money(currency: str, decimal: str, **options: Any) -> str:
    """JavaScript: Chromium's own Intl formatting of an amount in de-DE."""
    settings = {"style": "currency", "currency": currency, **options}
    return f"new Intl.NumberFormat('de-DE', {js(settings)}).format({js(decimal)})"


def card_text(currency: str, selector: str) -> str:
    query = f'[data-currency="{currency}"] {selector}'
    return f"(document.querySelector({js(query)})?.textContent ?? null)"


async def layout(page: Page) -> dict[str, Any]:
    """What the layout checks need, measured in the page."""
    result: dict[str, Any] = await page.evaluate(
        """(() => {
          const px = (node) => parseFloat(getComputedStyle(node).fontSize);
          const cards = [...document.querySelectorAll('.currency')];
          const charts = [...document.querySelectorAll('svg.chart')];
          return {
            viewport: document.documentElement.clientWidth,
            scrollWidth: document.documentElement.scrollWidth,
            figureSize: px(document.querySelector('.figures dd')),
            tickSize: px(document.querySelector('svg.chart .y-tick')),
            bodySize: px(document.querySelector('#payments td')),
            cardTops: cards.map((c) => Math.round(c.getBoundingClientRect().top)),
            cardsInside: cards.every((c) => c.getBoundingClientRect().right <= innerWidth),
            // Charts are drawn at their real size: never scaled, so their text is not either.
            chartsUnscaled: charts.every(
              (s) => Math.abs(s.getBoundingClientRect().width - Number(s.getAttribute('width'))) < 1
            ),
            overflowing: [...document.querySelectorAll('.figures dd, h3, td')]
              .filter((n) => n.scrollWidth > n.clientWidth + 1).map((n) => n.textContent),
            vwFonts: [...document.styleSheets].flatMap((s) => [...s.cssRules])
              .map((r) => r.cssText).filter((t) => /font[^;]*vw/.test(t)),
          };
        })()"""
    )
    return result


@pytest.mark.usefixtures("browser_available")
async def test_dashboard_formats_money_dates_chart_and_mrr_trend_for_the_locale(
    settings: Settings, tmp_path: Path
) -> None:
    org = new_org()
    admin = token(settings, org, "admin")
    with serving(settings, tmp_path, {}) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            api = GraphQLClient(http, admin)
            # MRR 10.00 USD, then a month later 25.00: +150 % against 30 days ago.
            small, large = await plan(api, "small", 1000), await plan(api, "large", 1500)
            await subscriber(api, "Grace", small)
            later = datetime.now(UTC) + timedelta(days=31)
            moved = (await api.data(ADVANCE, {"to": later.isoformat()}))["testClockAdvance"]
            assert moved["errors"] == [], moved
            await subscriber(api, "Edsger", large)
            buyer = (
                await ok(
                    api,
                    CREATE_CUSTOMER,
                    "customerCreate",
                    {"email": "ada@example.com", "name": "Ada Lovelace"},
                )
            )["customer"]
            eur = await paid(api, buyer["id"], 1999, "EUR")
            jpy = await paid(api, buyer["id"], 1500, "JPY")

            async with chromium(tmp_path / "profile", tmp_path / "chromium.log") as page:
                await page.set_viewport(1280, 900)
                await page.goto(f"{server.url}/dashboard?locale=de-DE")
                assert await page.evaluate("document.documentElement.dataset.locale") == "de-DE"
                await sign_in(page, admin)

                # Totals: the exact Intl strings, with the currency's own fraction digits.
                eur_total = await page.evaluate(money("EUR", "19.99"))
                jpy_total = await page.evaluate(money("JPY", "1500"))
                assert "19,99" in eur_total, eur_total
                assert "€" in eur_total, eur_total
                assert "1.500" in jpy_total, jpy_total
                assert "," not in jpy_total, jpy_total  # no fraction digits
                await page.wait_for(f"{card_text('EUR', '[data-field=today]')} === {js(eur_total)}")
                await page.wait_for(f"{card_text('JPY', '[data-field=today]')} === {js(jpy_total)}")
                assert await page.evaluate(card_text("EUR", "[data-field=netTotal]")) == eur_total
                assert await page.evaluate(card_text("JPY", "[data-field=thisMonth]")) == jpy_total
                mrr = await page.evaluate(money("USD", "25.00"))
                await page.wait_for(f"{card_text('USD', '[data-field=mrr]')} === {js(mrr)}")

                # Exact beyond 2^53 minor units, and KWD with its three fraction digits.
                big = "123456789012345678901"
                assert await page.evaluate(f"formatMinor('USD', {js(big)}, 2)") == (
                    await page.evaluate(money("USD", "1234567890123456789.01"))
                )
                assert (await page.evaluate(f"formatMinor('USD', {js(big)}, 2)")).startswith(
                    "1.234.567.890.123.456.789,01"
                )
                kwd = await page.evaluate(
                    "formatMoney('KWD', {amount: '-1234', decimal: '-1.234'})"
                )
                assert kwd == await page.evaluate(money("KWD", "-1.234"))
                assert "1,234" in kwd, kwd
                assert await page.evaluate("exponentOf('KWD')") == 3

                # The payments table, in the same formats.
                for payment_id, expected in ((eur, eur_total), (jpy, jpy_total)):
                    cell = f'tr[data-payment-id="{payment_id}"] td.num'
                    await page.wait_for(
                        f"document.querySelector({js(cell)})?.textContent === {js(expected)}"
                    )

                # MRR trend: 2500 now against 1000 30 days ago.
                trend = '[data-currency="USD"] [data-field="mrrTrend"]'
                await page.wait_for(
                    f"document.querySelector({js(trend)})?.dataset.direction === 'up'"
                )
                percent = await page.evaluate(
                    "new Intl.NumberFormat('de-DE', {style: 'percent', signDisplay: 'exceptZero'})"
                    ".format(1.5)"
                )
                change = await page.evaluate(money("USD", "15.00", signDisplay="exceptZero"))
                shown = await page.evaluate(f"document.querySelector({js(trend)}).textContent")
                assert shown.startswith("▲"), shown
                assert percent in shown, (shown, percent)
                assert change in shown, (shown, change)
                assert "30 days ago" in shown, shown
                assert await page.evaluate(card_text("USD", ".trend .percent")) == percent

                # The chart's axes: money on y, round steps from zero; a few dates on x.
                y_ticks = await page.evaluate(
                    "[...document.querySelectorAll('[data-currency=EUR] .y-tick')]"
                    ".map(t => t.textContent)"
                )
                assert len(y_ticks) >= 3, y_ticks
                assert y_ticks[0] == await page.evaluate(money("EUR", "0", maximumFractionDigits=0))
                assert all("€" in tick for tick in y_ticks), y_ticks
                x_ticks = await page.evaluate(
                    "[...document.querySelectorAll('[data-currency=EUR] .x-tick')]"
                    ".map(t => t.textContent)"
                )
                days = await page.evaluate(
                    "[...document.querySelectorAll('[data-currency=EUR] .bar')]"
                    ".map(b => b.dataset.day)"
                )
                assert len(days) == 30, days
                assert 3 <= len(x_ticks) <= 12, x_ticks
                short_date = (
                    "new Intl.DateTimeFormat('de-DE', {day: 'numeric', month: 'short', "
                    "timeZone: 'UTC'}).format(new Date({day} + 'T00:00:00Z'))"
                )
                assert x_ticks[0] == await page.evaluate(short_date.replace("{day}", js(days[0])))
                assert x_ticks[-1] == await page.evaluate(short_date.replace("{day}", js(days[-1])))

                # Tooltip on focus: today's bar, its date and formatted amount.
                today_bar = "document.querySelector('[data-currency=EUR] .bar.today')"
                tip = "document.querySelector('[data-currency=EUR] .tip')"
                assert await page.evaluate(f"{today_bar}.getAttribute('tabindex')") == "0"
                await page.evaluate(f"{today_bar}.focus()")
                await page.wait_for(f"!{tip}.hidden")
                long_date = await page.evaluate(
                    "new Intl.DateTimeFormat('de-DE', {weekday: 'short', day: 'numeric', "
                    f"month: 'short', year: 'numeric', timeZone: 'UTC'}}).format(new Date("
                    f"{js(days[-1])} + 'T00:00:00Z'))"
                )
                assert await page.evaluate(f"{tip}.querySelector('strong').textContent") == (
                    eur_total
                )
                assert long_date in await page.evaluate(f"{tip}.textContent")
                assert await page.evaluate(f"{today_bar}.getAttribute('aria-label')") == (
                    f"{long_date}: {eur_total}"
                )
                # Arrow keys move to the day before; its tooltip shows zero euros.
                await page.send(
                    "Input.dispatchKeyEvent",
                    type="keyDown",
                    key="ArrowLeft",
                    code="ArrowLeft",
                    windowsVirtualKeyCode=37,
                )
                zero = await page.evaluate(money("EUR", "0"))
                await page.wait_for(
                    f"document.activeElement.dataset.day === {js(days[-2])} && "
                    f"{tip}.querySelector('strong').textContent === {js(zero)}"
                )
                await page.evaluate("document.activeElement.blur()")
                await page.wait_for(f"{tip}.hidden")
                # Tooltip on hover, anywhere in the bar's column.
                box = await page.evaluate(
                    f"(() => {{ const r = {today_bar}.getBoundingClientRect(); "
                    "return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
                )
                await page.hover(box["x"], box["y"])
                await page.wait_for(
                    f"!{tip}.hidden && {tip}.querySelector('strong').textContent === "
                    f"{js(eur_total)}"
                )

                # Layout at a desktop width: cards side by side, nothing overflows (the
                # screenshot shows the tooltip).
                wide = await layout(page)
                assert wide["scrollWidth"] <= wide["viewport"], wide
                assert len(set(wide["cardTops"])) < len(wide["cardTops"]), wide
                assert wide["cardsInside"], wide
                assert wide["chartsUnscaled"], wide
                assert wide["overflowing"] == [], wide
                assert wide["vwFonts"] == [], wide
                shots = [await page.screenshot(tmp_path / "dashboard-1280.png")]
                await page.hover(5, 5)
                await page.wait_for(f"{tip}.hidden")

                # At a phone's width: stacked cards, the same type sizes, no sideways scroll.
                await page.set_viewport(390, 844, mobile=True)
                await page.wait_for(
                    "[...document.querySelectorAll('svg.chart')].every(s => "
                    "s.getAttribute('width') == Math.floor(s.parentNode.clientWidth)) && "
                    "document.documentElement.clientWidth === 390"
                )
                narrow = await layout(page)
                assert narrow["scrollWidth"] <= 390, narrow
                assert len(set(narrow["cardTops"])) == len(narrow["cardTops"]), narrow
                assert narrow["cardsInside"], narrow
                assert narrow["chartsUnscaled"], narrow
                assert narrow["overflowing"] == [], narrow
                for size in ("figureSize", "tickSize", "bodySize"):
                    assert narrow[size] == wide[size], (size, narrow[size], wide[size])
                assert narrow["tickSize"] == 12
                shots.append(await page.screenshot(tmp_path / "dashboard-390.png"))
                print("\ndashboard screenshots:", *shots)
                assert page.problems == [], json.dumps(page.problems, indent=2)
