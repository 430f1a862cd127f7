"""Who is calling: organization API keys, OpenID Connect tokens, the service's own tokens, and
the audit log of what callers changed."""

from app.identity.api_keys import MAX_GRACE_SECONDS, ApiKey, ApiKeys, ApiKeyStatus, is_api_key
from app.identity.audit import AuditEntry, AuditLog, Outcome
from app.identity.authenticator import Authenticator
from app.identity.oidc import ALGORITHMS, LEEWAY_SECONDS, CustomerResolver, OidcVerifier

__all__ = [
    "ALGORITHMS",
    "LEEWAY_SECONDS",
    "MAX_GRACE_SECONDS",
    "ApiKey",
    "ApiKeyStatus",
    "ApiKeys",
    "AuditEntry",
    "AuditLog",
    "Authenticator",
    "CustomerResolver",
    "OidcVerifier",
    "Outcome",
    "is_api_key",
]
