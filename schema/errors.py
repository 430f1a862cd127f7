"""``UserError`` for mutation payloads, and the error masking allow-list."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.exceptions import StrawberryGraphQLError

from app.core.errors import DomainError, PublicError, ValidationFailed
from schema.enums import ErrorCode

__all__ = ["UserError", "attempt", "is_unexpected", "should_mask_error"]

T = TypeVar("T")


@strawberry.type(description="A problem the caller can fix, reported in a mutation payload.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the offending input field, e.g. `["input", "price", "amount"]`.'
    )
    message: str = strawberry.field(description="Human-readable explanation.")
    code: ErrorCode = strawberry.field(description="Machine-readable reason.")

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(
            field=list(error.field) if error.field else None,
            message=error.message,
            code=error.code,
        )


async def attempt(action: Awaitable[T]) -> tuple[T | None, list[UserError]]:
    """Run a mutation's service call; turn domain errors into payload errors."""
    try:
        return await action, []
    except DomainError as exc:
        return None, [UserError.from_domain(exc)]
    except ValidationFailed as exc:
        return None, [UserError.from_domain(e) for e in exc.errors]


def is_unexpected(error: GraphQLError) -> bool:
    """True for an exception that escaped a resolver. Errors without a path are about the
    request itself (syntax, validation, variable coercion such as a BigInt out of range) and
    are meant for the caller; so are our public errors."""
    original = error.original_error
    if original is None or error.path is None:
        return False
    return not isinstance(original, PublicError | StrawberryGraphQLError)


def should_mask_error(error: GraphQLError) -> bool:
    return is_unexpected(error)
