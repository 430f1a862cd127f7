"""The Stripe emulator of `billing serve` keeps its state across restarts (a file in
BILLING_HOME), so the customers the database refers to still exist after a restart; and when a
Stripe object is missing anyway, the error says which and what to do."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psutil

from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from tests.conftest import CREATE_CUSTOMER, CREATE_PAYMENT
from tests.support import GraphQLClient

AUTH = {"authorization": f"Bearer {EMULATOR_API_KEY}"}


def _customer_after_restart(state: Path | None) -> int:
    first = StripeEmulator(state=state)
    base = first.start()
    try:
        made = httpx.post(f"{base}/v1/customers", data={"email": "ada@example.com"}, headers=AUTH)
        assert made.status_code == 200, made.text
        customer_id = made.json()["id"]
    finally:
        first.stop()
    second = StripeEmulator(state=state)
    base = second.start()
    try:
        found = httpx.get(f"{base}/v1/customers/{customer_id}", headers=AUTH)
        if found.status_code == 200:
            assert found.json()["email"] == "ada@example.com"
        return found.status_code
    finally:
        second.stop()


def test_with_a_state_file_a_restarted_emulator_knows_its_customers(tmp_path: Path) -> None:
    assert _customer_after_restart(tmp_path / "stripe-emulator.pickle") == 200
    assert (tmp_path / "stripe-emulator.pickle").exists()
    assert not (tmp_path / "stripe-emulator.partial").exists()


def test_without_one_it_starts_empty(tmp_path: Path) -> None:
    assert _customer_after_restart(None) == 404


async def test_a_missing_stripe_customer_is_named_with_what_to_do(
    admin: GraphQLClient, stripe_emulator: StripeEmulator
) -> None:
    made = await admin.data(CREATE_CUSTOMER, {"input": {"email": "gone@example.com"}})
    customer = made["customerCreate"]["customer"]
    async with httpx.AsyncClient(base_url=stripe_emulator.base_url, headers=AUTH) as stripe:
        gone = await stripe.delete(f"/v1/customers/{customer['stripeCustomerId']}")
    assert gone.status_code == 200, gone.text
    answer = await admin.data(
        CREATE_PAYMENT,
        {
            "input": {
                "customerId": customer["id"],
                "amount": {"amount": 500, "currency": "USD"},
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    (error,) = answer["paymentIntentCreate"]["errors"]
    assert error["code"] == "PAYMENT_PROVIDER_ERROR"
    assert "has no object this request refers to (such as its customer)" in error["message"]
    assert "stripe-emulator.pickle" in error["message"]


def test_an_emulator_whose_parent_died_stops() -> None:
    """`billing serve` killed with SIGKILL cannot stop its emulator; the emulator notices."""
    parent = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os\n"
            "from app.stripe.emulator import StripeEmulator\n"
            "e = StripeEmulator()\n"
            "e.start()\n"
            "print(e._process.pid, flush=True)\n"
            "os._exit(0)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    orphan = psutil.Process(int(parent.stdout.strip()))
    try:
        orphan.wait(10)
    except psutil.TimeoutExpired:
        orphan.kill()
        raise AssertionError("the orphaned emulator kept running") from None
