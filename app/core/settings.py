"""Settings from environment variables, validated once at start with clear messages."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.core.persisted_queries import load_manifest

__all__ = ["ORG_PATTERN", "OidcIssuer", "Settings", "SettingsError", "load_settings"]

ORG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")
"""An organization id: 1-63 of a-z, 0-9, '-' and '_' (app.core.auth.valid_org)."""

_ENVIRONMENTS = ("development", "test", "production")
# A production JWT_SECRET must look random (see _guessable): these floors pass every random
# secret of 32+ characters in hex, base64 or UUID form, and refuse "x" * 40 or "password" * 4.
_SECRET_MIN_DISTINCT = 8
_SECRET_MIN_BITS = 80
_SECRET_MIN_BITS_PER_CHARACTER = 2.0


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and what it accepts."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    home: Path = Path(".billing")
    database_url: str | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_max_network_retries: int = 2
    stripe_timeout_seconds: int = 20
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithm: str = "HS256"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    graphql_max_depth: int = 10
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 2000
    graphql_max_cost: int = 25_000
    graphql_max_mutations: int = 5
    max_body_bytes: int = 262_144
    rate_limit_points: int = 25_000
    rate_limit_restore_rate: int = 500
    rate_limit_anonymous_points: int = 1_000
    rate_limit_anonymous_restore_rate: int = 20
    ws_max_connections_per_token: int = 20
    ws_init_timeout_seconds: int = 10
    ws_max_subscriptions: int = 10
    persisted_queries_file: Path | None = None
    persisted_queries_only: bool = False
    dunning_retry_days: tuple[int, ...] = (3, 5, 7)
    dunning_final_state: str = "canceled"
    worker_lease_seconds: int = 300
    worker_idle_seconds: int = 5
    worker_concurrency: int = 4
    embedded_worker: bool = False
    idempotency_lease_seconds: int = 300
    # Organization API keys (bk_live_… / bk_test_…): accepted as bearer tokens when on.
    api_keys: bool = True
    # How long a process trusts what it read about a key without hearing from the others (the
    # backstop behind the invalidations sent over LISTEN/NOTIFY).
    api_key_cache_seconds: int = 60
    # OpenID Connect issuers whose tokens are accepted (app/identity/oidc.py), from OIDC_* and
    # OIDC_ISSUERS_FILE, as plain data checked here; app/identity builds its verifier from it.
    oidc_issuers: tuple[OidcIssuer, ...] = ()
    oidc_jwks_cache_seconds: int = 600
    oidc_jwks_max_stale_seconds: int = 3600
    oidc_jwks_min_refetch_seconds: int = 30
    webhook_retry_base_seconds: int = 30
    webhook_max_age_seconds: int = 3 * 86_400
    webhook_retention_days: int = 30
    webhook_lease_seconds: int = 60
    webhook_timeout_seconds: int = 10
    reconcile_every_seconds: int = 600
    reconcile_window_hours: int = 72

    @property
    def test_clocks(self) -> bool:
        """Per-organization test clocks (`testClockAdvance`) exist outside production only."""
        return not self.production

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def stripe_mode(self) -> str:
        """``emulator`` (localstripe or another base URL), ``test`` or ``live`` (real Stripe)."""
        if self.stripe_api_base:
            return "emulator"
        if self.stripe_api_key and self.stripe_api_key.startswith(("sk_live_", "rk_live_")):
            return "live"
        return "test"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


_ROLES = ("admin", "service", "customer")


@dataclass(frozen=True)
class OidcIssuer:
    """One OpenID Connect issuer and how its tokens' claims become a principal."""

    issuer: str
    audience: str | None = None
    jwks_url: str | None = None  # None: discovered at {issuer}/.well-known/openid-configuration
    org: str | None = None  # a fixed organization (one issuer per tenant) ...
    org_claim: str | None = None  # ... or the claim that names it (exactly one of the two)
    role_claim: str = "role"  # a dotted path (realm_access.roles); a string or a list
    roles: tuple[tuple[str, str], ...] = (("admin", "admin"), ("service", "service"))
    default_role: str | None = "customer"  # without a mapped role; None refuses such tokens
    customer_claim: str = "sub"  # matched against Customer.externalRef

    @property
    def grants_admin(self) -> bool:
        return any(role == "admin" for _, role in self.roles) or self.default_role == "admin"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}.") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}.")
    return value


def _days(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if not raw:
        return default
    try:
        days = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(f"{name} must be comma-separated whole days, e.g. 3,5,7.") from None
    if not 1 <= len(days) <= 10 or any(not 1 <= d <= 60 for d in days):
        raise SettingsError(f"{name} must list 1-10 delays of 1-60 days each.")
    return days


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def _persisted_queries(env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """``PERSISTED_QUERIES_FILE`` (checked here, so a bad manifest stops the start) and
    ``PERSISTED_QUERIES_ONLY``, which needs it."""
    raw = env.get("PERSISTED_QUERIES_FILE") or None
    only = _choice(env, "PERSISTED_QUERIES_ONLY", "false", ("true", "false")) == "true"
    if raw is None:
        if only:
            raise SettingsError(
                "PERSISTED_QUERIES_ONLY=true needs PERSISTED_QUERIES_FILE (the manifest of the "
                "operations to allow)."
            )
        return None, False
    path = Path(raw)
    try:
        load_manifest(path)
    except ValueError as exc:
        raise SettingsError(f"PERSISTED_QUERIES_FILE: {exc}.") from None
    return path, only


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE`` (for mounted secrets)."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise SettingsError(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None
    return env.get(name) or None


def _guessable(secret: str) -> str | None:
    """Why ``secret`` looks guessable despite its length, or None. Random secrets of 32
    characters or more (hex, base64, ``secrets.token_urlsafe``, UUIDs) pass; a repeated
    character or pattern, or text with few different characters, does not."""
    counts = Counter(secret)
    bits = -sum(n * math.log2(n / len(secret)) for n in counts.values())
    if secret in (secret + secret)[1:-1]:
        return "it repeats a shorter pattern"
    if len(counts) < _SECRET_MIN_DISTINCT:
        return f"it has only {len(counts)} different characters (at least {_SECRET_MIN_DISTINCT})"
    if bits < _SECRET_MIN_BITS_PER_CHARACTER * len(secret):
        return (
            f"about {bits / len(secret):.1f} bits of entropy per character by their "
            f"frequencies (at least {_SECRET_MIN_BITS_PER_CHARACTER:.1f})"
        )
    if bits < _SECRET_MIN_BITS:
        return (
            f"about {bits:.0f} bits of entropy by its characters' frequencies "
            f"(at least {_SECRET_MIN_BITS})"
        )
    return None


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses and CIDR networks, normalized (``10.0.0.1``, ``10.0.0.0/8``)."""
    found = []
    for entry in (part.strip() for part in env.get(name, "").split(",")):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"{name} must list IP addresses or CIDR networks separated by commas "
                f"(e.g. 10.0.0.5,10.1.0.0/16), got {entry!r}."
            ) from None
        found.append(str(network) if "/" in entry else str(network.network_address))
    return tuple(found)


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated web origins (``https://app.example.com``, ``http://localhost:5173``) or
    ``*``: scheme, host and port only, as browsers send them in ``Origin``."""
    found = []
    for entry in (part.strip() for part in env.get(name, "").split(",")):
        if not entry:
            continue
        if entry == "*":
            found.append(entry)
            continue
        parts = urlsplit(entry)
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            parts = parts._replace(scheme="")
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username
            or entry != entry.lower()
        ):
            raise SettingsError(
                f"{name} lists web origins separated by commas, each a lowercase scheme, host "
                f"and optional port with no path (e.g. https://app.example.com,"
                f"http://localhost:5173), or *; got {entry!r}."
            )
        found.append(entry)
    return tuple(found)


_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ISSUER_KEYS = {
    "issuer",
    "audience",
    "jwks_url",
    "org",
    "org_claim",
    "role_claim",
    "roles",
    "default_role",
    "customer_claim",
}


def _url(value: object, what: str) -> str:
    """An https URL (http only on a loopback address, for local issuers and tests)."""
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{what} must be a URL.")
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not parts.hostname or (parts.scheme != "https" and not loopback):
        raise SettingsError(
            f"{what} must be an https:// URL (http:// only on a loopback address), got {value!r}."
        )
    return value


def _claim(value: object, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_:/.\-]{1,200}", value):
        raise SettingsError(f"{what} must name a claim (a dotted path such as realm_access.roles).")
    return value


def _issuer(raw: Mapping[str, Any], where: str) -> OidcIssuer:
    unknown = sorted(set(raw) - _ISSUER_KEYS)
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(unknown)}.")
    issuer = _url(raw.get("issuer"), f"{where} issuer").rstrip("/")
    audience = raw.get("audience") or None
    if audience is not None and (not isinstance(audience, str) or len(audience) > 500):
        raise SettingsError(f"{where} audience must be a string.")
    jwks_url = raw.get("jwks_url") or None
    if jwks_url is not None:
        jwks_url = _url(jwks_url, f"{where} jwks_url")
    org, org_claim = raw.get("org") or None, raw.get("org_claim") or None
    if (org is None) == (org_claim is None):
        raise SettingsError(
            f"{where} needs exactly one of org (a fixed organization: one issuer per tenant) "
            "and org_claim (the claim that names the organization)."
        )
    if org is not None and (not isinstance(org, str) or not ORG_PATTERN.match(org)):
        raise SettingsError(f"{where} org must be 1-63 characters of a-z, 0-9, '-' and '_'.")
    if org_claim is not None:
        org_claim = _claim(org_claim, f"{where} org_claim")
    roles_raw = raw.get("roles")
    if roles_raw is None:
        roles: tuple[tuple[str, str], ...] = (("admin", "admin"), ("service", "service"))
    elif isinstance(roles_raw, dict) and all(
        isinstance(k, str) and v in _ROLES for k, v in roles_raw.items()
    ):
        roles = tuple(sorted(roles_raw.items()))
    else:
        raise SettingsError(
            f"{where} roles must map claim values to admin, service or customer, e.g. "
            '{"billing-admin": "admin"}.'
        )
    default_role = raw.get("default_role", "customer")
    if default_role in ("none", ""):
        default_role = None
    if default_role is not None and default_role not in _ROLES:
        raise SettingsError(f"{where} default_role must be admin, service, customer or none.")
    return OidcIssuer(
        issuer=issuer,
        audience=audience,
        jwks_url=jwks_url,
        org=org,
        org_claim=org_claim,
        role_claim=_claim(raw.get("role_claim", "role"), f"{where} role_claim"),
        roles=roles,
        default_role=default_role,
        customer_claim=_claim(raw.get("customer_claim", "sub"), f"{where} customer_claim"),
    )


def _oidc_issuers(env: Mapping[str, str]) -> tuple[OidcIssuer, ...]:
    """The issuers of ``OIDC_ISSUER`` (with its OIDC_* companions) and ``OIDC_ISSUERS_FILE``
    (a JSON file: ``{"issuers": [{"issuer": …, "org": …}, …]}``, for one issuer per tenant)."""
    found: list[OidcIssuer] = []
    if env.get("OIDC_ISSUER"):
        raw: dict[str, Any] = {"issuer": env["OIDC_ISSUER"]}
        for key in ("audience", "jwks_url", "org", "org_claim", "role_claim", "customer_claim"):
            value = env.get(f"OIDC_{key.upper()}")
            if value:
                raw[key] = value
        if env.get("OIDC_DEFAULT_ROLE"):
            raw["default_role"] = env["OIDC_DEFAULT_ROLE"].strip().lower()
        if env.get("OIDC_ROLES"):
            pairs = [part.partition("=") for part in env["OIDC_ROLES"].split(",") if part]
            if any(not sep for _, sep, _ in pairs):
                raise SettingsError(
                    "OIDC_ROLES must list claim-value=role pairs, e.g. "
                    "billing-admin=admin,billing-service=service."
                )
            raw["roles"] = {k.strip(): v.strip().lower() for k, _, v in pairs}
        found.append(_issuer(raw, "OIDC_ISSUER"))
    elif any(env.get(f"OIDC_{k}") for k in ("AUDIENCE", "JWKS_URL", "ORG", "ORG_CLAIM")):
        raise SettingsError("OIDC_AUDIENCE, OIDC_JWKS_URL, OIDC_ORG… need OIDC_ISSUER.")
    path = env.get("OIDC_ISSUERS_FILE")
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise SettingsError(
                f"OIDC_ISSUERS_FILE={path!r} cannot be read: {exc.strerror}."
            ) from None
        except ValueError as exc:
            raise SettingsError(f"OIDC_ISSUERS_FILE={path!r} is not JSON: {exc}.") from None
        entries = data.get("issuers") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SettingsError(
                'OIDC_ISSUERS_FILE must hold {"issuers": [{"issuer": "https://…", "org": …}, …]}.'
            )
        found += [_issuer(e, f"OIDC_ISSUERS_FILE issuer {n + 1}") for n, e in enumerate(entries)]
    issuers = [i.issuer for i in found]
    if len(set(issuers)) != len(issuers):
        raise SettingsError("An OIDC issuer is configured twice; give each issuer one entry.")
    return tuple(found)


def _development_jwt_secret(home: Path) -> str:
    """A per-installation random secret kept in BILLING_HOME, so `billing token` and
    `billing serve` agree without a secret written in the code."""
    path = home / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def billing_home(env: Mapping[str, str]) -> Path:
    """The data folder: BILLING_HOME, or ``./.billing``."""
    return Path(env.get("BILLING_HOME") or ".billing").expanduser().resolve()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    mode = env.get("BILLING_ENV", "development").strip().lower()
    if mode not in _ENVIRONMENTS:
        raise SettingsError(f"BILLING_ENV must be one of {', '.join(_ENVIRONMENTS)}, got {mode!r}.")
    home = billing_home(env)

    database_url = env.get("DATABASE_URL") or None
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        raise SettingsError("DATABASE_URL must start with postgresql:// (or postgres://).")

    stripe_key = _secret(env, "STRIPE_API_KEY")
    if stripe_key and not stripe_key.startswith(("sk_", "rk_")):
        raise SettingsError("STRIPE_API_KEY must be a Stripe secret or restricted key (sk_/rk_).")
    stripe_base = env.get("STRIPE_API_BASE") or None
    if stripe_base and not stripe_base.startswith(("http://", "https://")):
        raise SettingsError("STRIPE_API_BASE must be an http(s) URL.")

    algorithm = env.get("JWT_ALGORITHM", "HS256").upper()
    if algorithm not in ("HS256", "RS256"):
        raise SettingsError("JWT_ALGORITHM must be HS256 or RS256.")
    jwt_secret = _secret(env, "JWT_SECRET")
    jwt_public_key = _secret(env, "JWT_PUBLIC_KEY")
    if algorithm == "RS256" and not jwt_public_key:
        raise SettingsError("JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE.")
    if jwt_secret is not None and len(jwt_secret) < 32:
        raise SettingsError("JWT_SECRET must be at least 32 characters long.")

    oidc_issuers = _oidc_issuers(env)
    api_keys = (
        _choice(env, "API_KEYS", "off" if mode == "production" else "on", ("on", "off")) == "on"
    )

    if mode == "production":
        missing = [
            name
            for name, value in (
                ("DATABASE_URL", database_url),
                ("STRIPE_API_KEY", stripe_key),
                ("STRIPE_WEBHOOK_SECRET", _secret(env, "STRIPE_WEBHOOK_SECRET")),
            )
            if not value
        ]
        if not api_keys and not any(i.grants_admin for i in oidc_issuers):
            missing.append(
                "a way for admins to sign in: API_KEYS=on (then `billing api-key create "
                "--role admin`) or OIDC_ISSUER / OIDC_ISSUERS_FILE with a role claim that maps "
                "to admin (development tokens signed with JWT_SECRET are not enough)"
            )
        if missing:
            raise SettingsError(
                "BILLING_ENV=production refuses development defaults; set "
                + ", ".join(missing)
                + "."
            )
        no_audience = [i.issuer for i in oidc_issuers if i.audience is None]
        if no_audience:
            raise SettingsError(
                "BILLING_ENV=production needs an audience for every OIDC issuer (OIDC_AUDIENCE "
                "or the file's audience), or tokens the issuer made for other applications "
                f"would be accepted: {', '.join(no_audience)}."
            )
        if stripe_base:
            raise SettingsError("STRIPE_API_BASE (an emulator) is not allowed in production.")
        weakness = _guessable(jwt_secret) if jwt_secret else None
        if weakness:
            raise SettingsError(
                f"JWT_SECRET looks guessable: {weakness}. Use a random value, e.g. the output "
                "of `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
    elif algorithm == "HS256" and not jwt_secret:
        jwt_secret = _development_jwt_secret(home)

    graphql_max_cost = _int(env, "GRAPHQL_MAX_COST", 25_000, 10, 10_000_000)
    rate_limit_points = _int(env, "RATE_LIMIT_POINTS", 25_000, 1, 10**9)
    rate_limit_restore_rate = _int(env, "RATE_LIMIT_RESTORE_RATE", 500, 0, 10**7)
    if rate_limit_restore_rate and rate_limit_points < graphql_max_cost:
        raise SettingsError(
            f"RATE_LIMIT_POINTS ({rate_limit_points}) must be at least GRAPHQL_MAX_COST "
            f"({graphql_max_cost}), or a query of the largest allowed cost could never run."
        )

    persisted_file, persisted_only = _persisted_queries(env)
    webhook_timeout = _int(env, "WEBHOOK_TIMEOUT_SECONDS", 10, 1, 60)
    webhook_lease = _int(env, "WEBHOOK_LEASE_SECONDS", 60, 2, 3600)
    webhook_max_age = _int(env, "WEBHOOK_MAX_AGE_SECONDS", 3 * 86_400, 60, 30 * 86_400)
    webhook_retention = _int(env, "WEBHOOK_RETENTION_DAYS", 30, 1, 3650)
    if webhook_retention * 86_400 <= webhook_max_age:
        raise SettingsError(
            f"WEBHOOK_RETENTION_DAYS ({webhook_retention}) must be longer than "
            f"WEBHOOK_MAX_AGE_SECONDS ({webhook_max_age} s): an event is kept at least as long "
            "as its deliveries are retried."
        )
    if webhook_lease <= 2 * webhook_timeout:
        raise SettingsError(
            f"WEBHOOK_LEASE_SECONDS ({webhook_lease}) must be more than twice "
            f"WEBHOOK_TIMEOUT_SECONDS ({webhook_timeout}): a worker delivers a claimed round "
            "within two timeouts, and its claims must not lapse meanwhile."
        )

    return Settings(
        env=mode,
        home=home,
        database_url=database_url,
        db_pool_min=_int(env, "DB_POOL_MIN", 2, 1, 100),
        db_pool_max=_int(env, "DB_POOL_MAX", 10, 1, 500),
        stripe_api_key=stripe_key,
        stripe_api_base=stripe_base,
        stripe_webhook_secret=_secret(env, "STRIPE_WEBHOOK_SECRET"),
        stripe_max_network_retries=_int(env, "STRIPE_MAX_NETWORK_RETRIES", 2, 0, 10),
        stripe_timeout_seconds=_int(env, "STRIPE_TIMEOUT_SECONDS", 20, 1, 300),
        jwt_secret=jwt_secret,
        jwt_public_key=jwt_public_key,
        jwt_algorithm=algorithm,
        host=env.get("HOST", "127.0.0.1"),
        port=_int(env, "PORT", 8000, 0, 65535),
        workers=_int(env, "WEB_CONCURRENCY", 1, 1, 64),
        log_level=env.get("LOG_LEVEL", "info").lower(),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        cors_origins=_origins(env, "CORS_ORIGINS"),
        graphql_max_depth=_int(env, "GRAPHQL_MAX_DEPTH", 10, 2, 50),
        graphql_max_aliases=_int(env, "GRAPHQL_MAX_ALIASES", 30, 1, 1000),
        graphql_max_tokens=_int(env, "GRAPHQL_MAX_TOKENS", 2000, 100, 100_000),
        graphql_max_cost=graphql_max_cost,
        graphql_max_mutations=_int(env, "GRAPHQL_MAX_MUTATIONS", 5, 1, 50),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 262_144, 1024, 64 * 2**20),
        rate_limit_points=rate_limit_points,
        rate_limit_restore_rate=rate_limit_restore_rate,
        rate_limit_anonymous_points=_int(env, "RATE_LIMIT_ANONYMOUS_POINTS", 1_000, 1, 10**9),
        rate_limit_anonymous_restore_rate=_int(
            env, "RATE_LIMIT_ANONYMOUS_RESTORE_RATE", 20, 0, 10**7
        ),
        ws_max_connections_per_token=_int(env, "WS_MAX_CONNECTIONS_PER_TOKEN", 20, 1, 10_000),
        ws_init_timeout_seconds=_int(env, "WS_INIT_TIMEOUT_SECONDS", 10, 1, 300),
        ws_max_subscriptions=_int(env, "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", 10, 1, 1000),
        persisted_queries_file=persisted_file,
        persisted_queries_only=persisted_only,
        dunning_retry_days=_days(env, "DUNNING_RETRY_DAYS", (3, 5, 7)),
        dunning_final_state=_choice(env, "DUNNING_FINAL_STATE", "canceled", ("canceled", "unpaid")),
        worker_lease_seconds=_int(env, "WORKER_LEASE_SECONDS", 300, 1, 86_400),
        worker_idle_seconds=_int(env, "WORKER_IDLE_SECONDS", 5, 1, 3600),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 4, 1, 64),
        idempotency_lease_seconds=_int(env, "IDEMPOTENCY_LEASE_SECONDS", 300, 1, 3600),
        webhook_retry_base_seconds=_int(env, "WEBHOOK_RETRY_BASE_SECONDS", 30, 1, 3600),
        webhook_max_age_seconds=webhook_max_age,
        webhook_retention_days=webhook_retention,
        webhook_lease_seconds=webhook_lease,
        webhook_timeout_seconds=webhook_timeout,
        reconcile_every_seconds=_int(env, "RECONCILE_EVERY_SECONDS", 600, 0, 86_400),
        reconcile_window_hours=_int(env, "RECONCILE_WINDOW_HOURS", 72, 1, 24 * 90),
        embedded_worker=_choice(env, "BILLING_EMBEDDED_WORKER", "false", ("true", "false"))
        == "true",
        api_keys=api_keys,
        api_key_cache_seconds=_int(env, "API_KEY_CACHE_SECONDS", 60, 1, 3600),
        oidc_issuers=oidc_issuers,
        oidc_jwks_cache_seconds=_int(env, "OIDC_JWKS_CACHE_SECONDS", 600, 10, 86_400),
        oidc_jwks_max_stale_seconds=_int(env, "OIDC_JWKS_MAX_STALE_SECONDS", 3600, 0, 7 * 86_400),
        oidc_jwks_min_refetch_seconds=_int(env, "OIDC_JWKS_MIN_REFETCH_SECONDS", 30, 1, 3600),
    )
