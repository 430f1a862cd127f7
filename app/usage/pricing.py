"""Metered prices and rating: a period's aggregate quantity turned into amounts, exactly.

Pure code: no database, no HTTP, no floats. Quantities and unit prices are ``Decimal``; unit
prices are in the currency's *minor* units and may be fractions of one (0.04 cents is
0.0004 USD per call). Each rated line is rounded once, half to even, to a whole minor unit.

Models (docs/usage.md has worked examples):

* ``PER_UNIT``: ``units x unit_price``.
* ``PACKAGE``: blocks of ``package_size`` units, a started block counted whole:
  ``ceil(units / package_size) x unit_price`` (the block's price).
* ``GRADUATED``: each tier prices the units that fall in it (tier bounds ``up_to`` are
  inclusive, ascending, the last open); a tier's ``flat_amount`` is added once any unit
  falls in it. One line per tier reached.
* ``VOLUME``: the tier the whole quantity falls in prices every unit, plus its flat amount.

``free_units`` are taken off the quantity first (never below zero); the tiers apply to what is
left. A negative aggregate (a sum corrected below zero) bills nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from app.core.errors import DomainError, ErrorCode
from app.core.money import MAX_AMOUNT

__all__ = ["MeteredPrice", "PriceModel", "PriceTier", "RatedLine", "parse_decimal", "rate"]

_ZERO = Decimal(0)
# Bounds that keep every product exact within PostgreSQL numeric and a bigint amount.
MAX_UNIT_PRICE = Decimal(MAX_AMOUNT)
MAX_DECIMALS = 12
MAX_TIERS = 20


class PriceModel(enum.Enum):
    PER_UNIT = "per_unit"
    PACKAGE = "package"
    GRADUATED = "graduated"
    VOLUME = "volume"


@dataclass(frozen=True, slots=True)
class PriceTier:
    up_to: Decimal | None  # inclusive upper bound in units; None: no bound (the last tier)
    unit_price: Decimal  # minor units per unit
    flat_amount: int = 0  # minor units, once when the tier is reached


@dataclass(frozen=True, slots=True)
class MeteredPrice:
    model: PriceModel
    unit_price: Decimal | None = None  # PER_UNIT: per unit; PACKAGE: per block
    package_size: int | None = None
    tiers: tuple[PriceTier, ...] = ()
    free_units: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class RatedLine:
    """One line of a rated quantity: ``units`` (of the tier) at ``unit_price`` plus
    ``flat_amount``, rounded once to ``amount``. ``tier`` counts from 1 (0: no tiers);
    ``first_unit``/``last_unit`` bound the tier's units (``last_unit`` None: open)."""

    tier: int
    first_unit: Decimal
    last_unit: Decimal | None
    units: Decimal
    unit_price: Decimal
    flat_amount: int
    amount: int


# Digits enough for any product of accepted values (27-digit quantities x 28-digit prices) to be
# exact: the only rounding is the one to a whole minor unit.
_EXACT_DIGITS = 100


def round_half_even(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def _blocks(units: Decimal, size: int) -> Decimal:
    """``ceil(units / size)``, exactly (integer arithmetic on the scaled quantity)."""
    exponent = units.as_tuple().exponent
    assert isinstance(exponent, int)
    scale = max(0, -exponent)
    whole = int(units.scaleb(scale))  # exact: units has `scale` decimals (in rate's context)
    return Decimal(-(-whole // (size * 10**scale)))


def _invalid(message: str, *field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message, field=field or None)


def parse_decimal(
    text: str, what: str, field: tuple[str, ...], *, maximum: Decimal = MAX_UNIT_PRICE
) -> Decimal:
    """A non-negative exact decimal from its text ("0.0004", "12"), at most ``MAX_DECIMALS``
    decimals and ``maximum``."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise _invalid(f"{what} must be a decimal number such as 0.25.", *field) from None
    if not value.is_finite() or value < 0:
        raise _invalid(f"{what} must be zero or more.", *field)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise _invalid(f"{what} has at most {MAX_DECIMALS} decimals.", *field)
    if value > maximum:
        raise _invalid(f"{what} must be at most {maximum}.", *field)
    return value.normalize() if value != 0 else _ZERO


def check(price: MeteredPrice, field: tuple[str, ...]) -> None:
    """Raise ``DomainError`` for a price that cannot rate every quantity."""
    if price.model in (PriceModel.PER_UNIT, PriceModel.PACKAGE):
        if price.unit_price is None:
            raise _invalid("Give unitPrice for this model.", *field, "unitPrice")
        if price.tiers:
            raise _invalid("Tiers are for GRADUATED and VOLUME prices.", *field, "tiers")
    if price.model is PriceModel.PACKAGE and not price.package_size:
        raise _invalid("Give packageSize (units per block) for PACKAGE.", *field, "packageSize")
    if price.model is not PriceModel.PACKAGE and price.package_size is not None:
        raise _invalid("packageSize is for PACKAGE prices.", *field, "packageSize")
    if price.package_size is not None and not 0 < price.package_size <= MAX_AMOUNT:
        raise _invalid("packageSize must be a positive number of units.", *field, "packageSize")
    if price.model in (PriceModel.GRADUATED, PriceModel.VOLUME):
        if price.unit_price is not None:
            raise _invalid("GRADUATED and VOLUME prices are set per tier.", *field, "unitPrice")
        _check_tiers(price.tiers, (*field, "tiers"))


def _check_tiers(tiers: Sequence[PriceTier], field: tuple[str, ...]) -> None:
    if not 1 <= len(tiers) <= MAX_TIERS:
        raise _invalid(f"Give 1 to {MAX_TIERS} tiers.", *field)
    previous = _ZERO
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if last and tier.up_to is not None:
            raise _invalid("The last tier has no upTo (it has no upper bound).", *field)
        if not last and (tier.up_to is None or tier.up_to <= previous):
            raise _invalid("Tiers' upTo bounds are set and ascending.", *field, str(index))
        if not 0 <= tier.flat_amount <= MAX_AMOUNT:
            raise _invalid("A tier's flatAmount is zero or more.", *field, str(index))
        previous = tier.up_to if tier.up_to is not None else previous


def rate(quantity: Decimal, price: MeteredPrice) -> list[RatedLine]:
    """The lines ``quantity`` bills under ``price`` (at least one, possibly of zero)."""
    with localcontext(prec=_EXACT_DIGITS):  # every step exact, whatever the aggregate's size
        return _rate(quantity, price)


def _rate(quantity: Decimal, price: MeteredPrice) -> list[RatedLine]:
    billable = max(_ZERO, quantity - price.free_units)
    if price.model is PriceModel.PER_UNIT:
        assert price.unit_price is not None
        return [_line(0, _ZERO, None, billable, price.unit_price, 0)]
    if price.model is PriceModel.PACKAGE:
        assert price.unit_price is not None
        assert price.package_size
        return [_line(0, _ZERO, None, _blocks(billable, price.package_size), price.unit_price, 0)]
    if price.model is PriceModel.VOLUME:
        return [_volume(billable, price.tiers)]
    return _graduated(billable, price.tiers)


def _line(
    tier: int,
    first: Decimal,
    last: Decimal | None,
    units: Decimal,
    unit_price: Decimal,
    flat: int,
) -> RatedLine:
    amount = round_half_even(units * unit_price) + flat if units or flat else 0
    if amount > MAX_AMOUNT:
        raise _invalid("This usage bills more than the largest amount an invoice can hold.")
    return RatedLine(tier, first, last, units, unit_price, flat, amount)


def _volume(units: Decimal, tiers: Sequence[PriceTier]) -> RatedLine:
    first = _ZERO
    for index, tier in enumerate(tiers, start=1):
        if tier.up_to is None or units <= tier.up_to:
            flat = tier.flat_amount if units > 0 else 0
            return _line(index, first, tier.up_to, units, tier.unit_price, flat)
        first = tier.up_to
    raise AssertionError("the last tier is open")  # checked when the price was made


def _graduated(units: Decimal, tiers: Sequence[PriceTier]) -> list[RatedLine]:
    lines: list[RatedLine] = []
    below = _ZERO  # units priced by the tiers before this one
    for index, tier in enumerate(tiers, start=1):
        top = units if tier.up_to is None else min(units, tier.up_to)
        in_tier = top - below
        if in_tier <= 0 and lines:
            break
        in_tier = max(in_tier, _ZERO)
        flat = tier.flat_amount if in_tier > 0 else 0
        lines.append(_line(index, below, tier.up_to, in_tier, tier.unit_price, flat))
        if tier.up_to is None or units <= tier.up_to:
            break
        below = tier.up_to
    return lines
