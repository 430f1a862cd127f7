"""Custom scalars."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

__all__ = ["SCALARS", "BigInt"]

_INT64 = 2**63 - 1


def _parse_bigint(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("BigInt must be an integer, not a boolean.")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) <= 24:
        number = int(value.strip())
    else:
        raise ValueError("BigInt must be an integer or a string of digits.")
    if not -_INT64 - 1 <= number <= _INT64:
        raise ValueError("BigInt must fit in a signed 64-bit integer.")
    return number


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
    )
}
