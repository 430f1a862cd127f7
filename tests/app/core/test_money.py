from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import DomainError, ErrorCode
from app.core.money import (
    CURRENCY_EXPONENTS,
    MAX_AMOUNT,
    Money,
    format_decimal,
    parse_decimal,
    row_money,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
amounts = st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1999, "USD", "19.99"),
        (1998, "USD", "19.98"),
        (5, "EUR", "0.05"),
        (-5, "GBP", "-0.05"),
        (500, "JPY", "500"),
        (12345, "KWD", "12.345"),
        (100, "CNY", "1.00"),
        (0, "USD", "0.00"),
    ],
)
def test_format_uses_iso_exponent(amount: int, currency: str, text: str) -> None:
    assert format_decimal(amount, currency) == text


def test_the_float_truncation_bug_of_the_old_service_cannot_happen() -> None:
    # 19.99 * 100 == 1998.9999999999998 in floats; int() of it charged 19.98.
    assert parse_decimal("19.99", "USD") == 1999
    assert parse_decimal("500", "JPY") == 500  # not 50000


@given(amount=amounts, currency=currencies)
def test_parse_inverts_format(amount: int, currency: str) -> None:
    assert parse_decimal(format_decimal(amount, currency), currency) == amount


@given(amount=amounts, currency=currencies)
def test_decimal_string_is_exact(amount: int, currency: str) -> None:
    exp = CURRENCY_EXPONENTS[currency]
    assert Decimal(format_decimal(amount, currency)) * (10**exp) == amount


@given(a=amounts, b=amounts, currency=currencies)
def test_addition_is_integer_exact(a: int, b: int, currency: str) -> None:
    total = Money(a, currency) + Money(b, currency)
    assert total.amount == a + b
    assert (total - Money(b, currency)).amount == a


def test_too_many_decimal_places_are_refused() -> None:
    with pytest.raises(DomainError) as info:
        parse_decimal("1.001", "USD")
    assert info.value.code is ErrorCode.INVALID
    with pytest.raises(DomainError):
        parse_decimal("1.5", "JPY")


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity", ""])
def test_non_numbers_are_refused(text: str) -> None:
    with pytest.raises(DomainError):
        parse_decimal(text, "USD")


def test_unknown_currency_is_refused_with_a_field() -> None:
    with pytest.raises(DomainError) as info:
        Money.of(100, "XXX", field=("input", "price"))
    assert info.value.code is ErrorCode.UNKNOWN_CURRENCY
    assert info.value.field == ("input", "price", "currency")


def test_currency_is_normalised() -> None:
    assert Money.of(1, " usd ").currency == "USD"


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, -(MAX_AMOUNT + 1), 2**70])
def test_amounts_beyond_storage_are_refused(amount: int) -> None:
    with pytest.raises(DomainError) as info:
        Money.of(amount, "USD", field=("price",))
    assert info.value.field == ("price", "amount")


def test_mixing_currencies_is_refused() -> None:
    with pytest.raises(DomainError) as info:
        _ = Money(1, "USD") + Money(1, "EUR")
    assert info.value.code is ErrorCode.CURRENCY_MISMATCH


def test_row_money_reads_amounts_in_the_rows_currency() -> None:
    money = row_money({"currency": "JPY", "total": 1200, "tax": 0})
    assert money("total") == Money(1200, "JPY")
    assert money("tax") == Money(0, "JPY")
