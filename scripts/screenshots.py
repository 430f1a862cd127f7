"""README screenshots: the live revenue dashboard (desktop and phone) and GraphiQL.

Run after `billing demo`:

    .venv/bin/python scripts/screenshots.py [--home DIR] [--org demo] [--out docs/images]

Starts `billing serve --no-worker` on BILLING_HOME (default ./.billing) on a free loopback port,
mints an admin token for the organization, drives Debian's headless Chromium
(tests/browser/cdp.py) and writes dashboard.png (1280x900, a bar's tooltip showing),
dashboard-mobile.png (390 CSS pixels wide) and graphiql.png (a query and its result). The
server gets SIGTERM (it stops its embedded PostgreSQL and Stripe emulator) and the browser is
closed whatever happens; any failure exits non-zero with the server's log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from app.stripe.emulator import free_port  # noqa: E402
from tests.browser.cdp import CHROMIUM, BrowserError, Page, chromium  # noqa: E402

DESKTOP = (1280, 900)
PHONE = (390, 844)

QUERY = """\
# MRR per currency and subscription counts
{
  subscriptionStats {
    counts { active canceled total }
    currencies {
      currency
      mrr { decimal }
      payingCustomers
    }
  }
}
"""


class Failed(Exception):
    pass


def billing(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """`billing serve --no-worker` on a free loopback port, ready when entered; SIGTERM on exit
    (the server then stops its embedded PostgreSQL and Stripe emulator)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            billing("serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise Failed(f"billing serve exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise Failed("billing serve was not ready within 120 s")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise Failed("billing serve did not stop within 60 s of SIGTERM") from None


def mint_token(env: dict[str, str], org: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        billing("token", "--role", "admin", "--org", org),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise Failed(f"billing token failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


async def screenshot(page: Page, path: Path, *, height: int | None = None) -> None:
    """The viewport, or its top ``height`` CSS pixels of the whole page (at scale 1)."""
    params: dict[str, Any] = {"format": "png"}
    if height is not None:
        params["captureBeyondViewport"] = True
        width = await page.evaluate("document.documentElement.clientWidth")
        full = await page.evaluate("document.documentElement.scrollHeight")
        params["clip"] = {"x": 0, "y": 0, "width": width, "height": min(height, full), "scale": 1}
    shot = await page.send("Page.captureScreenshot", **params)
    await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)


async def light_theme(page: Page) -> None:
    """Light colours whatever the machine's preference, and no scroll bars."""
    await page.send("Emulation.setScrollbarsHidden", hidden=True)
    await page.send(
        "Emulation.setEmulatedMedia",
        media="screen",
        features=[{"name": "prefers-color-scheme", "value": "light"}],
    )


DASHBOARD_READY = """(() => {
  const cards = [...document.querySelectorAll('#currencies .currency')];
  const status = document.getElementById('status').dataset.state;
  const rows = document.querySelectorAll('#payments tbody tr').length;
  const error = document.getElementById('revenue-error').textContent;
  if (error) throw new Error('dashboard: ' + error);
  return status === 'live' && cards.length > 0 && rows > 0 &&
    cards.every((c) => c.querySelectorAll('svg.chart .bar').length === 30 &&
      c.querySelector('[data-field=mrrTrend]').dataset.direction !== 'unknown') &&
    document.fonts.status === 'loaded';
})()"""

DASHBOARD_STATE = """(() => ({
  status: document.getElementById('status').textContent,
  errors: [...document.querySelectorAll('.error')].map((e) => e.textContent).filter(Boolean),
  cards: [...document.querySelectorAll('#currencies .currency')].map((c) => ({
    currency: c.dataset.currency,
    bars: c.querySelectorAll('svg.chart .bar').length,
    trend: c.querySelector('[data-field=mrrTrend]').textContent,
  })),
  payments: document.querySelectorAll('#payments tbody tr').length,
  noPayments: !document.getElementById('no-payments').hidden,
}))()"""

# The bar to hover: in the first card, the highest of the last ten days (a tall bar near the
# right-hand side shows the tooltip well), as the viewport point at its middle.
HOVER_TARGET = """(() => {
  const bars = [...document.querySelectorAll('#currencies .currency')[0]
    .querySelectorAll('svg.chart .bar')].slice(-10);
  const bar = bars.reduce((a, b) => (BigInt(b.dataset.amount) > BigInt(a.dataset.amount) ? b : a));
  const r = bar.getBoundingClientRect();
  return {x: r.x + r.width / 2, y: r.y + Math.max(r.height / 2, 1), day: bar.dataset.day,
          text: bar.dataset.formatted};
})()"""


async def dashboard(page: Page, url: str, token: str, out: Path) -> None:
    await page.set_viewport(*DESKTOP)
    await light_theme(page)
    await page.goto(f"{url}/dashboard?locale=en-US")
    await page.wait_for("document.getElementById('token') !== null")
    await page.type_into("#token", token)
    await page.evaluate("document.querySelector('#sign-in-form button[type=submit]').click()")
    try:
        await page.wait_for(DASHBOARD_READY, 60)
        await asyncio.sleep(1)  # the MRR trend and payments settle; late snapshots redraw
        await page.wait_for(DASHBOARD_READY, 30)
    except BrowserError as exc:
        state = await page.evaluate(DASHBOARD_STATE)
        raise Failed(f"the dashboard did not finish rendering: {json.dumps(state)}") from exc

    target = await page.evaluate(HOVER_TARGET)
    await page.hover(target["x"], target["y"])
    tip = "document.querySelector('#currencies .currency .tip')"
    shown = json.dumps(target["text"])
    await page.wait_for(f"!{tip}.hidden && {tip}.querySelector('strong').textContent === {shown}")
    await screenshot(page, out / "dashboard.png")

    await page.hover(2, 2)
    await page.wait_for(f"{tip}.hidden")
    await page.set_viewport(*PHONE, mobile=True)
    await page.wait_for(
        "document.documentElement.clientWidth === 390 && "
        "[...document.querySelectorAll('svg.chart')].every(s => "
        "s.getAttribute('width') == Math.floor(s.parentNode.clientWidth))"
    )
    await page.wait_for(DASHBOARD_READY)
    # Down to the end of the first currency card.
    bottom = await page.evaluate(
        "Math.ceil(document.querySelector('#currencies .currency').getBoundingClientRect().bottom"
        " + window.scrollY) + 16"
    )
    await screenshot(page, out / "dashboard-mobile.png", height=bottom)


async def graphiql(page: Page, url: str, token: str, out: Path) -> None:
    await page.set_viewport(*DESKTOP)
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    # The page decodes its parameters with decodeURIComponent: spaces as %20, not "+".
    await page.goto(f"{url}/graphql?{urlencode({'q': QUERY, 'headers': headers}, quote_via=quote)}")
    await light_theme(page)
    button = "document.querySelector('.graphiql-execute-button')"
    await page.wait_for(f"{button} !== null", 30)
    # Fold the variables and headers editor away: the image need not show the token.
    await page.evaluate("document.querySelector('.graphiql-toggle-editor-tools').click()")
    await page.evaluate(f"{button}.click()")
    # The result editor draws only its visible lines: read its whole text from CodeMirror.
    result = "document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror?.getValue()"
    text = await page.wait_for(f"({result} ?? '').includes('payingCustomers') && {result}", 30)
    answer = json.loads(text)
    if answer.get("errors") or not answer.get("data", {}).get("subscriptionStats"):
        raise Failed(f"the GraphiQL query did not return the figures:\n{text}")
    # The focus out of the editors (no cursor), both of them scrolled to their top.
    await page.evaluate(
        "document.activeElement?.blur(); "
        "document.querySelectorAll('.CodeMirror-scroll').forEach((s) => { s.scrollTop = 0; })"
    )
    await asyncio.sleep(0.5)
    await screenshot(page, out / "graphiql.png")


async def shoot(url: str, token: str, out: Path, scratch: Path) -> None:
    async with chromium(scratch / "profile", scratch / "chromium.log") as page:
        await dashboard(page, url, token, out)
        await graphiql(page, url, token, out)
        if page.problems:
            raise Failed("the pages reported errors:\n" + "\n".join(page.problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("BILLING_HOME", ".billing")),
        help="BILLING_HOME with the demo (default: $BILLING_HOME or ./.billing)",
    )
    parser.add_argument("--org", default="demo", help="organization (default demo)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "images", help="folder of the PNGs"
    )
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if not home.is_dir():
        print(f"screenshots: no BILLING_HOME at {home}; run `billing demo` first", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"screenshots: no Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BILLING_HOME": str(home),
        "LOG_LEVEL": "warning",
    }

    with tempfile.TemporaryDirectory(prefix="billing-screenshots-") as folder:
        scratch = Path(folder)
        log = scratch / "serve.log"
        try:
            token = mint_token(env, args.org)
            with serving(env, log) as url:
                asyncio.run(shoot(url, token, out, scratch))
        except (Failed, Exception) as exc:  # noqa: BLE001 - any failure: say what, with the log
            print(f"screenshots failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            if log.exists():
                print(f"--- billing serve log ---\n{log.read_text()}", file=sys.stderr)
            chromium_log = scratch / "chromium.log"
            if chromium_log.exists() and chromium_log.stat().st_size:
                print(f"--- chromium log ---\n{chromium_log.read_text()[-4000:]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
