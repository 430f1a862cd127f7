"""STRIPE_TIMEOUT_SECONDS: validated like the other settings, and what the gateway is built with."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import SettingsError, load_settings
from app.stripe.emulator import EMULATOR_API_KEY
from app.stripe.gateway import StripeGateway


def test_default_and_override(tmp_path: Path) -> None:
    assert load_settings({"BILLING_HOME": str(tmp_path)}).stripe_timeout_seconds == 20
    env = {"BILLING_HOME": str(tmp_path), "STRIPE_TIMEOUT_SECONDS": "7"}
    assert load_settings(env).stripe_timeout_seconds == 7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "STRIPE_TIMEOUT_SECONDS must be an integer, got 'soon'."),
        ("2.5", "STRIPE_TIMEOUT_SECONDS must be an integer, got '2.5'."),
        ("0", "STRIPE_TIMEOUT_SECONDS must be between 1 and 300, got 0."),
        ("301", "STRIPE_TIMEOUT_SECONDS must be between 1 and 300, got 301."),
    ],
)
def test_invalid_timeouts_have_clear_messages(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"BILLING_HOME": str(tmp_path), "STRIPE_TIMEOUT_SECONDS": value})
    assert str(info.value) == message


async def test_the_gateway_bounds_its_http_client_by_the_same_timeout() -> None:
    gateway = StripeGateway(EMULATOR_API_KEY, api_base="http://127.0.0.1:9", timeout_seconds=7)
    try:
        assert gateway.timeout == 7.0
        assert gateway._http._timeout == 7.0  # the SDK's per-request httpx timeout
    finally:
        await gateway.close()
    with pytest.raises(ValueError, match="positive"):
        StripeGateway(EMULATOR_API_KEY, timeout_seconds=0)
