"""What a coupon and a tax rate mean to the invoice arithmetic (app/invoicing/math.py): the
validated terms the catalog hands to it. Pure code, integers only; ``Decimal`` only parses a rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from app.core.errors import DomainError, ErrorCode
from app.core.money import MAX_AMOUNT, Money

__all__ = ["BASIS_POINTS", "RATE_SCALE", "Coupon", "TaxRate"]

BASIS_POINTS = 10_000
"""Coupon percentages are basis points: 1500 is 15 %, 10000 is 100 %."""

RATE_SCALE = 1_000_000
"""Tax rates are millionths (ten-thousandths of a percent): 200000 is 20 %, 88750 is 8.875 %."""


def _invalid(message: str, *field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message, field=field)


def _check_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer.", name)
    if not low <= value <= high:
        raise _invalid(f"{name} must be between {low} and {high}.", name)
    return value


def _format_scaled(value: int, scale: int) -> str:
    """A rate as a percent string without trailing zeros: 88750 millionths -> "8.875"."""
    whole, fraction = divmod(value * 100, scale)
    if not fraction:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")


@dataclass(frozen=True, slots=True)
class Coupon:
    """A discount on the subtotal: exactly one of ``percent_off`` (basis points) or
    ``amount_off`` (in the invoice currency)."""

    percent_off: int | None = None
    amount_off: Money | None = None
    name: str = "Discount"

    def __post_init__(self) -> None:
        if (self.percent_off is None) == (self.amount_off is None):
            raise _invalid("A coupon has exactly one of percentOff or amountOff.", "percentOff")
        if self.percent_off is not None:
            _check_int(self.percent_off, "percentOff", 1, BASIS_POINTS)
        if self.amount_off is not None:
            _check_int(self.amount_off.amount, "amountOff", 1, MAX_AMOUNT)
        if not self.name.strip():
            raise DomainError(ErrorCode.REQUIRED, "A coupon needs a name.", field=("name",))

    @property
    def label(self) -> str:
        if self.percent_off is not None:
            return f"{self.name} ({_format_scaled(self.percent_off, BASIS_POINTS)}%)"
        return self.name


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A tax rate in millionths (``RATE_SCALE``), included in prices or added to them."""

    name: str
    rate: int
    inclusive: bool = False

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise DomainError(ErrorCode.REQUIRED, "A tax rate needs a name.", field=("name",))
        _check_int(self.rate, "rate", 0, RATE_SCALE)

    @classmethod
    def parse(cls, name: str, percent: str, *, inclusive: bool = False) -> TaxRate:
        """``TaxRate.parse("Sales tax", "8.875")``: a percent with at most 4 decimals, 0..100."""
        try:
            value = Decimal(percent.strip())
        except InvalidOperation:
            raise _invalid(f"{percent[:32]!r} is not a decimal percentage.", "rate") from None
        if not value.is_finite():
            raise _invalid("A tax rate must be a finite number.", "rate")
        scaled = value.scaleb(4)
        if scaled != scaled.to_integral_value():
            raise _invalid("A tax rate has at most 4 decimal places.", "rate")
        if not 0 <= scaled <= RATE_SCALE:
            raise _invalid("A tax rate must be between 0 and 100 percent.", "rate")
        return cls(name, int(scaled), inclusive)

    @property
    def percent(self) -> str:
        return _format_scaled(self.rate, RATE_SCALE)
