"""The Stripe emulator of `billing serve` keeps its state across restarts (a file in
BILLING_HOME), so the customers the database refers to still exist after a restart."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator

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
