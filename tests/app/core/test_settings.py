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
    "API_KEYS": "on",
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
    for name in ("DATABASE_URL", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET", "API_KEYS=on"):
        assert name in str(info.value)
    assert "OIDC_ISSUER" in str(info.value)
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
            "API_KEYS": "on",
        }
    )
    assert settings.production
    assert settings.api_keys
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
                "API_KEYS": "on",
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


def test_production_needs_a_way_for_admins_to_sign_in(tmp_path: Path) -> None:
    without = {k: v for k, v in PRODUCTION.items() if k != "API_KEYS"}
    env = {**without, "BILLING_HOME": str(tmp_path), "JWT_SECRET": SECRET}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert "a way for admins to sign in: API_KEYS=on" in message
    assert "development tokens signed with JWT_SECRET are not enough" in message
    # An issuer whose tokens can only be customers is not a way in for admins either.
    customers_only = {**env, "OIDC_ISSUER": "https://idp.example.com", "OIDC_ORG": "acme"}
    customers_only |= {"OIDC_AUDIENCE": "billing", "OIDC_ROLES": "member=customer"}
    with pytest.raises(SettingsError, match="a way for admins to sign in"):
        load_settings(customers_only)
    admins = {**customers_only, "OIDC_ROLES": "billing-admin=admin"}
    settings = load_settings(admins)
    assert not settings.api_keys
    (issuer,) = settings.oidc_issuers
    assert issuer.issuer == "https://idp.example.com"
    assert issuer.roles == (("billing-admin", "admin"),)
    assert issuer.default_role == "customer"
    # JWT_SECRET is no longer required in production: without it, dev tokens are refused.
    assert load_settings({**without, "API_KEYS": "on"}).jwt_secret is None


def test_production_needs_an_audience_for_every_issuer(tmp_path: Path) -> None:
    env = {**PRODUCTION, "OIDC_ISSUER": "https://idp.example.com", "OIDC_ORG": "acme"}
    with pytest.raises(SettingsError, match="needs an audience for every OIDC issuer"):
        load_settings(env)
    assert load_settings({**env, "OIDC_AUDIENCE": "billing"}).oidc_issuers[0].audience == "billing"


def test_issuers_file_configures_one_issuer_per_organization(tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(
        """{"issuers": [
          {"issuer": "https://acme.eu.auth0.com/", "audience": "billing", "org": "acme",
           "role_claim": "https://billing.example.com/role"},
          {"issuer": "https://sso.globex.com/realms/globex", "audience": "billing",
           "org": "globex", "role_claim": "realm_access.roles",
           "roles": {"billing-admin": "admin"}, "default_role": "none"},
          {"issuer": "http://127.0.0.1:9999", "org_claim": "tenant"}
        ]}"""
    )
    settings = load_settings({"BILLING_HOME": str(tmp_path), "OIDC_ISSUERS_FILE": str(path)})
    acme, globex, local = settings.oidc_issuers
    assert acme.issuer == "https://acme.eu.auth0.com"  # compared without the trailing slash
    assert acme.org == "acme"
    assert acme.role_claim == "https://billing.example.com/role"
    assert globex.roles == (("billing-admin", "admin"),)
    assert globex.default_role is None
    assert local.org is None
    assert local.org_claim == "tenant"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{"issuer": "http://idp.example.com", "org": "a"}', "must be an https:// URL"),
        ('{"issuer": "https://idp.example.com"}', "needs exactly one of org"),
        ('{"issuer": "https://i.example.com", "org": "a", "org_claim": "t"}', "exactly one"),
        ('{"issuer": "https://i.example.com", "org": "Acme!"}', "org must be 1-63"),
        ('{"issuer": "https://i.example.com", "org": "a", "roles": {"x": "root"}}', "roles must"),
        ('{"issuer": "https://i.example.com", "org": "a", "default_role": "root"}', "default_"),
        ('{"issuer": "https://i.example.com", "org": "a", "jwks": "x"}', "unknown setting(s)"),
    ],
)
def test_bad_issuer_entries_have_clear_messages(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(f'{{"issuers": [{entry}]}}')
    with pytest.raises(SettingsError) as info:
        load_settings({"BILLING_HOME": str(tmp_path), "OIDC_ISSUERS_FILE": str(path)})
    assert message in str(info.value)
    assert str(info.value).startswith("OIDC_ISSUERS_FILE issuer 1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("https://app.example.com", ("https://app.example.com",)),
        (
            " https://app.example.com , http://localhost:5173 ",
            ("https://app.example.com", "http://localhost:5173"),
        ),
        ("*", ("*",)),
    ],
)
def test_cors_origins(tmp_path: Path, value: str, expected: tuple[str, ...]) -> None:
    assert load_settings({"BILLING_HOME": str(tmp_path)}).cors_origins == ()
    env = {"BILLING_HOME": str(tmp_path), "CORS_ORIGINS": value}
    assert load_settings(env).cors_origins == expected


@pytest.mark.parametrize(
    "value",
    [
        "app.example.com",  # no scheme
        "https://app.example.com/",  # a path: browsers send none
        "https://app.example.com/portal",
        "ftp://app.example.com",
        "https://App.example.com",  # browsers send it in lowercase
        "https://user@app.example.com",
        "https://app.example.com:99999",
        "https://",
    ],
)
def test_cors_origins_must_be_origins(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"BILLING_HOME": str(tmp_path), "CORS_ORIGINS": value})
    assert f"got {value!r}" in str(info.value)


def test_webhook_retention_outlasts_the_retries(tmp_path: Path) -> None:
    base = {"BILLING_HOME": str(tmp_path)}
    assert load_settings(base).webhook_retention_days == 30
    assert load_settings({**base, "WEBHOOK_RETENTION_DAYS": "4"}).webhook_retention_days == 4
    with pytest.raises(SettingsError) as info:
        load_settings({**base, "WEBHOOK_RETENTION_DAYS": "3"})  # retries last 3 days
    assert str(info.value) == (
        "WEBHOOK_RETENTION_DAYS (3) must be longer than WEBHOOK_MAX_AGE_SECONDS (259200 s): an "
        "event is kept at least as long as its deliveries are retried."
    )
