"""Latency of the previews against a real server process, next to a plain read in the same run.

Starts `billing serve --no-worker` (the product as a user runs it: its own Stripe emulator,
the rate limiter on with a budget no benchmark spends) on loopback against a fresh database,
fills one organization through the API (a tax rate, two monthly plans, a 25 % forever coupon,
customers in a taxed jurisdiction paying by card, each subscribed with 2 seats; the test clock
moved 10 days into the period, half of them with a proration pending from an upgrade), then
times one request at a time, round-robin over the kinds so they share the same conditions:

* `upcomingInvoice(subscriptionId)`;
* `subscriptionChangePreview` to the other plan with 3 seats, `ALWAYS_INVOICE`;
* the same with `CREATE_PRORATIONS`;
* the plain `subscription(id) { id status }`.

Each answer is checked (no errors, a preview or an invoice). Prints p50, p99 and mean per kind
and the ratio of each preview's p50 and p99 to the plain query's.

    .venv/bin/python bench/previews.py [--requests 300] [--customers 20] [--json out.json]
    .venv/bin/python bench/previews.py --smoke       # seconds: a tiny run

DATABASE_URL picks the PostgreSQL server (each run makes its own database there and drops it);
without it an embedded PostgreSQL is started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
ORG = "benchpreviews"
START = "2031-03-01T09:00:00+00:00"
LATER = "2031-03-11T09:00:00+00:00"  # 10 of 31 days into the period
WARMUP = 20

INVOICE = """
  currency subtotal { amount } discountTotal { amount } taxTotal { amount } total { amount }
  balanceApplied { amount } amountDue { amount }
  lines { kind description quantity amount { amount } periodStart periodEnd }
"""
UPCOMING = f"query($id: ID!) {{ upcomingInvoice(subscriptionId: $id) {{ {INVOICE} }} }}"
CHANGE_PREVIEW = f"""query($input: SubscriptionChangePlanInput!) {{
  subscriptionChangePreview(input: $input) {{
    preview {{
      subscription {{ status planId quantity currentPeriodStart currentPeriodEnd }}
      invoice {{ {INVOICE} }}
      creditGranted {{ amount currency }}
      nextInvoice {{ {INVOICE} }}
    }}
    errors {{ field code message }}
  }}
}}"""
PLAIN = "query($id: ID!) { subscription(id: $id) { id status } }"


def token() -> str:
    now = int(time.time())
    claims = {"sub": "bench", "org": ORG, "role": "admin", "iat": now, "exp": now + 86_400}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def database() -> Iterator[str]:
    """A fresh database: on DATABASE_URL's server, or on an embedded PostgreSQL."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield from _fresh(configured)
        return
    from db.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="bench-previews-pg-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data")
        url = server.start()
        try:
            yield from _fresh(url)
        finally:
            server.stop()


def _fresh(server: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def serving(env: dict[str, str], folder: Path) -> Iterator[str]:
    """`billing serve --no-worker` on a free loopback port; stopped (SIGINT) at the end."""
    port = free_port()
    args = [
        *(sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--no-worker"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    log = folder / "serve.log"
    with log.open("w") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"billing serve did not start:\n{log.read_text()[-3000:]}")
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


class Api:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {token()}"}, timeout=60
        )

    def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = self.client.post("/graphql", json={"query": query, "variables": variables}).json()
        if "errors" in body:
            raise SystemExit(f"request failed: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    def mutate(self, query: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = self.call(query, {"i": values})[name]
        if payload.get("errors"):
            raise SystemExit(f"{name} refused: {payload['errors']}")
        return payload


def seed(api: Api, customers: int) -> dict[str, Any]:
    """The organization's catalog, customers and subscriptions; the ids the requests use."""

    def advance(to: str) -> None:
        api.mutate(
            "mutation($i: TestClockAdvanceInput!) { testClockAdvance(input: $i) "
            "{ now errors { code message } } }",
            "testClockAdvance",
            {"to": to},
        )

    advance(START)
    api.mutate(
        "mutation($i: TaxRateCreateInput!) { taxRateCreate(input: $i) "
        "{ taxRate { id } errors { code message } } }",
        "taxRateCreate",
        {"name": "VAT", "percentage": "20", "country": "FR"},
    )
    plans = []
    for n, price in enumerate((1500, 4900)):
        made = api.mutate(
            "mutation($i: PlanCreateInput!) { planCreate(input: $i) "
            "{ plan { id } errors { code message } } }",
            "planCreate",
            {
                "code": f"bench-{n}",
                "name": f"Plan {n}",
                "tier": "PRO",
                "interval": "MONTH",
                "price": {"amount": price, "currency": "EUR"},
            },
        )
        plans.append(made["plan"]["id"])
    coupon = api.mutate(
        "mutation($i: CouponCreateInput!) { couponCreate(input: $i) "
        "{ coupon { id } errors { code message } } }",
        "couponCreate",
        {"code": "BENCH25", "name": "25 % off", "duration": "FOREVER", "percentOff": "25"},
    )["coupon"]["id"]
    subs = []
    for n in range(customers):
        customer = api.mutate(
            "mutation($i: CustomerCreateInput!) { customerCreate(input: $i) "
            "{ customer { id } errors { code message } } }",
            "customerCreate",
            {
                "email": f"c{n}@example.com",
                "name": f"Customer {n}",
                "address": {"country": "FR", "city": "Lyon"},
            },
        )["customer"]["id"]
        api.mutate(
            "mutation($i: CustomerSetDefaultPaymentMethodInput!) "
            "{ customerSetDefaultPaymentMethod(input: $i) { errors { code message } } }",
            "customerSetDefaultPaymentMethod",
            {"customerId": customer, "paymentMethodId": "pm_card_visa"},
        )
        api.mutate(
            "mutation($i: CouponApplyInput!) "
            "{ couponApply(input: $i) { errors { code message } } }",
            "couponApply",
            {"customerId": customer, "couponId": coupon},
        )
        made = api.mutate(
            "mutation($i: SubscriptionCreateInput!) { subscriptionCreate(input: $i) "
            "{ subscription { id status } errors { code message } } }",
            "subscriptionCreate",
            {
                "customerId": customer,
                "planId": plans[0],
                "quantity": 2,
                "trialDays": 0,
                "idempotencyKey": str(uuid.uuid4()),
            },
        )
        if made["subscription"]["status"] != "ACTIVE":
            raise SystemExit(f"a subscription did not start: {made}")
        subs.append(made["subscription"]["id"])
    advance(LATER)
    for sub in subs[::2]:  # half with a proration pending for the next invoice
        api.mutate(
            "mutation($i: SubscriptionChangePlanInput!) { subscriptionChangePlan(input: $i) "
            "{ subscription { id } errors { code message } } }",
            "subscriptionChangePlan",
            {
                "id": sub,
                "planId": plans[0],
                "quantity": 3,
                "prorationBehavior": "CREATE_PRORATIONS",
                "idempotencyKey": str(uuid.uuid4()),
            },
        )
    return {"plans": plans, "subscriptions": subs}


def kinds(ids: dict[str, Any]) -> dict[str, Any]:
    """For each kind: (document, variables of the n-th request, check of its answer)."""
    other = ids["plans"][1]

    def change(behavior: str) -> Any:
        def variables(sub: str) -> dict[str, Any]:
            return {
                "input": {
                    "id": sub,
                    "planId": other,
                    "quantity": 3,
                    "prorationBehavior": behavior,
                    "idempotencyKey": str(uuid.uuid4()),
                }
            }

        def check(data: dict[str, Any]) -> bool:
            found = data["subscriptionChangePreview"]
            return bool(
                found["errors"] == [] and found["preview"]["subscription"]["planId"] == other
            )

        return (CHANGE_PREVIEW, variables, check)

    return {
        "upcomingInvoice": (
            UPCOMING,
            lambda sub: {"id": sub},
            lambda data: bool(data["upcomingInvoice"] and data["upcomingInvoice"]["lines"]),
        ),
        "changePreview ALWAYS_INVOICE": change("ALWAYS_INVOICE"),
        "changePreview CREATE_PRORATIONS": change("CREATE_PRORATIONS"),
        "subscription(id) { id status }": (
            PLAIN,
            lambda sub: {"id": sub},
            lambda data: data["subscription"]["status"] == "ACTIVE",
        ),
    }


def measure(api: Api, ids: dict[str, Any], requests: int) -> dict[str, list[float]]:
    """Milliseconds of each request, ``requests`` per kind (after a warm-up), round-robin."""
    subs = ids["subscriptions"]
    table = kinds(ids)
    samples: dict[str, list[float]] = {name: [] for name in table}
    for n in range(WARMUP + requests):
        sub = subs[n % len(subs)]
        for name, (document, variables, check) in table.items():
            body = {"query": document, "variables": variables(sub)}
            started = time.perf_counter()
            response = api.client.post("/graphql", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            answer = response.json()
            if response.status_code != 200 or "errors" in answer or not check(answer["data"]):
                raise SystemExit(f"{name}: unexpected answer {answer}")
            if n >= WARMUP:
                samples[name].append(elapsed)
    return samples


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def run(requests: int, customers: int) -> list[dict[str, Any]]:
    with database() as url, tempfile.TemporaryDirectory(prefix="bench-previews-") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": SECRET,
            "BILLING_HOME": str(folder / "home"),
            "LOG_LEVEL": "warning",
            "RATE_LIMIT_POINTS": "1000000000",
            "RATE_LIMIT_RESTORE_RATE": "10000000",
        }
        env.pop("STRIPE_API_KEY", None)  # the server starts its own emulator
        env.pop("STRIPE_API_BASE", None)
        env.pop("BILLING_ENV", None)  # development: test clocks
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        with serving(env, folder) as server:
            api = Api(server)
            ids = seed(api, customers)
            samples = measure(api, ids, requests)
    plain = samples["subscription(id) { id status }"]
    plain_p50, plain_p99 = statistics.median(plain), percentile(plain, 0.99)
    rows = []
    for name, values in samples.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        rows.append(
            {
                "request": name,
                "requests": len(values),
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "mean_ms": round(statistics.fmean(values), 2),
                "p50_ratio": round(p50 / plain_p50, 2),
                "p99_ratio": round(p99 / plain_p99, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="per kind (after warm-up)")
    parser.add_argument("--customers", type=int, default=20, help="subscriptions rotated over")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--smoke", action="store_true", help="20 requests per kind, 3 customers")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.customers = 20, 3
    rows = run(args.requests, args.customers)
    print(
        f"{'request':<34}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
        f"{'p50 / plain':>13}{'p99 / plain':>13}"
    )
    for row in rows:
        print(
            f"{row['request']:<34}{row['requests']:>6}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"{row['mean_ms']:>9}{row['p50_ratio']:>13}{row['p99_ratio']:>13}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
