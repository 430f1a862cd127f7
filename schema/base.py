"""Small shared pieces of the schema modules."""

from __future__ import annotations

import strawberry

from app.context import Context

__all__ = ["INPUT", "Info"]

Info = strawberry.Info[Context, None]

INPUT = "The operation's input; see the input type for each field."
