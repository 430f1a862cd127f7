from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.catalog.coupons import CouponDuration, CouponRecord, parse_percent
from app.core.errors import DomainError
from app.core.money import Money


def coupon(duration: CouponDuration, periods: int | None = None, **fields: object) -> CouponRecord:
    values: dict[str, object] = {
        "id": "coup_x",
        "organization_id": "acme",
        "code": "X",
        "name": "X",
        "percent_off": 1000,
        "amount_off": None,
        "duration": duration,
        "duration_periods": periods,
        "max_redemptions": None,
        "times_redeemed": 0,
        "redeem_by": None,
        "active": True,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "archived_at": None,
        **fields,
    }
    return CouponRecord(**values)  # type: ignore[arg-type]


def test_durations_cover_the_right_number_of_periods() -> None:
    assert [coupon(CouponDuration.ONCE).covers(n) for n in range(3)] == [True, False, False]
    repeating = coupon(CouponDuration.REPEATING, 3)
    assert [repeating.covers(n) for n in range(5)] == [True, True, True, False, False]
    assert all(coupon(CouponDuration.FOREVER).covers(n) for n in (0, 1, 10_000))


def test_a_fixed_amount_applies_only_in_its_currency() -> None:
    fixed = coupon(CouponDuration.ONCE, percent_off=None, amount_off=Money(500, "EUR"))
    assert fixed.for_invoice("USD") is None
    terms = fixed.for_invoice("EUR")
    assert terms is not None
    assert terms.amount_off == Money(500, "EUR")


@pytest.mark.parametrize(
    ("text", "points"), [("15", 1500), ("12.5", 1250), ("0.01", 1), ("100", 10000)]
)
def test_percentages_are_read_exactly(text: str, points: int) -> None:
    assert parse_percent(text) == points


@pytest.mark.parametrize(
    "text", ["0", "-5", "100.01", "1.234", "abc", "NaN", "Infinity", "1e999999999"]
)
def test_bad_percentages_are_refused(text: str) -> None:
    with pytest.raises(DomainError):
        parse_percent(text)
