"""Reads shared by the domain services: batch lookup by id, keyset pages, counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from db.connection import Row
from db.repositories.base import TableRepository

__all__ = ["Listing"]

T = TypeVar("T")


class Listing(Generic[T]):
    """Turns a repository's rows into domain objects of one type."""

    def __init__(self, repository: TableRepository, from_row: Callable[[Row], T]) -> None:
        self._repository = repository
        self._from_row = from_row

    async def by_ids(self, org: str, ids: list[str]) -> list[T | None]:
        rows = await self._repository.by_ids(org, ids)
        return [None if row is None else self._from_row(row) for row in rows]

    async def page(
        self, org: str, filters: Mapping[str, Any], *, first: int, after: str | None
    ) -> tuple[list[T], bool]:
        page = await self._repository.page(org, filters, first=first, after=after)
        return [self._from_row(row) for row in page.rows], page.has_next

    async def count(self, org: str, filters: Mapping[str, Any]) -> int:
        return await self._repository.count(org, filters)
