"""One entry point for every bearer credential: API keys, OpenID Connect tokens, and the
service's own JWTs (``billing token``; JWT_SECRET or JWT_PUBLIC_KEY).

The credential's shape picks its verifier: ``bk_live_…`` / ``bk_test_…`` is an API key; a JWT
whose (unverified) ``iss`` is a configured OIDC issuer goes to that issuer's keys; anything
else is checked as the service's own token. Each verifier checks the credential completely
with its own keys and algorithms, so claiming another issuer gets a token nothing more than a
refusal (an HS256 token naming an OIDC issuer is refused there: only RS256/ES256).
"""

from __future__ import annotations

from app.core.auth import MAX_TOKEN_CHARS, Principal, decode_token
from app.core.errors import Unauthenticated
from app.core.settings import Settings
from app.identity.api_keys import ApiKeys, is_api_key
from app.identity.oidc import OidcVerifier, issuer_of

__all__ = ["Authenticator"]


class Authenticator:
    def __init__(self, settings: Settings, api_keys: ApiKeys, oidc: OidcVerifier) -> None:
        self._settings = settings
        self.api_keys = api_keys
        self.oidc = oidc

    async def authenticate(self, credential: str) -> Principal:
        """The principal of a bearer credential, or ``Unauthenticated`` with a safe reason."""
        if len(credential) > MAX_TOKEN_CHARS or not credential.isascii():
            raise Unauthenticated("Token is malformed.")
        if is_api_key(credential):
            return await self.api_keys.verify(credential)
        if self.oidc.configured:
            issuer = issuer_of(credential)
            if self.oidc.knows(issuer):
                assert issuer is not None
                return await self.oidc.verify(credential, issuer)
        return decode_token(self._settings, credential)
