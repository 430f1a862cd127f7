"""Bearer JWTs: minting (for development) and verification.

Claims: ``sub`` (who), ``org`` (tenant), ``role`` (admin | customer | service), ``exp``.
A customer token's ``sub`` is the customer's id; it sees only that customer's data.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import jwt
from jwt.exceptions import InvalidSubjectError

from app.core.errors import Unauthenticated
from app.core.settings import ORG_PATTERN as _ORG
from app.core.settings import Settings

__all__ = [
    "MAX_TOKEN_CHARS",
    "AuthMethod",
    "Principal",
    "Role",
    "decode_token",
    "mint_token",
    "valid_org",
]

_LEEWAY_SECONDS = 5
# 9999-12-31T23:59:59Z, the last second a datetime can hold.
_MAX_NUMERIC_DATE = 253_402_300_799
MAX_TOKEN_CHARS = 8192


class Role(enum.Enum):
    ADMIN = "admin"
    CUSTOMER = "customer"
    SERVICE = "service"


class AuthMethod(enum.Enum):
    """How a caller signed in (the audit log's ``actorType``)."""

    TOKEN = "token"  # noqa: S105 - not a secret; a JWT signed with JWT_SECRET (or JWT_PUBLIC_KEY): `billing token`
    API_KEY = "api_key"  # an organization API key, bk_live_… / bk_test_…
    OIDC = "oidc"  # a token of a configured OpenID Connect issuer


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    org: str
    role: Role
    expires_at: datetime | None = None
    method: AuthMethod = AuthMethod.TOKEN
    # Who it is in the audit log when that is not ``subject``: an OIDC customer's subject is
    # its customer id; this is the identity provider's ``sub``.
    actor: str | None = None
    # The API key's id, for a principal signed in with one (revocation closes its sockets).
    key_id: str | None = None

    @property
    def who(self) -> str:
        """The audit log's ``actor``: the token's subject, the key's prefix, the IdP's sub."""
        return self.actor or self.subject

    @property
    def customer_id(self) -> str | None:
        """The customer a ``customer`` token is limited to."""
        return self.subject if self.role is Role.CUSTOMER else None


def valid_org(value: object) -> TypeGuard[str]:
    """True for an organization id a token may carry: 1-63 of a-z, 0-9, '-' and '_'."""
    return isinstance(value, str) and _ORG.match(value) is not None


def mint_token(
    settings: Settings, *, org: str, role: Role, subject: str, ttl_seconds: int = 3600
) -> str:
    if not valid_org(org):
        raise ValueError("org must be 1-63 characters of a-z, 0-9, '-' and '_'.")
    if settings.jwt_algorithm != "HS256" or not settings.jwt_secret:
        raise ValueError("Minting needs JWT_SECRET (HS256); RS256 tokens come from your issuer.")
    now = int(time.time())
    claims = {"sub": subject, "org": org, "role": role.value, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    """Verify signature, expiry and claims; raise ``Unauthenticated`` with a safe reason.

    Any token, however shaped, ends here or in ``Unauthenticated``: the claims are checked for
    type and range before they are used, so an odd value (``exp: 1e20``, a string, a boolean,
    a NUL in ``sub``) cannot raise anything else later.
    """
    key = settings.jwt_public_key if settings.jwt_algorithm == "RS256" else settings.jwt_secret
    if not key:
        raise Unauthenticated("Token verification is not configured.")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise Unauthenticated("Token is malformed.")
    try:
        # The times are checked below, once their types and ranges are known to be sane.
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            options={
                "require": ["exp", "sub", "org", "role"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise Unauthenticated("Token signature is invalid.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"Token lacks the {exc.claim!r} claim.") from None
    except InvalidSubjectError:
        raise Unauthenticated("Token has an invalid 'sub' claim.") from None
    except (jwt.InvalidTokenError, RecursionError):
        raise Unauthenticated("Token is malformed.") from None
    expires = _numeric_date(claims, "exp")
    not_before = _numeric_date(claims, "nbf")
    issued = _numeric_date(claims, "iat")
    now = time.time()
    assert expires is not None  # required above
    if expires <= now - _LEEWAY_SECONDS:
        raise Unauthenticated("Token has expired.")
    for moment in (not_before, issued):
        if moment is not None and moment > now + _LEEWAY_SECONDS:
            raise Unauthenticated("Token is not valid yet.")
    org, subject, role = claims.get("org"), claims.get("sub"), claims.get("role")
    if not valid_org(org):
        raise Unauthenticated("Token has an invalid 'org' claim.")
    if not isinstance(subject, str) or not 1 <= len(subject) <= 200 or not subject.isprintable():
        raise Unauthenticated("Token has an invalid 'sub' claim.")
    try:
        parsed_role = Role(role)
    except (ValueError, TypeError):
        raise Unauthenticated("Token has an invalid 'role' claim.") from None
    expires_at = datetime.fromtimestamp(expires, UTC)
    return Principal(subject=subject, org=org, role=parsed_role, expires_at=expires_at)


def _numeric_date(claims: dict[str, Any], name: str) -> int | None:
    """A NumericDate claim (RFC 7519: a JSON number of seconds since the epoch) as an int, or
    None when absent. Booleans, strings, NaN, infinities and instants outside 1970-9999 are
    refused: they are no date, and datetime cannot hold them."""
    if name not in claims:
        return None
    value = claims[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _MAX_NUMERIC_DATE  # also false for NaN and the infinities
    ):
        raise Unauthenticated(f"Token has an invalid {name!r} claim.")
    return int(value)
