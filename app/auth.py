"""Bearer JWTs: minting (for development) and verification.

Claims: ``sub`` (who), ``org`` (tenant), ``role`` (admin | customer | service), ``exp``.
A customer token's ``sub`` is the customer's id; it sees only that customer's data.
"""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from app.errors import Unauthenticated
from app.settings import Settings

__all__ = ["Principal", "Role", "decode_token", "mint_token"]

_ORG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LEEWAY_SECONDS = 5


class Role(enum.Enum):
    ADMIN = "admin"
    CUSTOMER = "customer"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    org: str
    role: Role
    expires_at: datetime | None = None

    @property
    def customer_id(self) -> str | None:
        """The customer a ``customer`` token is limited to."""
        return self.subject if self.role is Role.CUSTOMER else None


def mint_token(
    settings: Settings, *, org: str, role: Role, subject: str, ttl_seconds: int = 3600
) -> str:
    if not _ORG.match(org):
        raise ValueError("org must be 1-63 characters of a-z, 0-9, '-' and '_'.")
    if settings.jwt_algorithm != "HS256" or not settings.jwt_secret:
        raise ValueError("Minting needs JWT_SECRET (HS256); RS256 tokens come from your issuer.")
    now = int(time.time())
    claims = {"sub": subject, "org": org, "role": role.value, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    """Verify signature, expiry and claims; raise ``Unauthenticated`` with a safe reason."""
    key = settings.jwt_public_key if settings.jwt_algorithm == "RS256" else settings.jwt_secret
    if not key:
        raise Unauthenticated("Token verification is not configured.")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],
            options={"require": ["exp", "sub", "org", "role"]},
            leeway=_LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("Token has expired.") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated("Token signature is invalid.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"Token lacks the {exc.claim!r} claim.") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("Token is malformed.") from None
    org, subject, role = claims.get("org"), claims.get("sub"), claims.get("role")
    if not isinstance(org, str) or not _ORG.match(org):
        raise Unauthenticated("Token has an invalid 'org' claim.")
    if not isinstance(subject, str) or not subject or len(subject) > 200:
        raise Unauthenticated("Token has an invalid 'sub' claim.")
    try:
        parsed_role = Role(role)
    except ValueError:
        raise Unauthenticated("Token has an invalid 'role' claim.") from None
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    return Principal(subject=subject, org=org, role=parsed_role, expires_at=expires_at)
