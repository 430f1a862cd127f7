from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings

SECRET = "s" * 40


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
