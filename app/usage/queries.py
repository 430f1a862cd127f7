"""Usage over time: a metric's aggregate per hour or day of a window (``usage`` query)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from app.core.errors import DomainError, ErrorCode
from app.usage.metrics import Aggregation, BillableMetric
from app.usage.rating import quantity_of
from db.connection import Database
from db.repositories.usage.events import UsageEventRepository, Window

__all__ = ["Granularity", "UsageBucket", "UsageQueries"]


class Granularity(enum.Enum):
    HOUR = "hour"
    DAY = "day"


# At most this many buckets per query: a month of hours, or about three years of days.
_MAX_SPAN = {Granularity.HOUR: timedelta(days=31), Granularity.DAY: timedelta(days=1_100)}


@dataclass(frozen=True, slots=True)
class UsageBucket:
    start: datetime  # the UTC hour or day (the first bucket may start before ``from``)
    quantity: Decimal
    events: int | None  # None for unique counts (distinct values are not events)


class UsageQueries:
    def __init__(self, db: Database) -> None:
        self._events = UsageEventRepository(db)

    async def buckets(
        self,
        org: str,
        subscription_id: str,
        metric: BillableMetric,
        start: datetime,
        end: datetime,
        granularity: Granularity,
    ) -> list[UsageBucket]:
        """The metric's aggregate in each UTC hour or day of [start, end) that has events."""
        if end <= start:
            raise DomainError(ErrorCode.INVALID, "`to` must be after `from`.", field=("to",))
        if end - start > _MAX_SPAN[granularity]:
            days = _MAX_SPAN[granularity].days
            raise DomainError(
                ErrorCode.INVALID,
                f"At most {days} days per query with groupBy {granularity.name}.",
                field=("to",),
            )
        unique = metric.aggregation is Aggregation.UNIQUE_COUNT
        rows = await self._events.buckets(
            org,
            subscription_id,
            metric.id,
            Window.of(start, end),
            unit=granularity.value,
            unique=unique,
        )
        return [
            UsageBucket(
                start=row["bucket"],
                quantity=quantity_of(metric, row),
                events=None if unique else int(row["events"]),
            )
            for row in rows
        ]
