"""Statistics arithmetic and calendar: rounding, ratios, movement classification, ranges,
buckets and local periods across DST and 15-minute offsets."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import DomainError
from app.rollups.calendar import (
    StatsInterval,
    bucket_ceil,
    bucket_floor,
    check_range,
    periods,
    zone,
)
from app.rollups.math import Movement, Ratio, classify, customer_delta, div_half_even


@given(st.integers(-(10**15), 10**15), st.integers(1, 10**9))
def test_div_half_even_is_the_nearest_integer_with_ties_to_even(n: int, d: int) -> None:
    result = div_half_even(n, d)
    exact = Fraction(n, d)
    assert abs(exact - result) <= Fraction(1, 2)
    if abs(exact - result) == Fraction(1, 2):
        assert result % 2 == 0


def test_div_half_even_examples() -> None:
    assert [div_half_even(n, 2) for n in (1, 3, 5, -1, -3)] == [0, 2, 2, 0, -2]
    assert div_half_even(3001, 2) == 1500  # the average of 1000 and 2001
    assert div_half_even(10001, 3) == 3334
    with pytest.raises(ValueError, match="positive"):
        div_half_even(1, 0)


def test_ratio_percent_and_undefined_ratios() -> None:
    assert Ratio(1, 3).percent == "33.33"
    assert Ratio(4000, 3000).percent == "133.33"
    assert Ratio(-1, 8).percent == "-12.50"
    assert Ratio(1, 200_000).percent == "0.00"
    assert Ratio.of(1, 0) is None
    assert Ratio.of(0, 5) == Ratio(0, 5)


def test_movements_are_classified_per_customer() -> None:
    assert classify(0, 1000, 1) is Movement.NEW
    assert classify(0, 1000, 2) is Movement.REACTIVATION
    assert classify(1000, 0, 1) is Movement.CHURN
    assert classify(1000, 1500, 1) is Movement.EXPANSION
    assert classify(1500, 1000, 3) is Movement.CONTRACTION
    assert classify(700, 700, 1) is None
    assert [customer_delta(m) for m in (Movement.NEW, Movement.CHURN, Movement.EXPANSION)] == [
        1,
        -1,
        0,
    ]


def test_ranges_are_checked() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert check_range(start.replace(tzinfo=None), start + timedelta(days=1))[0] == start
    for end in (start, start - timedelta(seconds=1), start + timedelta(days=1099)):
        with pytest.raises(DomainError):
            check_range(start, end)
    with pytest.raises(DomainError, match="2000-01-01"):
        check_range(datetime(1999, 12, 31, tzinfo=UTC), start)
    for bad in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "x" * 65):
        with pytest.raises(DomainError, match="Unknown time zone"):
            zone(bad)
    assert zone(" Europe/Paris ").key == "Europe/Paris"


def test_buckets_are_15_minutes_of_utc() -> None:
    at = datetime(2027, 3, 9, 18, 14, 59, 999999, tzinfo=UTC)
    assert bucket_floor(at) == datetime(2027, 3, 9, 18, 0, tzinfo=UTC)
    assert bucket_ceil(at) == datetime(2027, 3, 9, 18, 15, tzinfo=UTC)
    aligned = datetime(2027, 3, 9, 18, 15, tzinfo=UTC)
    assert bucket_floor(aligned) == bucket_ceil(aligned) == aligned


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1)),
    st.sampled_from(
        [
            "UTC",
            "America/New_York",
            "Asia/Kathmandu",
            "Pacific/Chatham",
            "Australia/Eucla",
            "America/Santiago",
            "Asia/Tehran",
            "Australia/Lord_Howe",
        ]
    ),
)
def test_local_days_start_on_bucket_boundaries(local: datetime, name: str) -> None:
    """Every local midnight in use since 2000 is a 15-minute UTC bucket boundary, so rollups
    answer these zones exactly; and a period's key is the local date of its start."""
    tz = ZoneInfo(name)
    start = local.replace(tzinfo=UTC)
    days = list(periods(start, start + timedelta(days=3), StatsInterval.DAY, tz))
    assert days[0].key == start.astimezone(tz).date()
    for day in days[1:]:
        assert bucket_floor(day.start) == day.start
        assert day.start.astimezone(tz).date() == day.key


def test_periods_cover_the_range_without_gaps_across_dst() -> None:
    tz = ZoneInfo("America/New_York")
    start = datetime(2027, 3, 13, 12, tzinfo=UTC)
    end = datetime(2027, 3, 16, 3, tzinfo=UTC)
    days = list(periods(start, end, StatsInterval.DAY, tz))
    assert [p.key for p in days] == [date(2027, 3, d) for d in (13, 14, 15)]
    assert days[0].start == start
    assert days[-1].end == end
    assert all(a.end == b.start for a, b in itertools.pairwise(days))
    assert days[1].end - days[1].start == timedelta(hours=23)
    months = list(
        periods(
            datetime(2027, 1, 31, tzinfo=UTC),
            datetime(2027, 4, 1, tzinfo=UTC),
            StatsInterval.MONTH,
            ZoneInfo("UTC"),
        )
    )
    assert [p.key for p in months] == [date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)]
    weeks = list(
        periods(
            datetime(2027, 3, 3, tzinfo=UTC),
            datetime(2027, 3, 17, tzinfo=UTC),
            StatsInterval.WEEK,
            ZoneInfo("UTC"),
        )
    )
    assert [p.key for p in weeks] == [date(2027, 3, 1), date(2027, 3, 8), date(2027, 3, 15)]
