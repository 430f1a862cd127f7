"""Billing-period calendar arithmetic, in UTC.

A subscription's periods are counted from its *anchor* (the instant billing started): period
``n`` is ``[anchor + n intervals, anchor + (n + 1) intervals)``. Every bound is computed from the
anchor, never from the previous bound, so month-based periods keep the anchor's day of the month:
a subscription anchored on Jan 31 renews on Feb 28 (Feb 29 in a leap year), Mar 31, Apr 30, ...
rather than drifting to the 28th forever. When a month lacks the anchor's day, the bound is that
month's last day. Years are twelve months (a Feb 29 anchor renews on Feb 28 in common years, and
on Feb 29 again in leap years); days and weeks are fixed lengths of 24 hours.

All arguments must be timezone-aware; results are in UTC with the anchor's time of day in UTC.
Calendar maths on local wall-clock time would move renewals by an hour across DST changes.
Misuse (naive datetimes, a non-positive interval count, a one-time plan, an instant before the
anchor) raises ``ValueError``: these are programming errors, not caller input.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from app.catalog import IntervalUnit

__all__ = [
    "add_interval",
    "ensure_utc",
    "period_bounds",
    "period_containing",
    "trial_end",
]


def ensure_utc(value: datetime, name: str = "datetime") -> datetime:
    """``value`` converted to UTC; a naive datetime raises ``ValueError``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def add_interval(anchor: datetime, unit: IntervalUnit, count: int, periods: int = 1) -> datetime:
    """The end of period ``periods - 1``: ``anchor`` plus ``periods`` intervals of ``count``
    units, with month-end clamping for months and years (see the module docstring)."""
    start = ensure_utc(anchor, "anchor")
    _check_interval(unit, count)
    if periods < 0:
        raise ValueError(f"periods must be zero or more, got {periods}")
    try:
        if unit is IntervalUnit.DAY:
            return start + timedelta(days=count * periods)
        if unit is IntervalUnit.WEEK:
            return start + timedelta(weeks=count * periods)
        months = count * periods * (12 if unit is IntervalUnit.YEAR else 1)
        return _add_months(start, months)
    except OverflowError:
        raise ValueError(f"{periods} periods from {start.isoformat()} leave the calendar") from None


def period_bounds(
    anchor: datetime, unit: IntervalUnit, count: int, index: int
) -> tuple[datetime, datetime]:
    """``(start, end)`` of period ``index`` (0 is the first period, starting at ``anchor``)."""
    if index < 0:
        raise ValueError(f"period index must be zero or more, got {index}")
    return (
        add_interval(anchor, unit, count, index),
        add_interval(anchor, unit, count, index + 1),
    )


def period_containing(
    anchor: datetime, unit: IntervalUnit, count: int, at: datetime
) -> tuple[int, datetime, datetime]:
    """``(index, start, end)`` of the period with ``start <= at < end``: an instant on a
    boundary belongs to the period it opens."""
    start = ensure_utc(anchor, "anchor")
    when = ensure_utc(at, "at")
    _check_interval(unit, count)
    if when < start:
        raise ValueError(f"{when.isoformat()} is before the anchor {start.isoformat()}")
    if unit is IntervalUnit.DAY or unit is IntervalUnit.WEEK:
        length = timedelta(days=count) if unit is IntervalUnit.DAY else timedelta(weeks=count)
        index = (when - start) // length
    else:
        step = count * (12 if unit is IntervalUnit.YEAR else 1)
        elapsed_months = (when.year - start.year) * 12 + when.month - start.month
        # A first guess from whole calendar months; clamping and time of day can put the true
        # period one step earlier, never later.
        index = max(elapsed_months // step, 0)
        while index > 0 and add_interval(start, unit, count, index) > when:
            index -= 1
        while add_interval(start, unit, count, index + 1) <= when:
            index += 1
    lower, upper = period_bounds(start, unit, count, index)
    return index, lower, upper


def trial_end(start: datetime, days: int) -> datetime:
    """When a trial of ``days`` whole days (24 h each) starting at ``start`` ends; 0 days means
    no trial, so the trial ends at ``start``."""
    begin = ensure_utc(start, "start")
    if days < 0:
        raise ValueError(f"trial days must be zero or more, got {days}")
    try:
        return begin + timedelta(days=days)
    except OverflowError:
        raise ValueError(
            f"a {days}-day trial from {begin.isoformat()} leaves the calendar"
        ) from None


def _check_interval(unit: IntervalUnit, count: int) -> None:
    if unit is IntervalUnit.ONE_TIME:
        raise ValueError("one-time plans have no billing periods")
    if count < 1:
        raise ValueError(f"interval count must be at least 1, got {count}")


def _add_months(value: datetime, months: int) -> datetime:
    zero_based = value.month - 1 + months
    year, month = value.year + zero_based // 12, zero_based % 12 + 1
    if not 1 <= year <= 9999:
        raise OverflowError
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)
