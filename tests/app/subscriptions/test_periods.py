from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.catalog.plans import IntervalUnit
from app.subscriptions.periods import (
    add_interval,
    ensure_utc,
    period_bounds,
    period_containing,
    trial_end,
)

DAY, WEEK, MONTH, YEAR = IntervalUnit.DAY, IntervalUnit.WEEK, IntervalUnit.MONTH, IntervalUnit.YEAR


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ends(anchor: datetime, unit: IntervalUnit, count: int, n: int) -> list[datetime]:
    return [add_interval(anchor, unit, count, k) for k in range(1, n + 1)]


def test_month_end_anchor_renews_on_each_months_last_day_without_drifting() -> None:
    anchor = utc(2027, 1, 31, 9, 30, 15)
    assert ends(anchor, MONTH, 1, 12) == [
        utc(2027, 2, 28, 9, 30, 15),
        utc(2027, 3, 31, 9, 30, 15),
        utc(2027, 4, 30, 9, 30, 15),
        utc(2027, 5, 31, 9, 30, 15),
        utc(2027, 6, 30, 9, 30, 15),
        utc(2027, 7, 31, 9, 30, 15),
        utc(2027, 8, 31, 9, 30, 15),
        utc(2027, 9, 30, 9, 30, 15),
        utc(2027, 10, 31, 9, 30, 15),
        utc(2027, 11, 30, 9, 30, 15),
        utc(2027, 12, 31, 9, 30, 15),
        utc(2028, 1, 31, 9, 30, 15),
    ]


def test_default_is_one_period() -> None:
    assert add_interval(utc(2027, 1, 31), MONTH, 1) == utc(2027, 2, 28)


def test_zero_periods_is_the_anchor() -> None:
    assert add_interval(utc(2027, 1, 31, 5), MONTH, 1, 0) == utc(2027, 1, 31, 5)


def test_leap_year_february_gets_its_29th() -> None:
    assert ends(utc(2028, 1, 31), MONTH, 1, 3) == [
        utc(2028, 2, 29),
        utc(2028, 3, 31),
        utc(2028, 4, 30),
    ]


def test_the_30th_survives_february() -> None:
    assert ends(utc(2027, 1, 30), MONTH, 1, 3) == [
        utc(2027, 2, 28),
        utc(2027, 3, 30),
        utc(2027, 4, 30),
    ]


def test_quarterly_from_november_30() -> None:
    assert ends(utc(2027, 11, 30, 23, 59, 59), MONTH, 3, 5) == [
        utc(2028, 2, 29, 23, 59, 59),
        utc(2028, 5, 30, 23, 59, 59),
        utc(2028, 8, 30, 23, 59, 59),
        utc(2028, 11, 30, 23, 59, 59),
        utc(2029, 2, 28, 23, 59, 59),
    ]


def test_yearly_from_february_29() -> None:
    assert ends(utc(2028, 2, 29, 12), YEAR, 1, 5) == [
        utc(2029, 2, 28, 12),
        utc(2030, 2, 28, 12),
        utc(2031, 2, 28, 12),
        utc(2032, 2, 29, 12),
        utc(2033, 2, 28, 12),
    ]


def test_every_two_years_from_february_29() -> None:
    assert ends(utc(2028, 2, 29), YEAR, 2, 3) == [
        utc(2030, 2, 28),
        utc(2032, 2, 29),
        utc(2034, 2, 28),
    ]


def test_weekly_and_daily_are_fixed_lengths() -> None:
    anchor = utc(2027, 1, 31, 8)
    assert ends(anchor, WEEK, 1, 3) == [
        utc(2027, 2, 7, 8),
        utc(2027, 2, 14, 8),
        utc(2027, 2, 21, 8),
    ]
    assert ends(anchor, WEEK, 2, 2) == [utc(2027, 2, 14, 8), utc(2027, 2, 28, 8)]
    assert ends(anchor, DAY, 1, 2) == [utc(2027, 2, 1, 8), utc(2027, 2, 2, 8)]
    assert ends(utc(2028, 2, 28), DAY, 30, 2) == [utc(2028, 3, 29), utc(2028, 4, 28)]


def test_aware_non_utc_anchor_is_converted_to_utc_first() -> None:
    new_york_winter = timezone(timedelta(hours=-5))
    anchor = datetime(2027, 1, 31, 23, 0, tzinfo=new_york_winter)  # 2027-02-01 04:00 UTC
    result = add_interval(anchor, MONTH, 1)
    assert result == utc(2027, 3, 1, 4)
    assert result.tzinfo is UTC


def test_one_time_plans_have_no_period() -> None:
    with pytest.raises(ValueError, match="one-time"):
        add_interval(utc(2027, 1, 1), IntervalUnit.ONE_TIME, 1)
    with pytest.raises(ValueError, match="one-time"):
        period_bounds(utc(2027, 1, 1), IntervalUnit.ONE_TIME, 1, 0)
    with pytest.raises(ValueError, match="one-time"):
        period_containing(utc(2027, 1, 1), IntervalUnit.ONE_TIME, 1, utc(2027, 1, 2))


@pytest.mark.parametrize(
    ("count", "periods", "message"),
    [
        (0, 1, "interval count must be at least 1"),
        (-1, 1, "interval count must be at least 1"),
        (1, -1, "periods must be zero or more"),
    ],
)
def test_bad_counts_are_refused(count: int, periods: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_interval(utc(2027, 1, 1), MONTH, count, periods)


def test_leaving_the_calendar_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="leave the calendar"):
        add_interval(utc(9999, 6, 1), MONTH, 12)
    with pytest.raises(ValueError, match="leave the calendar"):
        add_interval(utc(9999, 12, 1), DAY, 365)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2027, 1, 31)
    aware = utc(2027, 1, 31)
    with pytest.raises(ValueError, match="anchor must be timezone-aware"):
        add_interval(naive, MONTH, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds(naive, MONTH, 1, 0)
    with pytest.raises(ValueError, match="anchor must be timezone-aware"):
        period_containing(naive, MONTH, 1, aware)
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        period_containing(aware, MONTH, 1, naive)
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        trial_end(naive, 14)
    with pytest.raises(ValueError, match="timezone-aware"):
        ensure_utc(naive)


def test_period_bounds() -> None:
    anchor = utc(2027, 1, 31)
    assert period_bounds(anchor, MONTH, 1, 0) == (anchor, utc(2027, 2, 28))
    assert period_bounds(anchor, MONTH, 1, 1) == (utc(2027, 2, 28), utc(2027, 3, 31))
    assert period_bounds(anchor, MONTH, 1, 11) == (utc(2027, 12, 31), utc(2028, 1, 31))
    with pytest.raises(ValueError, match="zero or more"):
        period_bounds(anchor, MONTH, 1, -1)


def test_period_containing_at_exact_boundaries() -> None:
    anchor = utc(2027, 1, 31, 12)
    first = (0, anchor, utc(2027, 2, 28, 12))
    second = (1, utc(2027, 2, 28, 12), utc(2027, 3, 31, 12))
    tick = timedelta(microseconds=1)
    assert period_containing(anchor, MONTH, 1, anchor) == first
    assert period_containing(anchor, MONTH, 1, utc(2027, 2, 28, 12) - tick) == first
    assert period_containing(anchor, MONTH, 1, utc(2027, 2, 28, 12)) == second
    # Same calendar day as the renewal, but before the anchor's time of day.
    assert period_containing(anchor, MONTH, 1, utc(2027, 2, 28, 11, 59, 59)) == first
    assert period_containing(anchor, MONTH, 1, utc(2027, 3, 31, 12) - tick) == second
    assert period_containing(anchor, MONTH, 1, utc(2027, 3, 31, 12))[0] == 2
    assert period_containing(anchor, MONTH, 1, utc(2028, 1, 31, 12)) == (
        12,
        utc(2028, 1, 31, 12),
        utc(2028, 2, 29, 12),
    )


def test_period_containing_days_weeks_and_years() -> None:
    anchor = utc(2027, 1, 1)
    assert period_containing(anchor, DAY, 1, utc(2027, 1, 3)) == (
        2,
        utc(2027, 1, 3),
        utc(2027, 1, 4),
    )
    assert period_containing(anchor, WEEK, 2, utc(2027, 1, 29) - timedelta(seconds=1)) == (
        1,
        utc(2027, 1, 15),
        utc(2027, 1, 29),
    )
    leap = utc(2028, 2, 29)
    assert period_containing(leap, YEAR, 1, utc(2029, 2, 28)) == (
        1,
        utc(2029, 2, 28),
        utc(2030, 2, 28),
    )
    assert period_containing(leap, YEAR, 1, utc(2029, 2, 27, 23))[0] == 0


def test_period_containing_before_the_anchor_is_refused() -> None:
    with pytest.raises(ValueError, match="before the anchor"):
        period_containing(utc(2027, 1, 31), MONTH, 1, utc(2027, 1, 30))


def test_trial_end() -> None:
    assert trial_end(utc(2027, 1, 31, 10), 14) == utc(2027, 2, 14, 10)
    assert trial_end(utc(2028, 2, 28), 2) == utc(2028, 3, 1)
    assert trial_end(utc(2027, 1, 31), 0) == utc(2027, 1, 31)
    with pytest.raises(ValueError, match="zero or more"):
        trial_end(utc(2027, 1, 31), -1)


anchors = st.datetimes(
    min_value=datetime(1990, 1, 1),  # hypothesis takes naive bounds
    max_value=datetime(2200, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
)
recurring = st.sampled_from([DAY, WEEK, MONTH, YEAR])


@st.composite
def schedules(draw: st.DrawFn) -> tuple[datetime, IntervalUnit, int]:
    unit = draw(recurring)
    count = draw(st.integers(1, 3 if unit is YEAR else 24))
    return draw(anchors), unit, count


@given(schedule=schedules(), n=st.integers(0, 400))
def test_period_ends_strictly_increase(
    schedule: tuple[datetime, IntervalUnit, int], n: int
) -> None:
    anchor, unit, count = schedule
    assert add_interval(anchor, unit, count, n) < add_interval(anchor, unit, count, n + 1)


@given(anchor=anchors, count=st.integers(1, 24), n=st.integers(0, 400))
def test_month_periods_restore_the_anchor_day(anchor: datetime, count: int, n: int) -> None:
    start = anchor.astimezone(UTC)
    end = add_interval(anchor, MONTH, count, n)
    months = start.year * 12 + start.month - 1 + count * n
    year, month_index = divmod(months, 12)
    assert (end.year, end.month) == (year, month_index + 1)
    assert end.day == min(start.day, calendar.monthrange(end.year, end.month)[1])
    assert end.time() == start.time()
    assert end.tzinfo is UTC


@given(schedule=schedules(), offset=st.timedeltas(timedelta(0), timedelta(days=3 * 366)))
def test_period_containing_agrees_with_period_bounds(
    schedule: tuple[datetime, IntervalUnit, int], offset: timedelta
) -> None:
    anchor, unit, count = schedule
    at = anchor + offset
    index, start, end = period_containing(anchor, unit, count, at)
    assert start <= at < end
    assert (start, end) == period_bounds(anchor, unit, count, index)
