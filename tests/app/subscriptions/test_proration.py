from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import DomainError, ErrorCode
from app.core.money import MAX_AMOUNT, format_decimal
from app.subscriptions.proration import (
    ProrationLine,
    cancellation_credit,
    divide_round_half_even,
    plan_change_lines,
    prorate,
    prorate_until,
)

START = datetime(2027, 4, 1, tzinfo=UTC)
END = datetime(2027, 5, 1, tzinfo=UTC)  # a 30-day period
TEN_DAYS_IN = datetime(2027, 4, 11, tzinfo=UTC)  # two thirds of the period left
SECOND = timedelta(seconds=1)


def exact_round(value: Fraction) -> int:
    """The oracle: ``round`` on a Fraction rounds half to even, with no float involved."""
    return round(value)


def test_upgrade_mid_period_credits_old_and_charges_new() -> None:
    lines = plan_change_lines(
        1000, 1, 2999, 1, START, END, TEN_DAYS_IN, old_label="Basic", new_label="Pro"
    )
    assert lines == [
        ProrationLine(
            description="Unused time on Basic after 2027-04-11 00:00:00 UTC",
            amount=-667,  # 666.67
            quantity=1,
            period_start=TEN_DAYS_IN,
            period_end=END,
        ),
        ProrationLine(
            description="Remaining time on Pro after 2027-04-11 00:00:00 UTC",
            amount=1999,  # 1999.33
            quantity=1,
            period_start=TEN_DAYS_IN,
            period_end=END,
        ),
    ]
    assert lines[0].amount == -exact_round(Fraction(2, 3) * 1000)
    assert lines[1].amount == exact_round(Fraction(2, 3) * 2999)


def test_downgrade_mid_period_prorates_price_times_quantity() -> None:
    lines = plan_change_lines(5000, 3, 1000, 2, START, END, TEN_DAYS_IN)
    assert [(line.amount, line.quantity) for line in lines] == [(-10000, 3), (1333, 2)]
    assert [line.description for line in lines] == [
        "Unused time on previous plan after 2027-04-11 00:00:00 UTC",
        "Remaining time on new plan after 2027-04-11 00:00:00 UTC",
    ]


def test_quantity_is_prorated_on_the_line_total_not_per_unit() -> None:
    # Per unit: round(2/3 * 1) * 7 would be 7; on the total, round(2/3 * 7) = 5.
    lines = plan_change_lines(1, 7, 2, 7, START, END, TEN_DAYS_IN)
    assert [line.amount for line in lines] == [-5, 9]


def test_quantity_change_alone_produces_both_lines() -> None:
    lines = plan_change_lines(1500, 2, 1500, 5, START, END, TEN_DAYS_IN)
    assert [(line.amount, line.quantity) for line in lines] == [(-2000, 2), (5000, 5)]


def test_no_change_produces_no_lines() -> None:
    assert plan_change_lines(2999, 4, 2999, 4, START, END, TEN_DAYS_IN) == []


def test_change_at_or_after_the_period_end_produces_no_lines() -> None:
    assert plan_change_lines(1000, 1, 2000, 1, START, END, END) == []
    assert plan_change_lines(1000, 1, 2000, 1, START, END, END + SECOND) == []


def test_change_at_the_period_start_swaps_whole_prices() -> None:
    lines = plan_change_lines(1000, 1, 2000, 1, START, END, START)
    assert [line.amount for line in lines] == [-1000, 2000]
    assert lines[0].period_start == START


def test_leaving_a_free_plan_has_only_the_charge() -> None:
    lines = plan_change_lines(0, 1, 2999, 1, START, END, TEN_DAYS_IN)
    assert [line.amount for line in lines] == [1999]


def test_change_before_the_period_is_refused() -> None:
    with pytest.raises(ValueError, match="before the period"):
        plan_change_lines(1000, 1, 2000, 1, START, END, START - SECOND)


def test_empty_or_inverted_period_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one second"):
        plan_change_lines(1000, 1, 2000, 1, END, START, END)
    with pytest.raises(ValueError, match="at least one second"):
        prorate(1000, START, START, START)


def test_negative_price_or_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="unit amount"):
        plan_change_lines(-1, 1, 2000, 1, START, END, TEN_DAYS_IN)
    with pytest.raises(ValueError, match="quantity"):
        plan_change_lines(1000, 1, 2000, -1, START, END, TEN_DAYS_IN)


def test_price_times_quantity_beyond_max_amount_is_a_domain_error() -> None:
    with pytest.raises(DomainError) as caught:
        plan_change_lines(1000, 1, MAX_AMOUNT, 2, START, END, TEN_DAYS_IN)
    assert caught.value.code is ErrorCode.INVALID
    assert caught.value.message == (
        "Price times quantity must be at most 1000000000000000 minor units."
    )


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2027, 4, 11)
    with pytest.raises(ValueError, match="from_time must be timezone-aware"):
        prorate(1000, START, END, naive)
    with pytest.raises(ValueError, match="change_at must be timezone-aware"):
        plan_change_lines(1000, 1, 2000, 1, START, END, naive)
    with pytest.raises(ValueError, match="period_start must be timezone-aware"):
        cancellation_credit(1000, 1, naive, END, TEN_DAYS_IN)


def test_prorate_edges() -> None:
    assert prorate(2999, START, END, START - timedelta(days=3)) == 2999
    assert prorate(2999, START, END, START) == 2999
    assert prorate(2999, START, END, END) == 0
    assert prorate(2999, START, END, END + timedelta(days=3)) == 0
    assert prorate(2999, START, END, END - SECOND) == 0  # 2999 / 2592000 rounds to 0
    assert prorate(2592000, START, END, END - SECOND) == 1


def test_prorate_rounds_half_to_even_and_symmetrically() -> None:
    two_seconds = START + 2 * SECOND
    assert prorate(3, START, two_seconds, START + SECOND) == 2  # 1.5
    assert prorate(5, START, two_seconds, START + SECOND) == 2  # 2.5
    assert prorate(-3, START, two_seconds, START + SECOND) == -2
    assert prorate(-5, START, two_seconds, START + SECOND) == -2


def test_halves_of_a_period_can_be_one_unit_off_as_the_bound_allows() -> None:
    # Each half of 3 over two seconds is 1.5 -> 2: independent rounding gives 4 for 2 pieces,
    # one unit over, which is exactly the floor(k / 2) bound for k = 2.
    half = prorate(3, START, START + 2 * SECOND, START + SECOND)
    assert half + half == 4


def test_prorate_works_to_the_second_ignoring_microseconds() -> None:
    late = TEN_DAYS_IN + timedelta(microseconds=999_999)
    assert prorate(2592000, START, END, late) == prorate(2592000, START, END, TEN_DAYS_IN)
    assert prorate(2592000, START, END, TEN_DAYS_IN + SECOND) == 2592000 * 2 // 3 - 1


def test_jpy_has_no_minor_unit_to_hide_in() -> None:
    # 980 yen a month; 20 of 30 days left: 653.33 yen -> 653.
    lines = plan_change_lines(980, 1, 1980, 1, START, END, TEN_DAYS_IN)
    assert [format_decimal(line.amount, "JPY") for line in lines] == ["-653", "1320"]


def test_kwd_three_decimals() -> None:
    # 10.000 KWD -> 6.66667 -> 6.667; 12.345 KWD -> 8.230 exactly.
    lines = plan_change_lines(10000, 1, 12345, 1, START, END, TEN_DAYS_IN)
    assert [format_decimal(line.amount, "KWD") for line in lines] == ["-6.667", "8.230"]


def test_max_amount_over_a_three_year_period_is_exact() -> None:
    end = START + timedelta(days=3 * 365 + 1)
    at = START + timedelta(days=400, seconds=12345)
    total = (end - START) // SECOND
    remaining = (end - at) // SECOND
    result = prorate(MAX_AMOUNT, START, end, at)
    assert type(result) is int
    assert result == exact_round(Fraction(MAX_AMOUNT * remaining, total))
    assert 0 < result < MAX_AMOUNT
    lines = plan_change_lines(MAX_AMOUNT, 1, MAX_AMOUNT - 1, 1, START, end, at)
    assert [line.amount for line in lines] == [
        -result,
        exact_round(Fraction((MAX_AMOUNT - 1) * remaining, total)),
    ]


def test_cancellation_credit() -> None:
    assert cancellation_credit(2999, 2, START, END, TEN_DAYS_IN, label="Pro") == ProrationLine(
        description="Unused time on Pro after 2027-04-11 00:00:00 UTC",
        amount=-3999,  # 2/3 of 5998 = 3998.67
        quantity=2,
        period_start=TEN_DAYS_IN,
        period_end=END,
    )
    whole = cancellation_credit(2999, 1, START, END, START)
    assert whole is not None
    assert whole.amount == -2999
    assert cancellation_credit(2999, 1, START, END, END) is None
    assert cancellation_credit(0, 1, START, END, TEN_DAYS_IN) is None
    with pytest.raises(ValueError, match="before the period"):
        cancellation_credit(2999, 1, START, END, START - SECOND)


def test_the_credit_is_what_was_paid_for_the_unused_time_when_given() -> None:
    # 100.00 paid 50.00 (50 % off); half the period left: 25.00 is left of what was paid.
    half = datetime(2027, 4, 16, tzinfo=UTC)
    lines = plan_change_lines(10000, 1, 2000, 1, START, END, half, unused=2500)
    assert [line.amount for line in lines] == [-2500, 1000]
    assert lines[0].description == "Unused time on previous plan after 2027-04-16 00:00:00 UTC"
    # Nothing paid (a trial, an unpaid invoice): only the charge.
    assert [
        line.amount for line in plan_change_lines(1000, 1, 2999, 1, START, END, half, unused=0)
    ] == [1500]
    # Left out: the old price paid in full, as before.
    assert plan_change_lines(1000, 1, 2999, 1, START, END, TEN_DAYS_IN) == plan_change_lines(
        1000, 1, 2999, 1, START, END, TEN_DAYS_IN, unused=667
    )
    with pytest.raises(ValueError, match="unused value must not be negative"):
        plan_change_lines(1000, 1, 2999, 1, START, END, half, unused=-1)


def test_cancellation_credit_from_what_was_paid() -> None:
    credit = cancellation_credit(10000, 1, START, END, TEN_DAYS_IN, label="Pro", unused=3333)
    assert credit is not None
    assert (credit.amount, credit.period_start, credit.period_end) == (-3333, TEN_DAYS_IN, END)
    assert cancellation_credit(10000, 1, START, END, TEN_DAYS_IN, unused=0) is None


def test_prorate_until_is_the_complement_of_prorate() -> None:
    # 20.00 for [Apr 11, May 1) cut on Apr 21: 10.00 kept; 6.67 cut there: 6.67 - 3.34 (3.335
    # rounds to even) = 3.33.
    assert prorate_until(2000, TEN_DAYS_IN, END, datetime(2027, 4, 21, tzinfo=UTC)) == 1000
    assert prorate_until(667, TEN_DAYS_IN, END, datetime(2027, 4, 21, tzinfo=UTC)) == 333
    assert prorate_until(667, TEN_DAYS_IN, END, TEN_DAYS_IN) == 0
    assert prorate_until(667, TEN_DAYS_IN, END, END) == 667


amounts = st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)
prices = st.integers(min_value=0, max_value=MAX_AMOUNT)
# Up to three leap years of seconds, the longest period a plan can have.
lengths = st.integers(min_value=1, max_value=3 * 366 * 86400)


@given(numerator=st.integers(-(10**40), 10**40), denominator=st.integers(1, 10**20))
def test_divide_round_half_even_matches_exact_rounding(numerator: int, denominator: int) -> None:
    assert divide_round_half_even(numerator, denominator) == exact_round(
        Fraction(numerator, denominator)
    )


@given(amount=amounts, length=lengths, data=st.data())
def test_splitting_a_period_at_any_second_is_exact(
    amount: int, length: int, data: st.DataObject
) -> None:
    """For any split second t: prorate(t) is the nearest integer to amount * r / T (within half
    a unit, ties to even), the part before t taken as the complement makes the two parts sum to
    amount exactly, and both parts lie between 0 and amount."""
    end = START + length * SECOND
    offset = data.draw(st.integers(0, length))
    at = START + offset * SECOND
    after = prorate(amount, START, end, at)
    before = amount - after
    assert before + after == amount
    assert 2 * abs(after * length - amount * (length - offset)) <= length
    assert after == exact_round(Fraction(amount * (length - offset), length))
    low, high = sorted((0, amount))
    assert low <= after <= high
    assert low <= before <= high
    assert prorate(-amount, START, end, at) == -after


@given(amount=amounts, length=lengths, data=st.data())
def test_partition_into_k_pieces(amount: int, length: int, data: st.DataObject) -> None:
    """Cut [start, end) at k - 1 distinct seconds into k pieces.

    Telescoping: charging each piece [t_i, t_i+1) as prorate(t_i) - prorate(t_i+1) sums to the
    amount exactly, for every k. Rounding each piece on its own (a suffix of the same length, as
    prorate only depends on lengths): every piece is within 1/2 of its exact share, so the sum is
    within k/2 of amount, and being an integer, within floor(k/2) <= k - 1.
    """
    cuts = data.draw(
        st.lists(st.integers(1, length - 1), unique=True, max_size=min(40, length - 1))
        if length > 1
        else st.just([])
    )
    end = START + length * SECOND
    points = [START, *(START + cut * SECOND for cut in sorted(cuts)), end]
    k = len(points) - 1
    suffixes = [prorate(amount, START, end, point) for point in points]
    assert sum(suffixes[i] - suffixes[i + 1] for i in range(k)) == amount

    pieces = [prorate(amount, START, end, end - (points[i + 1] - points[i])) for i in range(k)]
    assert abs(sum(pieces) - amount) <= k // 2


@given(
    old=prices,
    new=prices,
    length=lengths,
    data=st.data(),
)
def test_plan_change_net_is_within_one_unit_of_the_exact_price(
    old: int, new: int, length: int, data: st.DataObject
) -> None:
    """The customer paid the whole old price in advance; after the credit and the charge, the
    net for the period is within one minor unit of old * used / T + new * left / T."""
    end = START + length * SECOND
    offset = data.draw(st.integers(0, length))
    lines = plan_change_lines(old, 1, new, 1, START, end, START + offset * SECOND)
    net = old + sum(line.amount for line in lines)
    exact = Fraction(old * offset + new * (length - offset), length)
    assert abs(net - exact) <= 1
    for line in lines:
        assert (line.amount < 0) is line.description.startswith("Unused time")
        assert line.amount != 0
    if old == new or offset == length:
        assert lines == []


@given(amount=prices, length=lengths, data=st.data())
def test_prorate_never_grows_as_time_passes(amount: int, length: int, data: st.DataObject) -> None:
    end = START + length * SECOND
    a, b = sorted(data.draw(st.lists(st.integers(-10, length + 10), min_size=2, max_size=2)))
    assert prorate(amount, START, end, START + a * SECOND) >= prorate(
        amount, START, end, START + b * SECOND
    )
