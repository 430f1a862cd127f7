"""The `billing` command as a user runs it: serve on embedded defaults, token, migrate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import websockets

from app.stripe.emulator import free_port
from tests.conftest import CONFIRM_PAYMENT, CREATE_CUSTOMER, CREATE_PAYMENT, CREATE_PLAN

BILLING = [sys.executable, "-m", "app.cli"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "JWT_SECRET"}
    }
    env.update({"BILLING_HOME": str(home), "BILLING_ENV": "development", **extra})
    return env


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLING, *args], env=clean_env(home, **extra), capture_output=True, text=True, timeout=120
    )


@contextlib.contextmanager
def serve(home: Path) -> Iterator[dict[str, Any]]:
    """`billing serve` on embedded defaults in ``home``, ready; stopped with SIGTERM after."""
    port = free_port()
    started = time.monotonic()
    log_path = home / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*BILLING, "serve", "--port", str(port)],
            env=clean_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    cold_start = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                cold_start = time.monotonic() - started
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    if cold_start is None:
        process.kill()
        process.wait(10)
        pytest.fail(f"billing serve did not become ready:\n{log_path.read_text()}")
    info = {"url": url, "home": home, "cold_start": cold_start, "process": process}
    try:
        yield info
    finally:
        if process.poll() is None:
            process.terminate()  # a graceful stop: the embedded servers stop with it
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`billing serve` on embedded defaults; yields its URL, home and cold-start time."""
    with serve(tmp_path) as info:
        yield info


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and any(str(data_dir) in part for part in cmdline):
            found.append(proc)
    return found


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.embedded_only
@pytest.mark.slow
async def test_serve_on_embedded_defaults_then_stop_cleanly(served: dict[str, Any]) -> None:
    home: Path = served["home"]
    url: str = served["url"]
    print(f"\ncold start of `billing serve` on embedded defaults: {served['cold_start']:.2f}s")

    assert postgres_processes(home / "postgres"), "embedded PostgreSQL is not running"
    async with httpx.AsyncClient() as plain:
        graphiql = await plain.get(f"{url}/graphql", headers={"accept": "text/html"})
    assert graphiql.status_code == 200
    assert "graphiql" in graphiql.text.lower()

    minted = cli(home, "token", "--role", "admin", "--org", "acme")
    assert minted.returncode == 0, minted.stderr
    bearer = minted.stdout.strip()
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {bearer}"}) as c:
        response = await c.post(
            "/graphql",
            json={
                "query": CREATE_PLAN,
                "variables": {
                    "input": {
                        "code": "starter",
                        "name": "Starter",
                        "tier": "BASIC",
                        "price": {"amount": 900, "currency": "EUR"},
                        "interval": "MONTH",
                    }
                },
            },
        )
        payload = response.json()["data"]["planCreate"]
        assert payload["errors"] == []
        assert payload["plan"]["stripePriceId"].startswith("plan_")

    ws_url = url.replace("http", "ws") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}}
            )
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { heartbeat(intervalSeconds: 1) }"},
                }
            )
        )
        message = json.loads(await ws.recv())
        assert message["type"] == "next"
        assert message["payload"]["data"]["heartbeat"]

    process: subprocess.Popen[str] = served["process"]
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGINT)
    process.wait(30)
    assert not postgres_processes(home / "postgres"), "embedded PostgreSQL was left running"
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


@pytest.mark.embedded_only
@pytest.mark.slow
def test_in_development_serve_runs_the_worker(served: dict[str, Any]) -> None:
    home: Path = served["home"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = "".join(p.read_text() for p in home.glob("serve-*.log"))
        if "billing worker started" in logs:
            break
        time.sleep(0.1)
    assert "billing worker started" in logs, logs


def test_with_and_without_worker_cannot_both_be_asked(tmp_path: Path) -> None:
    both = cli(tmp_path, "serve", "--with-worker", "--no-worker")
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr


@pytest.mark.embedded_only
@pytest.mark.slow
def test_sigterm_stops_serve_and_its_embedded_servers(served: dict[str, Any]) -> None:
    """What `kill`, systemd and `docker stop` send: a clean exit, nothing left running."""
    home: Path = served["home"]
    process: subprocess.Popen[str] = served["process"]
    children = psutil.Process(process.pid).children(recursive=True)
    assert postgres_processes(home / "postgres"), "embedded PostgreSQL is not running"
    assert children, "expected the Stripe emulator (PostgreSQL runs detached, found by its folder)"
    process.terminate()
    assert process.wait(30) == 0
    assert not postgres_processes(home / "postgres"), "embedded PostgreSQL was left running"
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, child


async def _pay(url: str, bearer: str, customer_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {bearer}"}) as c:
        made = await c.post(
            "/graphql",
            json={
                "query": CREATE_PAYMENT,
                "variables": {
                    "input": {
                        "customerId": customer_id,
                        "amount": {"amount": 1200, "currency": "USD"},
                        "paymentMethodId": "pm_card_visa",
                        "idempotencyKey": f"pay-{time.monotonic_ns()}",
                    }
                },
            },
        )
        created = made.json()["data"]["paymentIntentCreate"]
        assert created["errors"] == [], created
        confirmed = await c.post(
            "/graphql",
            json={
                "query": CONFIRM_PAYMENT,
                "variables": {
                    "input": {
                        "paymentId": created["payment"]["id"],
                        "idempotencyKey": f"confirm-{time.monotonic_ns()}",
                    }
                },
            },
        )
        result: dict[str, Any] = confirmed.json()["data"]["paymentIntentConfirm"]
        return result


@pytest.mark.embedded_only
@pytest.mark.slow
async def test_a_restart_keeps_what_payments_need(tmp_path: Path) -> None:
    """The embedded PostgreSQL and the Stripe emulator both keep their state in BILLING_HOME:
    a customer made before a restart can pay after it."""
    bearer = cli(tmp_path, "token", "--role", "admin", "--org", "acme").stdout.strip()
    with serve(tmp_path) as first:
        async with httpx.AsyncClient(
            base_url=first["url"], headers={"authorization": f"Bearer {bearer}"}
        ) as c:
            made = await c.post(
                "/graphql",
                json={
                    "query": CREATE_CUSTOMER,
                    "variables": {"input": {"email": "ada@example.com", "name": "Ada"}},
                },
            )
        customer_id = made.json()["data"]["customerCreate"]["customer"]["id"]
        paid = await _pay(first["url"], bearer, customer_id)
        assert paid["errors"] == [], paid
    with serve(tmp_path) as second:
        paid = await _pay(second["url"], bearer, customer_id)
        assert paid["errors"] == [], paid
        assert paid["payment"]["status"] == "SUCCEEDED"


@pytest.mark.embedded_only
@pytest.mark.slow
async def test_after_kill_9_a_restart_works_and_a_clean_stop_leaves_nothing(
    tmp_path: Path,
) -> None:
    """SIGKILL stops nothing: PostgreSQL runs on (the restart reuses it), the emulator notices
    its parent died and exits (its state saved); the next clean stop stops everything."""
    bearer = cli(tmp_path, "token", "--role", "admin", "--org", "acme").stdout.strip()
    with serve(tmp_path) as first:
        async with httpx.AsyncClient(
            base_url=first["url"], headers={"authorization": f"Bearer {bearer}"}
        ) as c:
            made = await c.post(
                "/graphql",
                json={
                    "query": CREATE_CUSTOMER,
                    "variables": {"input": {"email": "bo@example.com", "name": "Bo"}},
                },
            )
        customer_id = made.json()["data"]["customerCreate"]["customer"]["id"]
        process: subprocess.Popen[str] = first["process"]
        emulators = psutil.Process(process.pid).children(recursive=True)
        await asyncio.sleep(1)  # the emulator saves its state at most every 0.5 s
        process.kill()
        process.wait(10)
        for emulator in emulators:
            emulator.wait(10)  # gone by itself
    with serve(tmp_path) as second:
        paid = await _pay(second["url"], bearer, customer_id)
        assert paid["errors"] == [], paid
        process = second["process"]
        process.terminate()
        assert process.wait(30) == 0
    assert not postgres_processes(tmp_path / "postgres"), "embedded PostgreSQL was left running"


@pytest.mark.embedded_only
@pytest.mark.slow
async def test_websocket_without_a_token_is_refused(served: dict[str, Any]) -> None:
    ws_url = served["url"].replace("http", "ws") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4403


def test_token_command_mints_a_verifiable_token(tmp_path: Path) -> None:
    from app.core.auth import decode_token
    from app.core.settings import load_settings

    result = cli(
        tmp_path, "token", "--role", "customer", "--org", "acme", "--sub", "cus_1", "--ttl", "60"
    )
    assert result.returncode == 0, result.stderr
    assert "created a new development secret" in result.stderr  # a fresh BILLING_HOME
    principal = decode_token(load_settings(clean_env(tmp_path)), result.stdout.strip())
    assert (principal.org, principal.subject, principal.role.value) == ("acme", "cus_1", "customer")

    again = cli(tmp_path, "token", "--role", "admin", "--org", "acme")
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # the same secret, nothing to warn about
    refused = cli(tmp_path, "token", "--role", "customer", "--org", "acme")
    assert refused.returncode == 2
    assert "needs --sub" in refused.stderr


def test_bad_configuration_exits_with_a_clear_message(tmp_path: Path) -> None:
    result = cli(tmp_path, "migrate", BILLING_ENV="production")
    assert result.returncode == 2
    assert "BILLING_ENV=production refuses development defaults" in result.stderr
    assert "Traceback" not in result.stderr


async def test_migrate_command_against_database_url(
    database_factory: Callable[[], Any], tmp_path: Path
) -> None:
    url = await database_factory()
    first = cli(tmp_path, "migrate", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "applied migration 0001_organizations_and_plans" in first.stderr
    second = cli(tmp_path, "migrate", DATABASE_URL=url)
    assert "database schema is up to date" in second.stderr


def test_export_schema_prints_the_committed_schema(tmp_path: Path) -> None:
    result = cli(tmp_path, "export-schema")
    committed = (Path(__file__).resolve().parents[1] / "schema.graphql").read_text()
    assert result.stdout == committed


def test_export_schema_prints_apollos_possible_types(tmp_path: Path) -> None:
    result = cli(tmp_path, "export-schema", "--possible-types")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)["Node"]
    assert found == sorted(found)
    # Every object with an id (tests/schema/test_node.py walks the schema for it).
    for kind in ("CreditNote", "Customer", "Invoice", "InvoiceLine", "Payment", "Plan"):
        assert kind in found
    assert {
        "Refund",
        "Subscription",
        "Coupon",
        "TaxRate",
        "Organization",
        "WebhookEndpoint",
        "WebhookDelivery",
    } <= set(found)


def test_worker_refuses_a_private_stripe_emulator(tmp_path: Path) -> None:
    result = cli(tmp_path, "worker", "--once", DATABASE_URL="postgresql://nowhere/x")
    assert result.returncode == 2
    assert "billing worker needs STRIPE_API_KEY" in result.stderr
    assert "--with-worker" in result.stderr


# -- X-Forwarded-For is honoured only from TRUSTED_PROXIES -----------------------------------


async def _client_seen(options: dict[str, Any], peer: str, forwarded: str) -> str:
    """The client address the rate limiter would count a request under, after uvicorn's
    configuration (built from ``proxy_options``) has handled its X-Forwarded-For header."""
    import uvicorn
    from starlette.requests import Request

    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        client = Request(scope).client  # what app.context.Context.client_ip reads
        seen.append(client.host if client else "")

    config = uvicorn.Config(inner, **options)
    config.load()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "client": (peer, 50000),
        "headers": [(b"x-forwarded-for", forwarded.encode())],
    }
    await config.loaded_app(scope, None, None)
    return seen[0]


@pytest.mark.parametrize(
    ("trusted", "peer", "expected"),
    [
        ("", "127.0.0.1", "127.0.0.1"),  # the default trusts no one, not even local clients
        ("", "10.0.0.5", "10.0.0.5"),
        ("10.0.0.5", "127.0.0.1", "127.0.0.1"),
        ("10.0.0.5", "10.0.0.5", "203.0.113.9"),
        ("10.0.0.0/8,::1", "10.200.1.1", "203.0.113.9"),
        ("10.0.0.0/8,::1", "192.168.0.1", "192.168.0.1"),
    ],
)
async def test_forwarded_for_counts_only_from_trusted_proxies(
    tmp_path: Path, trusted: str, peer: str, expected: str
) -> None:
    from app.cli import proxy_options
    from app.core.settings import load_settings

    settings = load_settings({"BILLING_HOME": str(tmp_path), "TRUSTED_PROXIES": trusted})
    assert await _client_seen(proxy_options(settings), peer, "203.0.113.9") == expected


async def test_a_forged_forwarded_for_does_not_escape_the_rate_limit(
    settings: Any, tmp_path: Path
) -> None:
    """Through real `billing serve` processes: an anonymous client allowed one request a
    minute cannot get more by claiming other addresses, unless it is a configured proxy."""
    import asyncpg

    from tests.live_support import serving

    async def buckets(prefix: str) -> set[str]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT bucket FROM rate_limit_buckets WHERE bucket LIKE $1", f"ip:{prefix}%"
            )
        finally:
            await conn.close()
        return {row["bucket"] for row in rows}

    def post(url: str, forwarded: str) -> str:
        """The first error code of the answer, or "ok"."""
        body = httpx.post(
            f"{url}/graphql",
            json={"query": "{ serviceInfo { name } }"},
            headers={"x-forwarded-for": forwarded},
            timeout=10,
        ).json()
        return str(body["errors"][0]["extensions"]["code"]) if "errors" in body else "ok"

    # One request's worth of points (serviceInfo { name } costs 2), refilled at 1 per second.
    limit = {"RATE_LIMIT_ANONYMOUS_POINTS": "2", "RATE_LIMIT_ANONYMOUS_RESTORE_RATE": "1"}
    with serving(settings, tmp_path, limit, {**limit, "TRUSTED_PROXIES": "127.0.0.1"}) as (
        untrusted,
        trusted,
    ):
        forged = [post(untrusted.url, f"198.51.100.{n}") for n in range(3)]
        relayed = [post(trusted.url, f"203.0.113.{n}") for n in range(3)]
    # Counted under the real peer (127.0.0.1), so the budget of one request bites at once.
    assert "THROTTLED" in forged
    assert await buckets("198.51.100.") == set()
    # A trusted proxy's clients each have their own bucket.
    assert relayed == ["ok", "ok", "ok"]
    assert await buckets("203.0.113.") == {f"ip:203.0.113.{n}" for n in range(3)}
