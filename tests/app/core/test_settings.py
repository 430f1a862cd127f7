from __future__ import annotations

import base64
import random
import uuid
from pathlib import Path

import pytest

from app.core.settings import SettingsError, load_settings

# A random value, as `billing token`'s generator makes them (secrets.token_urlsafe(48)).
SECRET = "q0Vb7lJ3tE9mZ4wK1xR8yH2uN6cD5fA0gS3pL7vB9nM1kQ4jT8zX2eW6rY5iU0oP3aF7dG1hC"
PRODUCTION = {
    "BILLING_ENV": "production",
    "DATABASE_URL": "postgresql://db/billing",
    "STRIPE_API_KEY": "sk_live_abc",
    "STRIPE_WEBHOOK_SECRET": "whsec_1",
}


def test_development_defaults(tmp_path: Path) -> None:
    settings = load_settings({"BILLING_HOME": str(tmp_path)})
    assert settings.env == "development"
    assert settings.database_url is None
    assert settings.stripe_api_key is None
    # A random per-installation secret, kept so `billing token` and `billing serve` agree.
    assert settings.jwt_secret is not None
    assert len(settings.jwt_secret) >= 32
    assert load_settings({"BILLING_HOME": str(tmp_path)}).jwt_secret == settings.jwt_secret
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o077 == 0
    assert settings.ws_max_subscriptions == 10
    env = {"BILLING_HOME": str(tmp_path), "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": "3"}
    assert load_settings(env).ws_max_subscriptions == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BILLING_ENV": "staging"}, "BILLING_ENV must be one of"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must start with postgresql://"),
        ({"STRIPE_API_KEY": "pk_test_1"}, "STRIPE_API_KEY must be a Stripe secret"),
        ({"STRIPE_API_BASE": "ftp://x"}, "STRIPE_API_BASE must be an http(s) URL"),
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between 0 and 65535"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET must be at least 32 characters"),
        ({"JWT_ALGORITHM": "none"}, "JWT_ALGORITHM must be HS256 or RS256"),
        ({"JWT_ALGORITHM": "RS256"}, "needs JWT_PUBLIC_KEY"),
        ({"JWT_SECRET_FILE": "/nonexistent/secret"}, "JWT_SECRET_FILE='/nonexistent/secret'"),
        (
            {"WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": "0"},
            "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION must be between 1 and 1000",
        ),
        (
            {"WEBHOOK_LEASE_SECONDS": "20", "WEBHOOK_TIMEOUT_SECONDS": "10"},
            "WEBHOOK_LEASE_SECONDS (20) must be more than twice WEBHOOK_TIMEOUT_SECONDS (10)",
        ),
        ({"WEBHOOK_MAX_AGE_SECONDS": "5"}, "WEBHOOK_MAX_AGE_SECONDS must be between 60"),
    ],
)
def test_invalid_settings_have_clear_messages(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({"BILLING_HOME": str(tmp_path), **env})


def test_production_refuses_development_defaults(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"BILLING_ENV": "production", "BILLING_HOME": str(tmp_path)})
    for name in ("DATABASE_URL", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "JWT_SECRET"):
        assert name in str(info.value)
    assert not (tmp_path / "jwt_secret").exists()


def test_production_with_everything_set(tmp_path: Path) -> None:
    secret_file = tmp_path / "jwt"
    secret_file.write_text(SECRET + "\n")
    settings = load_settings(
        {
            "BILLING_ENV": "production",
            "DATABASE_URL": "postgresql://db/billing",
            "STRIPE_API_KEY": "sk_live_abc",
            "STRIPE_WEBHOOK_SECRET": "whsec_1",
            "JWT_SECRET_FILE": str(secret_file),
        }
    )
    assert settings.production
    assert settings.jwt_secret == SECRET
    assert settings.stripe_mode == "live"


def test_production_refuses_an_emulator(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="STRIPE_API_BASE"):
        load_settings(
            {
                "BILLING_ENV": "production",
                "DATABASE_URL": "postgresql://db/billing",
                "STRIPE_API_KEY": "sk_live_abc",
                "STRIPE_WEBHOOK_SECRET": "whsec_1",
                "JWT_SECRET": SECRET,
                "STRIPE_API_BASE": "http://127.0.0.1:8420",
            }
        )


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("x" * 40, "it repeats a shorter pattern"),
        ("s" * 64, "it repeats a shorter pattern"),
        ("password" * 4, "it repeats a shorter pattern"),
        ("abcdefghij" * 4, "it repeats a shorter pattern"),
        ("0123456789abcdef" * 2, "it repeats a shorter pattern"),
        ("test-secret-" + "x" * 40, "it has only 7 different characters (at least 8)"),
        ("ab" * 20 + "c", "it has only 3 different characters (at least 8)"),
        ("a" * 190 + "bcdefghij", "about 0.4 bits of entropy per character by their"),
        ("a" * 21 + "bcdefghijkl", "about 68 bits of entropy by its characters' frequencies"),
    ],
)
def test_production_refuses_a_guessable_jwt_secret(tmp_path: Path, secret: str, why: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**PRODUCTION, "BILLING_HOME": str(tmp_path), "JWT_SECRET": secret})
    assert str(info.value).startswith(f"JWT_SECRET looks guessable: {why}")
    secret_file = tmp_path / "jwt"
    secret_file.write_text(secret)
    with pytest.raises(SettingsError, match="JWT_SECRET looks guessable"):
        load_settings({**PRODUCTION, "JWT_SECRET_FILE": str(secret_file)})


def _random_secrets() -> list[str]:
    """Random secrets of the usual shapes, from a fixed seed so the test is repeatable."""
    rng = random.Random(20250131)  # noqa: S311 - repeatable stand-ins for random secrets
    made = []
    for _ in range(300):
        made.append(base64.urlsafe_b64encode(rng.randbytes(48)).decode().rstrip("="))
        made.append(base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("="))
        made.append(base64.b64encode(rng.randbytes(32)).decode())
        made.append(rng.randbytes(16).hex())
        made.append(rng.randbytes(32).hex())
        made.append(str(uuid.UUID(bytes=rng.randbytes(16), version=4)))
    return made


def test_production_accepts_random_jwt_secrets(tmp_path: Path) -> None:
    refused = []
    for secret in _random_secrets():
        try:
            load_settings({**PRODUCTION, "BILLING_HOME": str(tmp_path), "JWT_SECRET": secret})
        except SettingsError as exc:
            refused.append((secret, str(exc)))
    assert refused == []
    # and the secret `billing serve` generates for itself outside production
    generated = load_settings({"BILLING_HOME": str(tmp_path)}).jwt_secret
    assert generated is not None
    assert load_settings({**PRODUCTION, "JWT_SECRET": generated}).jwt_secret == generated


def test_outside_production_only_the_length_of_the_jwt_secret_is_checked(tmp_path: Path) -> None:
    # Development and test keep fixtures such as tests/conftest.py's secret working.
    settings = load_settings({"BILLING_HOME": str(tmp_path), "JWT_SECRET": "x" * 40})
    assert settings.jwt_secret == "x" * 40


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("10.0.0.5", ("10.0.0.5",)),
        (" 10.0.0.5 , 10.1.0.0/16,::1 ", ("10.0.0.5", "10.1.0.0/16", "::1")),
        ("10.1.2.3/16", ("10.1.0.0/16",)),
        ("fd00::/8,192.168.1.1", ("fd00::/8", "192.168.1.1")),
    ],
)
def test_trusted_proxies(tmp_path: Path, value: str, expected: tuple[str, ...]) -> None:
    assert load_settings({"BILLING_HOME": str(tmp_path)}).trusted_proxies == ()
    env = {"BILLING_HOME": str(tmp_path), "TRUSTED_PROXIES": value}
    assert load_settings(env).trusted_proxies == expected


@pytest.mark.parametrize("value", ["proxy.internal", "*", "10.0.0.300", "10.0.0.0/33", "10.0.0.1;"])
def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"BILLING_HOME": str(tmp_path), "TRUSTED_PROXIES": f"10.0.0.1,{value}"})
    assert str(info.value) == (
        "TRUSTED_PROXIES must list IP addresses or CIDR networks separated by commas "
        f"(e.g. 10.0.0.5,10.1.0.0/16), got {value!r}."
    )
