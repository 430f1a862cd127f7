"""Strict JSON for everything clients send: request bodies, WebSocket messages and
``POST /usage/events``. Refused: invalid UTF-8, NUL characters (PostgreSQL text cannot store
them), lone surrogates, NaN and Infinity (not JSON, though Python's parser takes them), numbers
of thousands of digits and nesting past ``MAX_JSON_DEPTH``."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "InvalidJSON", "decode_strict_json", "loads_strict"]

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a request body or WebSocket message."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidJSON(json.JSONDecodeError):
    """A body or message that is not the strict JSON object we accept. A JSONDecodeError, so
    strawberry's WebSocket loop closes the socket with 4400 instead of dropping it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason


def _check_structure(value: object, check_strings: bool) -> None:
    """Depth limit and, when the text had surrogate escapes, no lone surrogates (PostgreSQL
    and UTF-8 cannot hold them). Iterative, so hostile nesting cannot exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJSON(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
            for key, child in item.items():
                if check_strings:
                    _encodable(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJSON(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
            stack.extend((child, depth + 1) for child in item)
        elif check_strings and isinstance(item, str):
            _encodable(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSON(
            "The request contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is "
            "not a character."
        ) from None


def _not_json(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON value.")


def loads_strict(data: str | bytes) -> Any:
    """Any JSON value, strictly (see the module); raises ``InvalidJSON`` with the reason."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJSON("The request body is not valid UTF-8.") from None
    if "\x00" in data or "\\u0000" in data.lower():
        raise InvalidJSON("The request contains a NUL character, which is not allowed.")
    try:
        value = json.loads(data, parse_constant=_not_json)
    except RecursionError:
        raise InvalidJSON(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except InvalidJSON:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"Unable to parse the JSON: {exc.msg} at character {exc.pos}.") from None
    except ValueError:  # e.g. an integer literal of more than 4,300 digits
        raise InvalidJSON("The JSON holds a number too large to read.") from None
    _check_structure(value, check_strings=_SURROGATE_ESCAPE.search(data) is not None)
    return value


def decode_strict_json(data: str | bytes) -> dict[str, Any]:
    """A JSON object (a GraphQL request or WebSocket message), strictly."""
    value = loads_strict(data)
    if not isinstance(value, dict):
        raise InvalidJSON('The body must be a JSON object, e.g. {"query": "{ __typename }"}.')
    return value
