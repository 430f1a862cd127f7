"""A validation rule for string literals PostgreSQL cannot store.

The JSON body is checked for NUL characters before parsing (``app/web/graphql_view.py``), but a
GraphQL document can still write one with an escape the JSON check cannot see: ``"\\u{0}"``
(or ``"\\u{000000}"``) in a string literal decodes to U+0000 in the parser. Such a value would
reach PostgreSQL, which refuses it mid-operation ("Unexpected error."). This rule refuses the
document instead, before anything runs, with ``extensions.code = BAD_USER_INPUT``. (An unpaired
surrogate cannot be written in a literal: graphql-core's lexer refuses it; the rule checks for
it too, so the guarantee does not rest on that.)
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, StringValueNode
from graphql.validation import ASTValidationRule

__all__ = ["StorableStrings", "storable"]


def storable(text: str) -> bool:
    """True when PostgreSQL can store ``text``: no NUL and valid UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StorableStrings(ASTValidationRule):
    """String literals in the document may not hold a NUL character or an unpaired surrogate."""

    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if not storable(node.value):
            self.report_error(
                GraphQLError(
                    "A string in the document contains a NUL character (U+0000) or an unpaired "
                    "surrogate, which cannot be stored.",
                    node,
                    extensions={"code": "BAD_USER_INPUT"},
                )
            )
