"""Apollo Client 4 (Node) against a real `billing serve`: tests/clients/apollo/apollo.test.mjs.

Seeds a customer with three card payments through the API, writes the `possibleTypes` that
`billing export-schema --possible-types` prints, and runs the script with node (its npm
packages installed once by `npm ci` into a cache folder, see node_support.py). The script
checks the normalized cache, relayStylePagination, a mutation updating the cache and a Live
subscription over graphql-ws. Skipped without node/npm, except in CI (CI=true).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from app.core.settings import Settings
from tests.clients.node_support import REPO, installed, require_node
from tests.conftest import CONFIRM_PAYMENT, CREATE_CUSTOMER, CREATE_PAYMENT
from tests.live_support import serving
from tests.support import GraphQLClient, new_org, token

pytestmark = [pytest.mark.slow, pytest.mark.once]

PROJECT = REPO / "tests" / "clients" / "apollo"


async def seed(api: GraphQLClient) -> str:
    made = await api.data(
        CREATE_CUSTOMER, {"input": {"email": "grace@example.com", "name": "Grace Hopper"}}
    )
    customer_id: str = made["customerCreate"]["customer"]["id"]
    for amount in (1000, 2000, 3000):
        payment_input = {
            "customerId": customer_id,
            "amount": {"amount": amount, "currency": "USD"},
            "paymentMethodId": "pm_card_visa",
            "idempotencyKey": str(uuid.uuid4()),
        }
        created = (await api.data(CREATE_PAYMENT, {"input": payment_input}))["paymentIntentCreate"]
        assert created["errors"] == [], created
        confirm = {"paymentId": created["payment"]["id"], "idempotencyKey": str(uuid.uuid4())}
        done = (await api.data(CONFIRM_PAYMENT, {"input": confirm}))["paymentIntentConfirm"]
        assert done["errors"] == [], done
    return customer_id


def possible_types(path: Path) -> Path:
    exported = subprocess.run(
        [sys.executable, "-m", "app.cli", "export-schema", "--possible-types"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    path.write_text(exported.stdout)
    return path


async def test_apollo_client_against_the_server(settings: Settings, tmp_path: Path) -> None:
    node, _ = require_node()
    started = time.monotonic()
    folder = installed(PROJECT)
    print(f"\nnpm packages ready in {time.monotonic() - started:.1f} s ({folder})")
    script = folder / "apollo.test.mjs"
    shutil.copy2(PROJECT / "apollo.test.mjs", script)
    types = possible_types(tmp_path / "possible-types.json")

    org = new_org()
    admin = token(settings, org, "admin")
    with serving(settings, tmp_path, {}) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            customer_id = await seed(GraphQLClient(http, admin))
        env = {
            **os.environ,
            "API_URL": server.url,
            "ADMIN_TOKEN": admin,
            "CUSTOMER_ID": customer_id,
            "POSSIBLE_TYPES": str(types),
        }
        started = time.monotonic()
        run = await asyncio.to_thread(
            subprocess.run,
            [node, str(script)],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        print(f"apollo.test.mjs: {time.monotonic() - started:.1f} s\n{run.stdout}")
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{server.log.read_text()[-3000:]}"
    assert "4 passed, 0 failed" in run.stdout, run.stdout
