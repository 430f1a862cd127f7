"""Time for statistics: validated ranges and time zones, the 15-minute UTC buckets of the
revenue rollups, and the local calendar periods (day, week, month) a range is reported in.

Every time zone in use since 1980 is offset from UTC by a whole multiple of 15 minutes, so a
local day, week or month is a union of whole 15-minute UTC buckets and rollups answer any zone
exactly. Ranges start in 2000 or later, which keeps older local mean times out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.core.errors import DomainError, ErrorCode

__all__ = [
    "BUCKET",
    "EARLIEST",
    "MAX_RANGE",
    "Period",
    "StatsInterval",
    "bucket_ceil",
    "bucket_floor",
    "check_instant",
    "check_range",
    "period_key",
    "periods",
    "utc",
    "zone",
]

BUCKET = timedelta(minutes=15)
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST = _ORIGIN
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_RANGE = timedelta(days=3 * 366)


class StatsInterval(enum.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def utc(value: datetime) -> datetime:
    """An instant in UTC; a time without an offset is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def zone(name: str, field: tuple[str, ...] = ("timeZone",)) -> ZoneInfo:
    """The IANA time zone ``name``, or a clear error."""
    cleaned = name.strip()
    problem = f"Unknown time zone {name[:64]!r}: use an IANA name such as 'Europe/Paris' or 'UTC'."
    if not cleaned or len(cleaned) > 64 or cleaned.startswith(("/", ".")) or ".." in cleaned:
        raise DomainError(ErrorCode.INVALID, problem, field=field)
    try:
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DomainError(ErrorCode.INVALID, problem, field=field) from None


def check_instant(value: datetime, field: tuple[str, ...]) -> datetime:
    """``value`` in UTC, if statistics can answer for it (2000-01-01 to 2200)."""
    instant = utc(value)
    if not EARLIEST <= instant < _LATEST:
        raise DomainError(
            ErrorCode.INVALID,
            "Statistics cover 2000-01-01T00:00:00Z to 2200; this time is outside.",
            field=field,
        )
    return instant


def check_range(
    start: datetime, end: datetime, *, fields: tuple[str, str] = ("from", "to")
) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC, if it is non-empty and at most three years long."""
    begin = check_instant(start, (fields[0],))
    finish = check_instant(end, (fields[1],))
    if finish <= begin:
        raise DomainError(
            ErrorCode.INVALID,
            f"`{fields[0]}` must be before `{fields[1]}` (the range is [{fields[0]}, "
            f"{fields[1]})).",
            field=(fields[1],),
        )
    if finish - begin > MAX_RANGE:
        raise DomainError(
            ErrorCode.INVALID,
            f"A statistics range is at most three years ({MAX_RANGE.days} days); ask for "
            "several ranges.",
            field=(fields[1],),
        )
    return begin, finish


def bucket_floor(at: datetime) -> datetime:
    """The start of the 15-minute UTC bucket holding ``at`` (as ``stats_bucket`` in SQL)."""
    return _ORIGIN + ((utc(at) - _ORIGIN) // BUCKET) * BUCKET


def bucket_ceil(at: datetime) -> datetime:
    """The first bucket start at or after ``at``."""
    floor = bucket_floor(at)
    return floor if floor == utc(at) else floor + BUCKET


def _key(local: date, interval: StatsInterval) -> date:
    if interval is StatsInterval.DAY:
        return local
    if interval is StatsInterval.WEEK:
        return local - timedelta(days=local.weekday())  # ISO weeks start on Monday
    return local.replace(day=1)


def _next(key: date, interval: StatsInterval) -> date:
    if interval is StatsInterval.DAY:
        return key + timedelta(days=1)
    if interval is StatsInterval.WEEK:
        return key + timedelta(days=7)
    return (key.replace(day=28) + timedelta(days=4)).replace(day=1)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant a local day starts. Where midnight falls in a DST gap the day starts when
    the clocks jump (fold=0 reads the skipped time with the offset before the jump); where it
    repeats, at its first occurrence."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    """One local calendar period of a range, clipped to the range: ``key`` is the local date
    that names it (the day, the Monday, the first of the month)."""

    key: date
    start: datetime
    end: datetime


def period_key(at: datetime, interval: StatsInterval, tz: ZoneInfo) -> date:
    """The local period holding instant ``at``."""
    return _key(utc(at).astimezone(tz).date(), interval)


def periods(
    start: datetime, end: datetime, interval: StatsInterval, tz: ZoneInfo
) -> Iterator[Period]:
    """The local periods that meet ``[start, end)``, in order, clipped to it."""
    key = period_key(start, interval, tz)
    while True:
        following = _next(key, interval)
        period_start = max(_midnight(key, tz), start)
        period_end = min(_midnight(following, tz), end)
        if period_start >= end:
            return
        if period_end > period_start:
            yield Period(key, period_start, period_end)
        key = following
