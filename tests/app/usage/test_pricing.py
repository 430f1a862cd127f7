"""Rating of metered prices (``app.usage.pricing``): hand-computed amounts for every model,
half-to-even rounding once per line, free units, zero and negative aggregates, validation of
prices; and property tests against an independent reference written here with ``Fraction``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import DomainError, ErrorCode
from app.usage.pricing import (
    MeteredPrice,
    PriceModel,
    PriceTier,
    RatedLine,
    check,
    parse_decimal,
    rate,
)

D = Decimal
FIELD = ("input", "meteredPrices", "0")


def per_unit(price: str, free: str = "0") -> MeteredPrice:
    return MeteredPrice(PriceModel.PER_UNIT, unit_price=D(price), free_units=D(free))


def package(size: int, price: str, free: str = "0") -> MeteredPrice:
    return MeteredPrice(
        PriceModel.PACKAGE, unit_price=D(price), package_size=size, free_units=D(free)
    )


def tiered(model: PriceModel, *tiers: tuple[str | None, str, int], free: str = "0") -> MeteredPrice:
    return MeteredPrice(
        model,
        tiers=tuple(PriceTier(None if u is None else D(u), D(p), f) for u, p, f in tiers),
        free_units=D(free),
    )


def amounts(lines: list[RatedLine]) -> list[int]:
    return [line.amount for line in lines]


def total(quantity: str, price: MeteredPrice) -> int:
    return sum(amounts(rate(D(quantity), price)))


# 1 minor unit per unit up to 100 (+5.00 flat), 0.5 up to 1,000 (+2.00), then 0.25 (+1.00).
THREE = (("100", "1", 500), ("1000", "0.5", 200), (None, "0.25", 100))
GRADUATED = tiered(PriceModel.GRADUATED, *THREE)
VOLUME = tiered(PriceModel.VOLUME, *THREE)


# -- per unit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", 0),
        ("12", 0),  # 0.48 minor units
        ("13", 1),  # 0.52
        ("25", 1),  # 1.00
        ("12345", 494),  # 493.8
        ("12350", 494),  # 494.0
        ("1000000", 40000),
        ("37.5", 2),  # 1.5 -> 2 (even)
        ("62.5", 2),  # 2.5 -> 2 (even)
    ],
)
def test_per_unit_with_a_sub_minor_price(quantity: str, expected: int) -> None:
    (line,) = rate(D(quantity), per_unit("0.04"))
    assert (line.tier, line.units, line.unit_price, line.flat_amount) == (
        0,
        D(quantity),
        D("0.04"),
        0,
    )
    assert line.amount == expected
    assert type(line.amount) is int


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        ("1", "0.5", 0),  # 0.5 -> 0
        ("3", "0.5", 2),  # 1.5 -> 2
        ("5", "0.5", 2),  # 2.5 -> 2
        ("7", "0.5", 4),  # 3.5 -> 4
        ("25", "0.1", 2),  # 2.5 -> 2
        ("35", "0.1", 4),  # 3.5 -> 4
        ("2.5", "3", 8),  # 7.5 -> 8
        ("4.5", "1", 4),  # 4.5 -> 4
        ("1", "0.5000000001", 1),  # just above the half
        ("1", "0.4999999999", 0),  # just below
    ],
)
def test_rounding_is_half_to_even(quantity: str, price: str, expected: int) -> None:
    assert total(quantity, per_unit(price)) == expected


def test_free_units_come_off_first_and_never_below_zero() -> None:
    price = per_unit("2", free="10")
    assert total("8", price) == 0
    assert total("10", price) == 0
    assert total("13", price) == 6
    (line,) = rate(D("8"), price)
    assert line.units == 0
    (line,) = rate(D("10.5"), price)
    assert (line.units, line.amount) == (D("0.5"), 1)


def test_a_negative_aggregate_bills_nothing() -> None:
    for price in (per_unit("3"), package(10, "100"), GRADUATED, VOLUME):
        lines = rate(D("-42"), price)
        assert amounts(lines) == [0]
        assert lines[0].units == 0


def test_zero_quantity_is_one_line_of_zero() -> None:
    for price in (per_unit("3"), package(10, "100"), GRADUATED, VOLUME):
        lines = rate(D(0), price)
        assert len(lines) == 1
        assert (lines[0].units, lines[0].flat_amount, lines[0].amount) == (D(0), 0, 0)


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        # exact: 14441930310866.500000000000000759 -> up
        ("12345111119425.898616200352", "1.1698501675", 14441930310867),
        # exact: 22751898449853.4999999999999984 -> down
        ("3889173396553.979071406708", "5.8500601876", 22751898449853),
    ],
)
def test_large_quantities_round_once_exactly(quantity: str, price: str, expected: int) -> None:
    # Within the accepted bounds: 12 decimals, below 10^15 units and amounts; the price is
    # 0.011698501675 USD (12 decimals) in minor units.
    exact = Fraction(D(quantity)) * Fraction(D(price))
    assert round(exact) == expected
    assert total(quantity, per_unit(price)) == expected


# -- package ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "blocks"),
    [("0", 0), ("1", 1), ("99", 1), ("100", 1), ("100.5", 2), ("101", 2), ("200", 2), ("201", 3)],
)
def test_package_counts_a_started_block_whole(quantity: str, blocks: int) -> None:
    (line,) = rate(D(quantity), package(100, "250"))
    assert line.units == blocks
    assert line.amount == 250 * blocks


def test_package_block_price_rounds_once_half_even() -> None:
    price = package(100, "2.5")
    assert total("1", price) == 2  # one block: 2.5 -> 2
    assert total("101", price) == 5  # two: 5.0
    assert total("201", price) == 8  # three: 7.5 -> 8


def test_package_free_units_before_blocks() -> None:
    price = package(100, "250", free="50")
    assert total("50", price) == 0
    assert total("150", price) == 250  # 100 billable: one block
    assert total("151", price) == 500


# -- graduated --------------------------------------------------------------------------------


def shape(lines: list[RatedLine]) -> list[tuple[int, str, str | None, str, int, int]]:
    return [
        (
            line.tier,
            str(line.first_unit),
            None if line.last_unit is None else str(line.last_unit),
            str(line.units),
            line.flat_amount,
            line.amount,
        )
        for line in lines
    ]


def test_graduated_across_three_tiers_with_flat_amounts() -> None:
    assert shape(rate(D(1), GRADUATED)) == [(1, "0", "100", "1", 500, 501)]
    assert shape(rate(D(100), GRADUATED)) == [(1, "0", "100", "100", 500, 600)]
    assert shape(rate(D(101), GRADUATED)) == [
        (1, "0", "100", "100", 500, 600),
        (2, "100", "1000", "1", 200, 200),  # 0.5 -> 0, + 200
    ]
    assert shape(rate(D(1000), GRADUATED)) == [
        (1, "0", "100", "100", 500, 600),
        (2, "100", "1000", "900", 200, 650),
    ]
    assert shape(rate(D(1001), GRADUATED)) == [
        (1, "0", "100", "100", 500, 600),
        (2, "100", "1000", "900", 200, 650),
        (3, "1000", None, "1", 100, 100),  # 0.25 -> 0, + 100
    ]
    assert shape(rate(D(2503), GRADUATED))[2] == (3, "1000", None, "1503", 100, 476)  # 375.75
    assert total("2503", GRADUATED) == 600 + 650 + 476


def test_graduated_each_line_rounds_on_its_own() -> None:
    # Two lines of 0.5 minor units: each rounds to 0 (together they would make 1).
    price = tiered(PriceModel.GRADUATED, ("1", "0.5", 0), (None, "0.5", 0))
    assert amounts(rate(D(2), price)) == [0, 0]
    # 1.5 and 2.5: 2 and 2.
    price = tiered(PriceModel.GRADUATED, ("3", "0.5", 0), (None, "0.5", 0))
    assert amounts(rate(D(8), price)) == [2, 2]


def test_graduated_with_decimal_bounds_and_free_units() -> None:
    price = tiered(PriceModel.GRADUATED, ("10.5", "2", 0), (None, "1", 0), free="0.5")
    # 12 - 0.5 = 11.5 billable: 10.5 x 2 = 21, 1 x 1 = 1.
    assert shape(rate(D(12), price)) == [
        (1, "0", "10.5", "10.5", 0, 21),
        (2, "10.5", None, "1.0", 0, 1),
    ]
    with_free = tiered(PriceModel.GRADUATED, *THREE, free="50")
    assert total("150", with_free) == 600  # 100 billable: tier 1 only
    assert total("151", with_free) == 800


# -- volume -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "tier", "expected"),
    [
        ("1", 1, 1 + 500),
        ("100", 1, 100 + 500),
        ("100.5", 2, 50 + 200),  # 50.25
        ("101", 2, 50 + 200),  # 50.5 -> 50 (even)
        ("103", 2, 52 + 200),  # 51.5 -> 52 (even)
        ("1000", 2, 500 + 200),
        ("1001", 3, 250 + 100),  # 250.25
        ("1002", 3, 250 + 100),  # 250.5 -> 250
        ("1006", 3, 252 + 100),  # 251.5 -> 252
    ],
)
def test_volume_at_and_just_past_each_boundary(quantity: str, tier: int, expected: int) -> None:
    (line,) = rate(D(quantity), VOLUME)
    assert (line.tier, line.units, line.amount) == (tier, D(quantity), expected)


def test_volume_free_units() -> None:
    price = tiered(PriceModel.VOLUME, *THREE, free="1")
    (line,) = rate(D(101), price)
    assert (line.tier, line.units, line.amount) == (1, D(100), 600)


# -- validation -------------------------------------------------------------------------------


def refused(price: MeteredPrice) -> DomainError:
    with pytest.raises(DomainError) as raised:
        check(price, FIELD)
    assert raised.value.code is ErrorCode.INVALID
    return raised.value


def test_check_accepts_valid_prices() -> None:
    for price in (per_unit("0.04"), package(100, "250"), GRADUATED, VOLUME):
        check(price, FIELD)
    check(tiered(PriceModel.VOLUME, (None, "1", 0)), FIELD)


@pytest.mark.parametrize(
    ("price", "field"),
    [
        (MeteredPrice(PriceModel.PER_UNIT), (*FIELD, "unitPrice")),
        (MeteredPrice(PriceModel.PACKAGE, package_size=10), (*FIELD, "unitPrice")),
        (MeteredPrice(PriceModel.PACKAGE, unit_price=D(1)), (*FIELD, "packageSize")),
        (
            MeteredPrice(PriceModel.PACKAGE, unit_price=D(1), package_size=0),
            (*FIELD, "packageSize"),
        ),
        (
            MeteredPrice(PriceModel.PACKAGE, unit_price=D(1), package_size=-5),
            (*FIELD, "packageSize"),
        ),
        (
            MeteredPrice(PriceModel.PER_UNIT, unit_price=D(1), package_size=5),
            (*FIELD, "packageSize"),
        ),
        (
            MeteredPrice(PriceModel.PER_UNIT, unit_price=D(1), tiers=(PriceTier(None, D(1)),)),
            (*FIELD, "tiers"),
        ),
        (
            MeteredPrice(PriceModel.GRADUATED, unit_price=D(1), tiers=(PriceTier(None, D(1)),)),
            (*FIELD, "unitPrice"),
        ),
        (MeteredPrice(PriceModel.GRADUATED), (*FIELD, "tiers")),
        (MeteredPrice(PriceModel.VOLUME), (*FIELD, "tiers")),
    ],
)
def test_check_refuses_inconsistent_prices(price: MeteredPrice, field: tuple[str, ...]) -> None:
    assert refused(price).field == field


@pytest.mark.parametrize("model", [PriceModel.GRADUATED, PriceModel.VOLUME])
@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        # unordered bounds
        ((("100", "1", 0), ("50", "1", 0), (None, "1", 0)), (*FIELD, "tiers", "1")),
        # equal bounds
        ((("100", "1", 0), ("100", "1", 0), (None, "1", 0)), (*FIELD, "tiers", "1")),
        # a zero first bound (bounds are above 0)
        ((("0", "1", 0), (None, "1", 0)), (*FIELD, "tiers", "0")),
        # a bounded last tier
        ((("100", "1", 0), ("200", "1", 0)), (*FIELD, "tiers")),
        ((("100", "1", 0),), (*FIELD, "tiers")),
        # an unbounded tier before the last
        (((None, "1", 0), (None, "1", 0)), (*FIELD, "tiers", "0")),
        # a negative flat amount
        ((("100", "1", -1), (None, "1", 0)), (*FIELD, "tiers", "0")),
        ((("100", "1", 0), (None, "1", -1)), (*FIELD, "tiers", "1")),
    ],
)
def test_check_refuses_bad_tiers(
    model: PriceModel, tiers: tuple[tuple[str | None, str, int], ...], field: tuple[str, ...]
) -> None:
    assert refused(tiered(model, *tiers)).field == field


def test_check_refuses_too_many_tiers() -> None:
    twenty = [(str(n), "1", 0) for n in range(1, 20)]
    check(tiered(PriceModel.GRADUATED, *twenty, (None, "1", 0)), FIELD)
    twenty_one = [(str(n), "1", 0) for n in range(1, 21)]
    assert refused(tiered(PriceModel.GRADUATED, *twenty_one, (None, "1", 0))).field == (
        *FIELD,
        "tiers",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.0004", D("0.0004")), (" 12 ", D(12)), ("0", D(0)), ("0.000", D(0)), ("2.50", D("2.5"))],
)
def test_parse_decimal_reads_exact_decimals(text: str, expected: Decimal) -> None:
    parsed = parse_decimal(text, "unitPrice", ("unitPrice",))
    assert parsed == expected
    assert str(parsed) == str(expected)


@pytest.mark.parametrize(
    "text", ["abc", "", "-1", "-0.0001", "NaN", "Infinity", "0.0000000000001", "1000000000000001"]
)
def test_parse_decimal_refuses(text: str) -> None:
    with pytest.raises(DomainError) as raised:
        parse_decimal(text, "unitPrice", ("x", "unitPrice"))
    assert raised.value.code is ErrorCode.INVALID
    assert raised.value.field == ("x", "unitPrice")


# -- properties against an independent reference ------------------------------------------------


@dataclass(frozen=True)
class RefTier:
    up_to: Fraction | None
    unit_price: Fraction
    flat: int


def ref_lines(
    quantity: Fraction, model: PriceModel, tiers: list[RefTier], free: Fraction
) -> list[tuple[int, Fraction, int]]:
    """(tier, units, amount) per line, by the rules of docs/usage.md, in exact fractions; ``round``
    of a Fraction rounds half to even."""
    billable = quantity - free if quantity > free else Fraction(0)
    if model is PriceModel.VOLUME:
        for number, tier in enumerate(tiers, start=1):
            if tier.up_to is None or billable <= tier.up_to:
                flat = tier.flat if billable > 0 else 0
                return [(number, billable, round(billable * tier.unit_price) + flat)]
        raise AssertionError("open last tier")
    lines: list[tuple[int, Fraction, int]] = []
    lower = Fraction(0)
    for number, tier in enumerate(tiers, start=1):
        upper = billable if tier.up_to is None else min(billable, tier.up_to)
        units = max(upper - lower, Fraction(0))
        if units == 0 and lines:
            break
        amount = round(units * tier.unit_price) + (tier.flat if units else 0)
        lines.append((number, units, amount))
        if tier.up_to is None or billable <= tier.up_to:
            break
        lower = tier.up_to
    return lines


def ref_simple(quantity: Fraction, price: Fraction, size: int | None, free: Fraction) -> int:
    billable = max(quantity - free, Fraction(0))
    units = Fraction(math.ceil(billable / size)) if size else billable
    return round(units * price)


PRICES = st.one_of(
    st.sampled_from([D("0"), D("0.5"), D("0.25"), D("0.04"), D("1.5"), D("0.0004"), D("3")]),
    st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False),
)
BOUNDS = st.decimals(min_value=D("0.01"), max_value=5000, places=2, allow_nan=False)


@st.composite
def tier_sets(draw: st.DrawFn) -> tuple[PriceTier, ...]:
    bounds = sorted(draw(st.sets(st.one_of(st.integers(1, 5000).map(D), BOUNDS), max_size=4)))
    ups: list[Decimal | None] = [*bounds, None]
    return tuple(
        PriceTier(up, draw(PRICES), draw(st.one_of(st.just(0), st.integers(0, 10_000))))
        for up in ups
    )


@st.composite
def quantities(draw: st.DrawFn, tiers: tuple[PriceTier, ...], free: Decimal) -> Decimal:
    """Exact tier boundaries (shifted by the free units) and ±1, ±0.01, or any decimal."""
    edges = [free + t.up_to for t in tiers if t.up_to is not None] + [free]
    near = st.builds(
        lambda e, d: e + d, st.sampled_from(edges), st.sampled_from([D(0), D(1), D(-1), D("0.01")])
    )
    anywhere = st.decimals(min_value=-10, max_value=12_000, places=3, allow_nan=False)
    return draw(st.one_of(near, anywhere, st.integers(0, 12_000).map(D)))


def to_ref(tiers: tuple[PriceTier, ...]) -> list[RefTier]:
    return [
        RefTier(
            None if t.up_to is None else Fraction(t.up_to), Fraction(t.unit_price), t.flat_amount
        )
        for t in tiers
    ]


FREE = st.one_of(st.just(D(0)), st.decimals(min_value=0, max_value=100, places=1, allow_nan=False))
PROPERTY = settings(max_examples=400, derandomize=True, database=None, deadline=None)


@PROPERTY
@given(st.data(), tier_sets(), FREE, st.sampled_from([PriceModel.GRADUATED, PriceModel.VOLUME]))
def test_tiered_amounts_equal_the_reference(
    data: st.DataObject, tiers: tuple[PriceTier, ...], free: Decimal, model: PriceModel
) -> None:
    price = MeteredPrice(model, tiers=tiers, free_units=free)
    check(price, FIELD)
    quantity = data.draw(quantities(tiers, free))
    lines = rate(quantity, price)
    expected = ref_lines(Fraction(quantity), model, to_ref(tiers), Fraction(free))
    assert [(line.tier, Fraction(line.units), line.amount) for line in lines] == expected


@PROPERTY
@given(
    st.one_of(
        st.decimals(min_value=-10, max_value=1_000_000, places=3, allow_nan=False),
        st.integers(0, 1_000_000).map(D),
    ),
    PRICES,
    st.one_of(st.none(), st.integers(1, 1000)),
    FREE,
)
def test_per_unit_and_package_equal_the_reference(
    quantity: Decimal, unit_price: Decimal, size: int | None, free: Decimal
) -> None:
    model = PriceModel.PER_UNIT if size is None else PriceModel.PACKAGE
    price = MeteredPrice(model, unit_price=unit_price, package_size=size, free_units=free)
    check(price, FIELD)
    (line,) = rate(quantity, price)
    assert line.amount == ref_simple(Fraction(quantity), Fraction(unit_price), size, Fraction(free))


@PROPERTY
@given(st.data(), tier_sets(), FREE)
def test_graduated_lines_sum_to_the_billable_quantity_and_are_exact(
    data: st.DataObject, tiers: tuple[PriceTier, ...], free: Decimal
) -> None:
    quantity = data.draw(quantities(tiers, free))
    lines = rate(quantity, MeteredPrice(PriceModel.GRADUATED, tiers=tiers, free_units=free))
    billable = max(quantity - free, D(0))
    assert sum((line.units for line in lines), D(0)) == billable
    for line, tier in zip(lines, tiers, strict=False):
        assert type(line.amount) is int
        assert line.unit_price == tier.unit_price
        assert line.flat_amount == (tier.flat_amount if line.units > 0 else 0)
        exact = Fraction(line.units) * Fraction(line.unit_price)
        assert line.amount == round(exact) + line.flat_amount
        assert line.units >= 0
    # every line but the last fills its tier
    for line in lines[:-1]:
        assert line.last_unit is not None
        assert line.units == line.last_unit - line.first_unit


@PROPERTY
@given(st.data(), tier_sets(), FREE)
def test_graduated_total_never_decreases_with_quantity(
    data: st.DataObject, tiers: tuple[PriceTier, ...], free: Decimal
) -> None:
    price = MeteredPrice(PriceModel.GRADUATED, tiers=tiers, free_units=free)
    first = data.draw(quantities(tiers, free))
    second = data.draw(quantities(tiers, free))
    low, high = sorted((first, second))
    assert sum(amounts(rate(low, price))) <= sum(amounts(rate(high, price)))
    step = data.draw(st.sampled_from([D("0.001"), D(1), D(100)]))
    assert sum(amounts(rate(high, price))) <= sum(amounts(rate(high + step, price)))


@PROPERTY
@given(
    PRICES,
    st.integers(0, 10_000),
    FREE,
    st.decimals(min_value=-5, max_value=50_000, places=3, allow_nan=False),
)
def test_volume_equals_graduated_with_one_tier(
    unit_price: Decimal, flat: int, free: Decimal, quantity: Decimal
) -> None:
    tiers = (PriceTier(None, unit_price, flat),)
    volume = rate(quantity, MeteredPrice(PriceModel.VOLUME, tiers=tiers, free_units=free))
    graduated = rate(quantity, MeteredPrice(PriceModel.GRADUATED, tiers=tiers, free_units=free))
    assert volume == graduated
    assert (
        sum(amounts(volume))
        == ref_lines(
            Fraction(quantity),
            PriceModel.VOLUME,
            to_ref(tiers),
            Fraction(free),
        )[0][2]
    )
