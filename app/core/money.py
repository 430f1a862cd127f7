"""Money in integer minor units, with ISO 4217 exponents.

Amounts never pass through floats: parsing goes through ``decimal.Decimal`` and formatting
through integer division, so ``19.99`` is always 1999 cents and ``500`` yen is 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.errors import DomainError, ErrorCode

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_AMOUNT",
    "Money",
    "exponent",
    "format_decimal",
    "normalize_currency",
    "parse_decimal",
    "row_money",
]

# ISO 4217 minor-unit exponents for the currencies we accept. Anything else is rejected,
# because guessing an exponent is how a service charges 100x too much.
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AUD",
            "BGN",
            "BRL",
            "CAD",
            "CHF",
            "CNY",
            "CZK",
            "DKK",
            "EGP",
            "EUR",
            "GBP",
            "HKD",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "MAD",
            "MXN",
            "MYR",
            "NOK",
            "NZD",
            "PHP",
            "PLN",
            "RON",
            "SAR",
            "SEK",
            "SGD",
            "THB",
            "TRY",
            "TWD",
            "UAH",
            "USD",
            "ZAR",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}

# Amounts are stored as PostgreSQL bigint; stay well inside it so sums of many amounts fit too.
MAX_AMOUNT = 10**15


def normalize_currency(code: str) -> str:
    """Return the upper-case ISO code, or raise ``UNKNOWN_CURRENCY``."""
    normalized = code.strip().upper()
    if normalized not in CURRENCY_EXPONENTS:
        raise DomainError(
            ErrorCode.UNKNOWN_CURRENCY,
            f"Unknown or unsupported currency {code[:8]!r}; use an ISO 4217 code such as USD.",
            field=("currency",),
        )
    return normalized


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENTS[normalize_currency(currency)]


def format_decimal(amount: int, currency: str) -> str:
    """Format minor units as a decimal string: 1999 USD -> "19.99", 500 JPY -> "500"."""
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**exp)
    return f"{sign}{units}.{minor:0{exp}d}" if exp else f"{sign}{units}"


def parse_decimal(text: str, currency: str) -> int:
    """Parse "19.99" USD into 1999; reject more fraction digits than the currency has."""
    exp = exponent(currency)
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise DomainError(ErrorCode.INVALID, f"{text[:32]!r} is not a decimal amount.") from None
    if not value.is_finite():
        raise DomainError(ErrorCode.INVALID, "Amount must be a finite number.")
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise DomainError(
            ErrorCode.INVALID, f"{currency} amounts have at most {exp} decimal places."
        )
    return int(scaled)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in the currency's minor units."""

    amount: int
    currency: str

    @classmethod
    def of(cls, amount: int, currency: str, *, field: tuple[str, ...] = ()) -> Money:
        """Validated constructor: known currency, amount within storage limits."""
        try:
            code = normalize_currency(currency)
        except DomainError as exc:
            raise exc.at((*field, "currency")) from None
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise DomainError(
                ErrorCode.INVALID,
                "Amount must be an integer of minor units.",
                field=(*field, "amount"),
            )
        if abs(amount) > MAX_AMOUNT:
            raise DomainError(
                ErrorCode.INVALID,
                f"Amount must be between -{MAX_AMOUNT} and {MAX_AMOUNT} minor units.",
                field=(*field, "amount"),
            )
        return cls(amount, code)

    @property
    def decimal(self) -> str:
        return format_decimal(self.amount, self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise DomainError(
                ErrorCode.CURRENCY_MISMATCH,
                f"Cannot combine {self.currency} and {other.currency} amounts.",
            )


def row_money(row: Mapping[str, Any]) -> Callable[[str], Money]:
    """Reads a database row's amounts in the row's ``currency``: ``money = row_money(row)``,
    then ``money("total")``."""
    currency = row["currency"]
    return lambda column: Money(row[column], currency)
