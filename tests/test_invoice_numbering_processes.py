"""Gapless invoice numbers under concurrent finalization by two server processes.

Two `billing serve` processes share the test database; 100 drafts are finalized at once, half
through each. The numbers must be exactly 1..100: no gap, no repeat.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.stripe.emulator import free_port
from tests.support import GraphQLClient

FINALIZE = """mutation($id: ID!) {
  invoiceFinalize(input: {invoiceId: $id}) { invoice { id number status } errors { code } }
}"""
SETTINGS = (
    """mutation { invoiceSettingsUpdate(input: {numberPrefix: "ACME"}) { errors { code } } }"""
)


def _start(settings: Settings, home: Path) -> tuple[subprocess.Popen[str], str, Path]:
    port = free_port()
    env = {
        **os.environ,
        "BILLING_ENV": "test",
        "BILLING_HOME": str(home),
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "JWT_SECRET": settings.jwt_secret or "",
        "RATE_LIMIT_RESTORE_RATE": "0",
        "LOG_LEVEL": "warning",
    }
    log_path = home / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, f"http://127.0.0.1:{port}", log_path


@pytest.fixture
def two_servers(settings: Settings, tmp_path: Path) -> Iterator[list[str]]:
    started = [_start(settings, tmp_path) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        for process, url, log_path in started:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"billing serve did not start:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        yield [url for _, url, _ in started]
    finally:
        for process, _, _ in started:
            process.kill()
            process.wait(10)


@pytest.mark.slow
async def test_concurrent_finalizations_in_two_processes_are_gapless(
    two_servers: list[str],
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    assert (await admin.data(SETTINGS))["invoiceSettingsUpdate"]["errors"] == []
    customers = [await customer_factory() for _ in range(5)]
    drafts = [await invoice_factory(customer=customers[n % 5]) for n in range(100)]
    headers = {"authorization": f"Bearer {admin.bearer}"}

    async def finalize(client: httpx.AsyncClient, invoice_id: str) -> dict[str, Any]:
        response = await client.post(
            "/graphql", json={"query": FINALIZE, "variables": {"id": invoice_id}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"]["invoiceFinalize"]
        return payload

    limits = httpx.Limits(max_connections=50)
    async with (
        httpx.AsyncClient(base_url=two_servers[0], timeout=60, limits=limits) as first,
        httpx.AsyncClient(base_url=two_servers[1], timeout=60, limits=limits) as second,
    ):
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                finalize(first if index % 2 else second, draft["id"])
                for index, draft in enumerate(drafts)
            )
        )
        elapsed = time.perf_counter() - started
    assert [r["errors"] for r in results] == [[]] * 100
    numbers = [r["invoice"]["number"] for r in results]
    year = time.gmtime().tm_year
    assert all(re.fullmatch(rf"ACME-{year}-\d{{6}}", n) for n in numbers), numbers
    sequences = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert sequences == list(range(1, 101))
    assert {r["invoice"]["id"] for r in results} == {d["id"] for d in drafts}
    print(f"\n100 finalizations across 2 processes: numbers 1..100 in {elapsed:.2f}s")
