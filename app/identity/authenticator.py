"""One entry point for every bearer credential: API keys, OpenID Connect tokens, and the
service's own JWTs (``billing token``; JWT_SECRET or JWT_PUBLIC_KEY).

The credential's shape picks its verifier: ``bk_live_…`` / ``bk_test_…`` is an API key; a JWT
whose (unverified) ``iss`` is a configured OIDC issuer goes to that issuer's keys; anything
else is checked as the service's own token. Each verifier checks the credential completely
with its own keys and algorithms, so claiming another issuer gets a token nothing more than a
refusal (an HS256 token naming an OIDC issuer is refused there: only RS256/ES256).

A JWT that was verified is remembered, by the SHA-256 of its text, for ``remember_seconds``
(and never past its ``exp``): a client sends the same token on every request until it
expires, and checking its signature again costs hundreds of microseconds (docs/security.md,
"What signing in costs"). A JWT cannot change or be revoked, so nothing is lost but the bound
on how late a changed customer ``externalRef`` or a signing key removed from an issuer's JWKS
is noticed (``remember_seconds``, 30 s). API keys are not remembered here: they have their own
cache, which revocations clear in every process.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from datetime import UTC, datetime

from app.core.auth import MAX_TOKEN_CHARS, Principal, decode_token
from app.core.errors import Unauthenticated
from app.core.settings import Settings
from app.identity.api_keys import ApiKeys, is_api_key
from app.identity.oidc import OidcVerifier, issuer_of

__all__ = ["Authenticator"]

_REMEMBERED = 10_000


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        api_keys: ApiKeys,
        oidc: OidcVerifier,
        *,
        remember_seconds: float = 30,
    ) -> None:
        self._settings = settings
        self.api_keys = api_keys
        self.oidc = oidc
        self._remember_seconds = remember_seconds
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    async def authenticate(self, credential: str) -> Principal:
        """The principal of a bearer credential, or ``Unauthenticated`` with a safe reason."""
        if len(credential) > MAX_TOKEN_CHARS or not credential.isascii():
            raise Unauthenticated("Token is malformed.")
        if is_api_key(credential):
            return await self.api_keys.verify(credential)
        digest = hashlib.sha256(credential.encode("ascii")).digest()
        remembered = self._verified.get(digest)
        if remembered is not None:
            principal, until = remembered
            if time.monotonic() < until and (
                principal.expires_at is None or principal.expires_at > datetime.now(UTC)
            ):
                return principal
            del self._verified[digest]
        principal = await self._verify_jwt(credential)
        if self._remember_seconds > 0:
            self._verified[digest] = (principal, time.monotonic() + self._remember_seconds)
            if len(self._verified) > _REMEMBERED:
                self._verified.popitem(last=False)
        return principal

    async def _verify_jwt(self, credential: str) -> Principal:
        if self.oidc.configured:
            issuer = issuer_of(credential)
            if self.oidc.knows(issuer):
                assert issuer is not None
                return await self.oidc.verify(credential, issuer)
        return decode_token(self._settings, credential)
