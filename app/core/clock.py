"""Where "now" comes from. In test mode an organization can freeze and move its own clock
(`testClockAdvance`), so a year of billing can be simulated; otherwise it is the real UTC time."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.errors import DomainError, ErrorCode
from db.connection import Database
from db.repositories.test_clocks import TestClockRepository

__all__ = ["Clock"]


class Clock:
    def __init__(self, db: Database, *, test_clocks: bool) -> None:
        self._clocks = TestClockRepository(db)
        self.test_clocks = test_clocks

    async def now(self, org: str) -> datetime:
        if self.test_clocks:
            frozen = await self._clocks.get(org)
            if frozen is not None:
                return frozen
        return datetime.now(UTC)

    async def advance(self, org: str, to: datetime) -> datetime:
        """Move the organization's clock forward to ``to`` (test mode only)."""
        target = await self.check_advance(org, to)
        await self._clocks.set(org, target)
        return target

    async def check_advance(self, org: str, to: datetime) -> datetime:
        """``to`` in UTC, if the clock may move there; else a payload error."""
        if not self.test_clocks:
            raise DomainError(
                ErrorCode.INVALID_STATE, "Test clocks are off in production.", field=("input",)
            )
        if to.tzinfo is None:
            raise DomainError(ErrorCode.INVALID, "Give a time with a zone.", field=("input", "to"))
        target = to.astimezone(UTC)
        frozen = await self._clocks.get(org)
        if frozen is not None and target < frozen:
            raise DomainError(
                ErrorCode.INVALID,
                f"A test clock only moves forward; it is at {frozen.isoformat()}.",
                field=("input", "to"),
            )
        return target
