"""Custom scalars, and the DateTime and Date scalars with the range every input must be in.

Each refusal is a request error (the operation does not run) with ``extensions.code =
BAD_USER_INPUT``, whether the value came in a variable or as a literal in the document.
"""

from __future__ import annotations

import datetime as dt
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

__all__ = ["DATE_MAX", "DATE_MIN", "SCALARS", "BigInt", "InputValueError"]

_INT64 = 2**63 - 1

DATE_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Beyond this, adding a period, a time zone offset or a retry delay to an instant could leave
# the calendar Python and PostgreSQL share; no billing date is that far out.
DATE_MAX = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
_RANGE = "between 1970-01-01T00:00:00Z and 2999-12-31T23:59:59Z"
_MAX_TEXT = 64


class InputValueError(ValueError):
    """An input value a scalar refuses. graphql-core copies ``extensions`` into the reported
    error, so the client gets a code as well as the message."""

    @property
    def extensions(self) -> dict[str, str]:
        return {"code": "BAD_USER_INPUT"}


def _parse_bigint(value: object) -> int:
    if isinstance(value, bool):
        raise InputValueError("BigInt must be an integer, not a boolean.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 24:
        number = int(value.strip())
    else:
        raise InputValueError("BigInt must be an integer or a string of digits.")
    if not -_INT64 - 1 <= number <= _INT64:
        raise InputValueError("BigInt must fit in a signed 64-bit integer.")
    return number


def _text(value: object, kind: str, example: str) -> str:
    if not isinstance(value, str) or not value.isascii() or len(value) > _MAX_TEXT:
        raise InputValueError(f"{kind} must be an ISO 8601 string such as {example!r}.")
    return value


def _parse_datetime(value: object) -> dt.datetime:
    text = _text(value, "DateTime", "2025-01-31T09:30:00Z")
    try:
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        instant = parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        instant = None
    if instant is None:
        raise InputValueError(
            f"DateTime {text!r} is not an ISO 8601 date and time (e.g. 2025-01-31T09:30:00Z) "
            f"{_RANGE}."
        )
    if not DATE_MIN <= instant < DATE_MAX:
        raise InputValueError(f"DateTime {text!r} is out of range: it must be {_RANGE}.")
    return parsed


def _parse_date(value: object) -> dt.date:
    text = _text(value, "Date", "2025-01-31")
    try:
        parsed = dt.date.fromisoformat(text)
    except ValueError:
        raise InputValueError(
            f"Date {text!r} is not an ISO 8601 date (e.g. 2025-01-31) between 1970-01-01 and "
            "2999-12-31."
        ) from None
    if not DATE_MIN.date() <= parsed < DATE_MAX.date():
        raise InputValueError(
            f"Date {text!r} is out of range: it must be between 1970-01-01 and 2999-12-31."
        )
    return parsed


def _isoformat(value: dt.date) -> str:
    return value.isoformat()


BigInt = NewType("BigInt", int)

SCALARS: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "A signed 64-bit integer. Serialized as a string of digits (JavaScript numbers lose "
            "precision past 2^53); accepted as a string or an integer."
        ),
        serialize=str,
        parse_value=_parse_bigint,
    ),
    # Replace strawberry's own DateTime and Date (same names), which accept any year Python
    # can hold, so a year-1 or year-9999 input fails here with a message instead of
    # overflowing later in time zone arithmetic or in PostgreSQL.
    dt.datetime: strawberry.scalar(
        name="DateTime",
        description=(
            "An instant as an ISO 8601 string, e.g. `2025-01-31T09:30:00Z` or "
            "`2025-01-31T10:30:00+01:00`; an input without a zone offset is read as UTC. "
            f"Inputs must be {_RANGE} (at most 64 characters); others are refused with "
            "BAD_USER_INPUT. Output is always with its offset."
        ),
        serialize=_isoformat,
        parse_value=_parse_datetime,
    ),
    dt.date: strawberry.scalar(
        name="Date",
        description=(
            "A calendar day as an ISO 8601 string, e.g. `2025-01-31`. Inputs must be between "
            "1970-01-01 and 2999-12-31; others are refused with BAD_USER_INPUT."
        ),
        serialize=_isoformat,
        parse_value=_parse_date,
    ),
}
