"""Keyset pagination: fetch one row more than asked to learn whether a next page exists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from db.connection import Row

__all__ = ["MAX_PAGE_SIZE", "Page", "cut_page"]

MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Row]
    has_next: bool


def cut_page(rows: Sequence[Row], first: int) -> Page:
    return Page(rows=rows[:first], has_next=len(rows) > first)
