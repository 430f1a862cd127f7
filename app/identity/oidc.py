"""OpenID Connect: accept RS256 / ES256 tokens of configured issuers (Auth0, Keycloak, Cognito,
Entra ID, …) and turn their claims into a principal.

Per issuer, the signing keys (its JWKS) are fetched once and kept ``cache_seconds``; the URL
comes from the configuration or from the issuer's discovery document. A token signed with a key
the cache does not know (the issuer rotated its keys) makes one refetch, at most one per
``min_refetch_seconds`` per issuer, shared by the requests waiting for it. Past
``cache_seconds`` the keys are refreshed in the background while the ones held keep serving, up
to ``max_stale_seconds`` more if the issuer cannot be reached (an outage of the issuer does not
stop sign-ins that soon); after that its tokens are refused until it answers again.

Claims: ``iss``, ``exp`` and ``sub`` are required; ``aud`` must name the configured audience;
``exp``, ``nbf`` and ``iat`` are checked with ``LEEWAY_SECONDS``. The organization is the
issuer's fixed one or the value of its ``org_claim``; the role comes from ``role_claim``
through the issuer's ``roles`` map (the most powerful one wins when the claim is a list),
else ``default_role``. A customer is the customer whose ``externalRef`` equals the token's
``customer_claim`` (``sub`` by default) in that organization.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError

from app.core.auth import AuthMethod, Principal, Role, valid_org
from app.core.errors import Unauthenticated
from app.core.settings import OidcIssuer

__all__ = ["ALGORITHMS", "LEEWAY_SECONDS", "CustomerResolver", "OidcVerifier", "issuer_of"]

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 10
_MAX_DOCUMENT_BYTES = 512 * 1024
_FETCH_TIMEOUT_SECONDS = 5.0
_CUSTOMER_CACHE_SECONDS = 30.0
_CUSTOMER_CACHE_ENTRIES = 10_000
_RANK = {Role.CUSTOMER: 0, Role.SERVICE: 1, Role.ADMIN: 2}

CustomerResolver = Callable[[str, str], Awaitable[str | None]]
"""(organization, external reference) → the customer's id, or None."""


def issuer_of(token: str) -> str | None:
    """The ``iss`` a JWT claims, unverified (only to choose who verifies it), or None. Read
    by hand: PyJWT's unverified decode costs several times more, on every request."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, RecursionError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer.rstrip("/") if isinstance(issuer, str) else None


def _claim(claims: Mapping[str, Any], path: str) -> object:
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


@dataclass
class _Keys:
    """One issuer's signing keys and when they were fetched."""

    config: OidcIssuer
    keys: dict[str | None, PyJWK] = field(default_factory=dict)
    fetched: float | None = None  # monotonic time of the last successful fetch
    attempted: float | None = None  # of the last attempt, successful or not
    unknown_kid: float | None = None  # of the last refetch an unknown kid asked for
    jwks_url: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    refreshing: asyncio.Task[None] | None = None


class OidcVerifier:
    def __init__(
        self,
        issuers: tuple[OidcIssuer, ...],
        *,
        resolve_customer: CustomerResolver,
        cache_seconds: float = 600,
        max_stale_seconds: float = 3600,
        min_refetch_seconds: float = 30,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._issuers = {i.issuer: _Keys(i, jwks_url=i.jwks_url) for i in issuers}
        self._resolve_customer = resolve_customer
        self.cache_seconds = cache_seconds
        self.max_stale_seconds = max_stale_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._http = http
        self._own_http = http is None
        self._customers: dict[tuple[str, str], tuple[str, float]] = {}
        self.fetches = 0  # JWKS documents fetched (tests count them)

    @property
    def configured(self) -> bool:
        return bool(self._issuers)

    def knows(self, issuer: str | None) -> bool:
        return issuer is not None and issuer in self._issuers

    async def close(self) -> None:
        for state in self._issuers.values():
            if state.refreshing is not None:
                state.refreshing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await state.refreshing
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    # -- verification ------------------------------------------------------------------------

    async def verify(self, token: str, issuer: str) -> Principal:
        state = self._issuers[issuer]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("Token is malformed.") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthenticated(
                f"Tokens of this issuer must be signed with {' or '.join(ALGORITHMS)}."
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("Token is malformed.")
        key = await self._key(state, kid)
        if key is None:
            raise Unauthenticated("Token is signed with a key its issuer does not publish.")
        if key.algorithm_name != algorithm:
            raise Unauthenticated("Token's algorithm does not match its key.")
        config = state.config
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=[config.issuer, config.issuer + "/"],
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": config.audience is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("Token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("Token is not valid yet.") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("Token is not meant for this API (audience).") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("Token has an unexpected issuer.") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("Token signature is invalid.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"Token lacks the {exc.claim!r} claim.") from None
        except (jwt.InvalidTokenError, RecursionError, ValueError, TypeError):
            raise Unauthenticated("Token is malformed.") from None
        return await self._principal(config, claims)

    async def _principal(self, config: OidcIssuer, claims: Mapping[str, Any]) -> Principal:
        subject = claims.get("sub")
        if (
            not isinstance(subject, str)
            or not 1 <= len(subject) <= 200
            or not subject.isprintable()
        ):
            raise Unauthenticated("Token has an invalid 'sub' claim.")
        org = config.org if config.org is not None else _claim(claims, config.org_claim or "")
        if not valid_org(org):
            raise Unauthenticated("Token does not name a valid organization.")
        role = self._role(config, claims)
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float) or not 0 <= exp < 253402300800:
            raise Unauthenticated("Token has an invalid 'exp' claim.")
        expires_at = datetime.fromtimestamp(exp, UTC)
        actor = subject
        if role is Role.CUSTOMER:
            reference = _claim(claims, config.customer_claim)
            if not isinstance(reference, str) or not 1 <= len(reference) <= 200:
                raise Unauthenticated(f"Token lacks the {config.customer_claim!r} claim.")
            customer = await self._customer(org, reference)
            if customer is None:
                raise Unauthenticated(
                    "No customer of this organization has this token's "
                    f"{config.customer_claim!r} as its externalRef."
                )
            subject = customer
        return Principal(
            subject=subject,
            org=org,
            role=role,
            expires_at=expires_at,
            method=AuthMethod.OIDC,
            actor=actor,
        )

    @staticmethod
    def _role(config: OidcIssuer, claims: Mapping[str, Any]) -> Role:
        value = _claim(claims, config.role_claim)
        values = value if isinstance(value, list) else [value]
        mapping = dict(config.roles)
        found = [Role(mapping[v]) for v in values if isinstance(v, str) and v in mapping]
        if found:
            return max(found, key=lambda r: _RANK[r])
        if config.default_role is None:
            raise Unauthenticated("Token has no role this API knows.")
        return Role(config.default_role)

    async def _customer(self, org: str, reference: str) -> str | None:
        """The customer id, remembered for a short while (a customer found is cached; one not
        found is looked up again on the next request, so a new customer can sign in at once)."""
        now = time.monotonic()
        cached = self._customers.get((org, reference))
        if cached is not None and now - cached[1] < _CUSTOMER_CACHE_SECONDS:
            return cached[0]
        found = await self._resolve_customer(org, reference)
        if found is not None:
            if len(self._customers) >= _CUSTOMER_CACHE_ENTRIES:
                self._customers.clear()
            self._customers[(org, reference)] = (found, now)
        return found

    # -- signing keys ------------------------------------------------------------------------

    async def _key(self, state: _Keys, kid: str | None) -> PyJWK | None:
        now = time.monotonic()
        age = None if state.fetched is None else now - state.fetched
        if age is None or age > self.cache_seconds + self.max_stale_seconds:
            await self._refetch(state, force=state.attempted is None)
        elif age > self.cache_seconds:
            self._refresh_in_background(state)
        key = self._find(state, kid)
        if key is None and state.fetched is not None:
            # Maybe rotated: one refetch, at most one per min_refetch_seconds per issuer for
            # unknown kids (a flood of made-up kids cannot make us hammer the issuer).
            now = time.monotonic()
            if state.unknown_kid is None or now - state.unknown_kid >= self.min_refetch_seconds:
                state.unknown_kid = now
                await self._refetch(state, force=True)
                key = self._find(state, kid)
        if state.fetched is None or time.monotonic() - state.fetched > (
            self.cache_seconds + self.max_stale_seconds
        ):
            raise Unauthenticated("The token's issuer cannot be reached to check its keys.")
        return key

    @staticmethod
    def _find(state: _Keys, kid: str | None) -> PyJWK | None:
        if kid is None:
            return next(iter(state.keys.values())) if len(state.keys) == 1 else None
        return state.keys.get(kid)

    def _refresh_in_background(self, state: _Keys) -> None:
        if state.refreshing is None or state.refreshing.done():
            state.refreshing = asyncio.create_task(self._refetch(state, force=False))

    async def _refetch(self, state: _Keys, *, force: bool) -> None:
        """Fetch the keys, unless another request did while this one waited for the lock;
        without ``force``, not within min_refetch_seconds of the last attempt."""
        attempted = state.attempted
        async with state.lock:
            if state.attempted != attempted:
                return  # another request fetched while this one waited
            now = time.monotonic()
            if (
                not force
                and state.attempted is not None
                and now - state.attempted < self.min_refetch_seconds
            ):
                return
            state.attempted = now
            try:
                state.keys = await self._fetch(state)
                state.fetched = time.monotonic()
            except (httpx.HTTPError, ValueError, PyJWKSetError) as exc:
                log.warning(
                    "could not fetch the signing keys of %s: %s",
                    state.config.issuer,
                    type(exc).__name__,
                )

    async def _fetch(self, state: _Keys) -> dict[str | None, PyJWK]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_FETCH_TIMEOUT_SECONDS, follow_redirects=False)
        if state.jwks_url is None:
            discovery = await self._document(
                f"{state.config.issuer}/.well-known/openid-configuration"
            )
            if discovery.get("issuer", "").rstrip("/") != state.config.issuer:
                raise ValueError("the discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise ValueError("the discovery document has no jwks_uri")
            state.jwks_url = jwks_uri
        document = await self._document(state.jwks_url)
        self.fetches += 1
        keys: dict[str | None, PyJWK] = {}
        for key in PyJWKSet.from_dict(document).keys:
            if key.algorithm_name in ALGORITHMS:
                keys[key.key_id] = key
        if not keys:
            raise ValueError("the JWKS has no RS256 or ES256 key")
        return keys

    async def _document(self, url: str) -> dict[str, Any]:
        assert self._http is not None
        response = await self._http.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise ValueError("document too large")
        value = json.loads(response.content)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
