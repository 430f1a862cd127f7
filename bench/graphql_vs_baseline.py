"""GraphQL next to a hand-written endpoint, on the same rows, in one run.

Starts `billing serve` (the product, as a user runs it, with its rate limiter on and a budget no
benchmark spends) and `bench/baseline_app.py` (Starlette + asyncpg, the same token check, SQL
shapes and JSON), both under uvicorn on loopback against one database; fills it through the API
(plans, customers, payments with a refund each); checks that both return the same `data`; then
loads each request with wrk (`-t1 -c8`, one core for the load, one for the server), alternating
GraphQL and baseline for every round, and prints medians, p99 and the ratio GraphQL / baseline.

    .venv/bin/python bench/graphql_vs_baseline.py [--seconds 5] [--rounds 3] [--json out.json]
    .venv/bin/python bench/graphql_vs_baseline.py --smoke     # seconds: what CI runs

BENCH_PROFILE=out.txt runs the served process under py-spy (on PATH) and writes its samples
there (raw, collapsed stacks).

DATABASE_URL picks the server (each run makes its own database there); without it an embedded
PostgreSQL is started. Needs `wrk` (Debian package); without it a small Python load generator
is used (noisier: it shares the cores with the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
ORG = "bench"

PLAN = "query($id: ID!) { plan(id: $id) { id code name price { amount currency decimal } } }"
PLANS = "{ plans(first: 20) { edges { node { id code name price { amount currency decimal } } } } }"
PAYMENTS = (
    "{ payments(first: 100) { edges { node { id status amount { amount currency } "
    "customer { id email } refunds { id amount { amount } status } } } } }"
)


@dataclass
class Request:
    name: str
    graphql: dict[str, Any]
    baseline_path: str
    baseline: dict[str, Any]


@dataclass
class Result:
    name: str
    graphql_rps: list[float] = field(default_factory=list)
    baseline_rps: list[float] = field(default_factory=list)
    graphql_p99: list[float] = field(default_factory=list)
    baseline_p99: list[float] = field(default_factory=list)
    graphql_p50: list[float] = field(default_factory=list)
    baseline_p50: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        g, b = statistics.median(self.graphql_rps), statistics.median(self.baseline_rps)
        return {
            "request": self.name,
            "graphql_rps": round(g, 1),
            "baseline_rps": round(b, 1),
            "ratio": round(g / b, 3) if b else None,
            "graphql_p50_ms": round(statistics.median(self.graphql_p50), 2),
            "graphql_p99_ms": round(statistics.median(self.graphql_p99), 2),
            "baseline_p50_ms": round(statistics.median(self.baseline_p50), 2),
            "baseline_p99_ms": round(statistics.median(self.baseline_p99), 2),
        }


def token() -> str:
    now = int(time.time())
    claims = {"sub": "bench", "org": ORG, "role": "admin", "iat": now, "exp": now + 86_400}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def free_port() -> int:
    import socket

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

    with tempfile.TemporaryDirectory(prefix="bench-gql-") as folder:
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
def process(args: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    with log.open("w") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[0]} did not start:\n{log.read_text()[-3000:]}")
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        child.send_signal(signal.SIGINT)  # like Ctrl-C: the server (or py-spy) stops cleanly
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def seed(api: str, plans: int, payments: int) -> dict[str, Any]:
    """Fill the organization through the API; returns ids the requests use."""
    headers = {"authorization": f"Bearer {token()}"}
    client = httpx.Client(base_url=api, headers=headers, timeout=60)

    def call(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = client.post("/graphql", json={"query": query, "variables": variables}).json()
        if "errors" in body:
            raise SystemExit(f"seeding failed: {body['errors']}")
        data: dict[str, Any] = body["data"]
        return data

    plan_ids = []
    for n in range(plans):
        made = call(
            "mutation($i: PlanCreateInput!) { planCreate(input: $i) "
            "{ plan { id } errors { message } } }",
            {
                "i": {
                    "code": f"bench-{n}",
                    "name": f"Plan {n}",
                    "tier": "PRO",
                    "interval": "MONTH",
                    "price": {"amount": 1000 + n, "currency": "USD"},
                }
            },
        )["planCreate"]
        plan_ids.append(made["plan"]["id"])
    customers = []
    for n in range(10):
        made = call(
            "mutation($i: CustomerCreateInput!) { customerCreate(input: $i) { customer { id } } }",
            {"i": {"email": f"c{n}@example.com", "name": f"Customer {n}"}},
        )["customerCreate"]
        customers.append(made["customer"]["id"])
    for n in range(payments):
        made = call(
            "mutation($i: PaymentIntentCreateInput!) { paymentIntentCreate(input: $i) "
            "{ payment { id } errors { message } } }",
            {
                "i": {
                    "customerId": customers[n % 10],
                    "amount": {"amount": 2000 + n, "currency": "USD"},
                    "paymentMethodId": "pm_card_visa",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )["paymentIntentCreate"]
        payment_id = made["payment"]["id"]
        call(
            "mutation($i: PaymentIntentConfirmInput!) { paymentIntentConfirm(input: $i) "
            "{ errors { message } } }",
            {"i": {"paymentId": payment_id, "idempotencyKey": str(uuid.uuid4())}},
        )
        call(
            "mutation($i: RefundCreateInput!) { refundCreate(input: $i) { errors { message } } }",
            {
                "i": {
                    "paymentId": payment_id,
                    "amount": {"amount": 100, "currency": "USD"},
                    "reason": "DUPLICATE",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
    return {"plan": plan_ids[0]}


def requests(ids: dict[str, Any]) -> list[Request]:
    return [
        Request(
            "plan(id) with price",
            {"query": PLAN, "variables": {"id": ids["plan"]}},
            "/plan",
            {"id": ids["plan"]},
        ),
        Request("plans(first: 20)", {"query": PLANS}, "/plans", {"first": 20}),
        Request(
            "payments(first: 100) with customer and refunds",
            {"query": PAYMENTS},
            "/payments",
            {"first": 100},
        ),
    ]


def same_data(api: str, baseline: str, request: Request) -> None:
    headers = {"authorization": f"Bearer {token()}"}
    ours = httpx.post(f"{api}/graphql", json=request.graphql, headers=headers, timeout=30).json()
    theirs = httpx.post(
        f"{baseline}{request.baseline_path}", json=request.baseline, headers=headers, timeout=30
    ).json()
    if ours.get("data") != theirs.get("data") or "errors" in ours:
        raise SystemExit(f"{request.name}: the two answers differ:\n{ours}\n{theirs}")


_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = {auth}
"""


def wrk(url: str, body: dict[str, Any], seconds: float, folder: Path) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms) of ``seconds`` of load with 8 connections."""
    script = folder / "post.lua"
    script.write_text(
        _LUA.format(body=json.dumps(json.dumps(body)), auth=json.dumps(f"Bearer {token()}"))
    )
    program = shutil.which("wrk") or "wrk"
    out = subprocess.run(
        [program, "-t1", "-c8", f"-d{max(int(seconds), 1)}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if re.search(r"Non-2xx or 3xx responses", out):
        raise SystemExit(f"errors under load at {url}:\n{out}")

    def percentile(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert found is not None, out
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return rps, percentile("50"), percentile("99")


async def _python_load(
    url: str, body: dict[str, Any], seconds: float
) -> tuple[float, float, float]:
    headers = {"authorization": f"Bearer {token()}"}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.post(url, json=body)
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(8)))
    latencies.sort()
    return (
        len(latencies) / seconds,
        latencies[len(latencies) // 2],
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    )


def load(
    url: str, body: dict[str, Any], seconds: float, folder: Path
) -> tuple[float, float, float]:
    if shutil.which("wrk"):
        return wrk(url, body, seconds, folder)
    return asyncio.run(_python_load(url, body, seconds))


def run(seconds: float, rounds: int, payments: int) -> list[dict[str, Any]]:
    with database() as url, tempfile.TemporaryDirectory(prefix="bench-gql-run-") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": SECRET,
            "BILLING_HOME": str(folder / "home"),
            "LOG_LEVEL": "warning",
            # On, with a budget no benchmark spends: its cost is part of what is measured.
            "RATE_LIMIT_POINTS": "1000000000",
            "RATE_LIMIT_RESTORE_RATE": "10000000",
        }
        env.pop("STRIPE_API_KEY", None)
        env.pop("STRIPE_API_BASE", None)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        api_port, base_port = free_port(), free_port()
        serve = [
            *(sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--no-worker"),
            *("--port", str(api_port)),
        ]
        if profile := os.environ.get("BENCH_PROFILE"):
            # py-spy samples the served process; it writes its file when the process ends.
            spy = shutil.which("py-spy") or "py-spy"
            serve = [spy, "record", "-r", "250", "-f", "raw", "-o", profile, "--", *serve]
        base = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(ROOT / "bench"),
            "baseline_app:app",
            "--port",
            str(base_port),
            "--log-level",
            "warning",
        ]
        with (
            process(serve, env, api_port, folder / "serve.log") as api,
            process(base, env, base_port, folder / "baseline.log") as baseline,
        ):
            ids = seed(api, 25, payments)
            results = []
            for request in requests(ids):
                same_data(api, baseline, request)
                result = Result(request.name)
                load(f"{api}/graphql", request.graphql, 1, folder)  # warm both up
                load(f"{baseline}{request.baseline_path}", request.baseline, 1, folder)
                for _ in range(rounds):
                    rps, p50, p99 = load(f"{api}/graphql", request.graphql, seconds, folder)
                    result.graphql_rps.append(rps)
                    result.graphql_p50.append(p50)
                    result.graphql_p99.append(p99)
                    rps, p50, p99 = load(
                        f"{baseline}{request.baseline_path}", request.baseline, seconds, folder
                    )
                    result.baseline_rps.append(rps)
                    result.baseline_p50.append(p50)
                    result.baseline_p99.append(p99)
                results.append(result.row())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payments", type=int, default=100)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s, 100 payments")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds = 1, 1
    rows = run(args.seconds, args.rounds, args.payments)
    print(
        f"{'request':<48}{'GraphQL':>10}{'baseline':>10}{'ratio':>7}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'base p50':>10}{'base p99':>10}"
    )
    for row in rows:
        print(
            f"{row['request']:<48}{row['graphql_rps']:>10}{row['baseline_rps']:>10}"
            f"{row['ratio']:>7}{row['graphql_p50_ms']:>9}{row['graphql_p99_ms']:>9}"
            f"{row['baseline_p50_ms']:>10}{row['baseline_p99_ms']:>10}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
