"""Domain errors: raised by services, turned into payload errors at the mutation boundary."""

from __future__ import annotations

import enum

__all__ = [
    "RETRY_WITH_KEY",
    "DomainError",
    "ErrorCode",
    "Forbidden",
    "NotFound",
    "ProviderUnreachable",
    "PublicError",
    "Unauthenticated",
    "ValidationFailed",
]


class ErrorCode(enum.Enum):
    INVALID = "INVALID"
    REQUIRED = "REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    DUPLICATE = "DUPLICATE"
    INVALID_STATE = "INVALID_STATE"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    PAYMENT_PROVIDER_ERROR = "PAYMENT_PROVIDER_ERROR"
    CARD_DECLINED = "CARD_DECLINED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    IDEMPOTENCY_KEY_IN_USE = "IDEMPOTENCY_KEY_IN_USE"
    AMOUNT_EXCEEDS_REFUNDABLE = "AMOUNT_EXCEEDS_REFUNDABLE"
    OPERATION_IN_PROGRESS = "OPERATION_IN_PROGRESS"
    AMOUNT_EXCEEDS_CREDITABLE = "AMOUNT_EXCEEDS_CREDITABLE"
    NOT_PERMITTED = "NOT_PERMITTED"
    USAGE_PERIOD_CLOSED = "USAGE_PERIOD_CLOSED"


class DomainError(Exception):
    """A problem the caller can fix; becomes a ``UserError`` in the mutation payload."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: tuple[str, ...] | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.details = details or {}

    def at(self, field: tuple[str, ...]) -> DomainError:
        """The same error, reported at ``field``."""
        return DomainError(self.code, self.message, field=field, details=self.details)


class ValidationFailed(Exception):
    """Several caller-fixable problems found at once (every invalid field is reported)."""

    def __init__(self, errors: list[DomainError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class NotFound(DomainError):
    def __init__(self, kind: str, field: tuple[str, ...] = ("id",)) -> None:
        super().__init__(ErrorCode.NOT_FOUND, f"{kind} not found.", field=field)


RETRY_WITH_KEY = (
    "Retry with the same idempotency key: the retry reads the provider's state before acting."
)


class ProviderUnreachable(DomainError):
    """No definite answer (network failure, timeout, 5xx, 409): the request may or may not have
    taken effect at Stripe, so the caller must read Stripe's state before acting again."""

    def __init__(
        self, action: str, *, message: str | None = None, details: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            ErrorCode.PAYMENT_PROVIDER_ERROR,
            message
            or f"The payment provider did not confirm that it could {action}. {RETRY_WITH_KEY}",
            details=details,
        )


class PublicError(Exception):
    """An error whose message is safe to show; reported as a top-level GraphQL error."""

    code = "BAD_USER_INPUT"

    @property
    def extensions(self) -> dict[str, str]:
        # graphql-core copies an original error's ``extensions`` into the reported error.
        return {"code": self.code}


class Unauthenticated(PublicError):
    """No valid credentials: a top-level error with ``extensions.code = UNAUTHENTICATED``."""

    code = "UNAUTHENTICATED"


class Forbidden(PublicError):
    """Valid credentials without the right: ``extensions.code = FORBIDDEN``."""

    code = "FORBIDDEN"
