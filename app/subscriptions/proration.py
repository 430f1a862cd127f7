"""Proration of subscription prices to the second, in integer minor units.

Rules (the same ones ``docs/proration.md`` explains with examples):

* **Time.** Instants are floored to whole UTC seconds. A period of ``T`` seconds that has ``r``
  seconds left at the change instant is worth ``amount * r / T`` of its price. A change before
  the period's start leaves the whole period (``r = T``); at or after its end, nothing (``r = 0``).
* **Rounding.** ``amount * r / T`` is rounded once, to the nearest minor unit, ties to even,
  in integer arithmetic only: no float, no Decimal context, and exact for any amount (Python
  integers do not overflow, and the result never exceeds ``|amount|``). Ties are frequent in
  billing: a change at the exact middle of a period with an odd price. Rounding half up would
  then always bill one unit too many for the two halves; half-even is off by one unit in either
  direction depending on the amount, so the error has no systematic sign. It is also symmetric:
  ``prorate(-a, ...) == -prorate(a, ...)``.
* **Quantity.** A line prorates ``unit amount * quantity`` as one number, so its rounding error
  is at most half a minor unit whatever the quantity (prorating the unit price and multiplying
  would multiply the error too).
* **Bound.** Each line is within half a minor unit of its exact rational value. A plan change
  has two lines, so the customer's net for the period (full old price, minus the credit, plus
  the charge) is within one minor unit of the exact time-weighted price; with ``k`` proration
  lines in a period, within ``k / 2`` units, so never more than one unit per line.
  Consecutive changes telescope: the charge for ``[t1, end)`` and the later credit for
  ``[t2, end)`` of the same price are both "prorate from a time to the period end", so a price
  held from ``t1`` to ``t2`` costs exactly ``prorate(t1) - prorate(t2)``, and summing those
  differences over any split of a whole period gives back exactly the price.
* **Credit from what was paid.** The credit for unused time is what the rest of the period is
  worth by what the customer paid for it (``app.subscriptions.service_value.unused_value``: the
  paid lines, after their discount, net of credits already given), passed in as ``unused``. Left
  out, it is the old price paid in full at list price (``prorate(old price x quantity)``), which
  is what a fully paid, undiscounted period is worth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.errors import DomainError, ErrorCode
from app.core.money import MAX_AMOUNT
from app.subscriptions.periods import ensure_utc

__all__ = [
    "ProrationLine",
    "cancellation_credit",
    "divide_round_half_even",
    "plan_change_lines",
    "prorate",
    "prorate_until",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class ProrationLine:
    """An invoice line for part of a period: a credit (``amount < 0``) for unused time on the
    old price or a charge (``amount > 0``) for the remaining time on the new one.

    ``amount`` is the prorated total in minor units for all ``quantity`` units, covering
    ``[period_start, period_end)``.
    """

    description: str
    amount: int
    quantity: int
    period_start: datetime
    period_end: datetime


def divide_round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, ties to even."""
    if denominator <= 0:
        raise ValueError(f"denominator must be positive, got {denominator}")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def prorate(amount: int, period_start: datetime, period_end: datetime, from_time: datetime) -> int:
    """The part of ``amount`` for ``[from_time, period_end)``, in minor units (see the rules)."""
    start = _seconds(period_start, "period_start")
    end = _seconds(period_end, "period_end")
    at = _seconds(from_time, "from_time")
    total = end - start
    if total <= 0:
        raise ValueError("the period must last at least one second")
    remaining = min(max(end - at, 0), total)
    return divide_round_half_even(amount * remaining, total)


def prorate_until(
    amount: int, period_start: datetime, period_end: datetime, until: datetime
) -> int:
    """The part of ``amount`` for ``[period_start, until)``: the complement of ``prorate`` from
    ``until``, so the two parts of a split line add up to ``amount`` exactly."""
    return amount - prorate(amount, period_start, period_end, until)


def plan_change_lines(
    old_amount: int,
    old_quantity: int,
    new_amount: int,
    new_quantity: int,
    period_start: datetime,
    period_end: datetime,
    change_at: datetime,
    *,
    old_label: str = "previous plan",
    new_label: str = "new plan",
    unused: int | None = None,
) -> list[ProrationLine]:
    """Lines for switching from ``old_amount`` x ``old_quantity`` to ``new_amount`` x
    ``new_quantity`` (unit prices in minor units) at ``change_at`` within the period.

    Returns the credit for the unused time, then the charge for the new price over the rest of
    the period. The credit is ``unused`` (what the rest of the period is worth by what was paid
    for it, >= 0; see the module rules), or the old price prorated when it is left out.
    Upgrades and downgrades both produce both lines; no change of price or quantity, or a
    change at or after the period end, produces none, and a line that rounds to zero (such as
    the credit when leaving a free plan, or when nothing was paid) is left out.
    """
    start, end, at = _change_window(period_start, period_end, change_at)
    old_total = _line_total(old_amount, old_quantity)
    new_total = _line_total(new_amount, new_quantity)
    if (old_amount, old_quantity) == (new_amount, new_quantity) or at >= end:
        return []
    when = _describe(at)
    lines = [
        ProrationLine(
            description=f"Unused time on {old_label} after {when}",
            amount=-_credit(unused, old_total, start, end, at),
            quantity=old_quantity,
            period_start=at,
            period_end=end,
        ),
        ProrationLine(
            description=f"Remaining time on {new_label} after {when}",
            amount=prorate(new_total, start, end, at),
            quantity=new_quantity,
            period_start=at,
            period_end=end,
        ),
    ]
    return [line for line in lines if line.amount != 0]


def cancellation_credit(
    amount: int,
    quantity: int,
    period_start: datetime,
    period_end: datetime,
    cancel_at: datetime,
    *,
    label: str = "plan",
    unused: int | None = None,
) -> ProrationLine | None:
    """The credit for the unused rest of a period paid in advance, when a subscription of
    ``amount`` x ``quantity`` is cancelled immediately at ``cancel_at``: ``unused`` (what the
    rest is worth by what was paid for it, >= 0), or the price prorated when it is left out;
    ``None`` when nothing is left to credit."""
    start, end, at = _change_window(period_start, period_end, cancel_at)
    total = _line_total(amount, quantity)
    if at >= end:
        return None
    credit = _credit(unused, total, start, end, at)
    if credit == 0:
        return None
    return ProrationLine(
        description=f"Unused time on {label} after {_describe(at)}",
        amount=-credit,
        quantity=quantity,
        period_start=at,
        period_end=end,
    )


def _credit(
    unused: int | None, old_total: int, start: datetime, end: datetime, at: datetime
) -> int:
    if unused is None:
        return prorate(old_total, start, end, at)
    if unused < 0:
        raise ValueError(f"the unused value must not be negative, got {unused}")
    return unused


def _seconds(value: datetime, name: str) -> int:
    return (ensure_utc(value, name) - _EPOCH) // _SECOND


def _change_window(
    period_start: datetime, period_end: datetime, change_at: datetime
) -> tuple[datetime, datetime, datetime]:
    start = ensure_utc(period_start, "period_start")
    end = ensure_utc(period_end, "period_end")
    at = ensure_utc(change_at, "change_at")
    if (end - _EPOCH) // _SECOND <= (start - _EPOCH) // _SECOND:
        raise ValueError("the period must last at least one second")
    if at < start:
        raise ValueError(f"the change at {at.isoformat()} is before the period {start.isoformat()}")
    return start, end, at


def _line_total(unit_amount: int, quantity: int) -> int:
    if unit_amount < 0:
        raise ValueError(f"unit amount must not be negative, got {unit_amount}")
    if quantity < 0:
        raise ValueError(f"quantity must not be negative, got {quantity}")
    total = unit_amount * quantity
    if total > MAX_AMOUNT:
        raise DomainError(
            ErrorCode.INVALID,
            f"Price times quantity must be at most {MAX_AMOUNT} minor units.",
        )
    return total


def _describe(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")
