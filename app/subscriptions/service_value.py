"""What the rest of a subscription's service is worth: the credit for unused time.

A credit for unused time must come from what the customer paid (or was promised), never from a
list price: a credit computed from the current price mints money after a change it did not pay
for (an upgrade under ``NONE``, an invoice never paid) or after a discount. So the value of the
time after ``t`` is read from the subscription's own billing lines:

* the finalized invoice lines of kinds ``subscription`` and ``proration`` (never the computed
  discount and tax lines), each worth its **net** amount ``amount - discount_amount`` (what it
  cost after its invoice's coupon, in that invoice's tax basis);
* a **positive** line (a charge) counts only if its invoice is **paid**: time that was not paid
  for is not credited; and only for the share of that invoice still kept by the organization:
  when credit notes or refunds gave part of the invoice back, its lines are worth that much less
  (``value * (total - given back) / total``, rounded half-even), so time cannot be credited once
  by a credit note and again as unused;
* a **negative** line (a credit already given) counts unless its invoice is **void**: a credit is
  given once, whether its invoice was paid, is still open, or was written off;
* lines **pending** for the next invoice (``CREATE_PRORATIONS``) count, negative and positive
  alike: they will be invoiced together with the new line;
* each line covering ``[start, end)`` with ``end > t`` is prorated to the second with
  ``app.subscriptions.proration.prorate(value, start, end, max(t, start))`` (the proration
  rounding rules);
* the total is clamped at 0: a credit never exceeds what is left of what was paid, net of the
  credit already given.

Pure code: the subscription service reads the lines
(``db.repositories.subscriptions.service_periods``) and calls ``unused_value``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.subscriptions.proration import divide_round_half_even, prorate

__all__ = ["ServiceLine", "Standing", "counts", "kept", "unused_value"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


class Standing(enum.Enum):
    """Where a line's money stands: its invoice's status, or pending (not invoiced yet)."""

    PAID = "paid"
    OPEN = "open"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class ServiceLine:
    """One billing line of a subscription for ``[period_start, period_end)``.

    ``value`` is what the line is worth in minor units, after its invoice's discount (credits
    negative); ``standing`` is its invoice's status, or ``PENDING``.
    """

    value: int
    period_start: datetime
    period_end: datetime
    standing: Standing
    invoice_total: int = 0  # the total of the line's invoice
    given_back: int = 0  # what credit notes and refunds gave back of that invoice


def counts(line: ServiceLine) -> bool:
    """Whether the line is part of what was paid or promised (see the module rules)."""
    if line.standing is Standing.PENDING:
        return True
    if line.value > 0:
        return line.standing is Standing.PAID
    return line.standing is not Standing.VOID


def unused_value(lines: Iterable[ServiceLine], at: datetime) -> int:
    """The value, in minor units (>= 0), of the service after ``at`` that the customer paid
    for or was promised, net of the credit already given for it."""
    total = 0
    for line in lines:
        if not counts(line) or line.period_end <= at or _seconds(line) < 1:
            continue
        total += prorate(kept(line), line.period_start, line.period_end, max(at, line.period_start))
    return max(total, 0)


def kept(line: ServiceLine) -> int:
    """The line's value, less its share of what was given back of its paid invoice."""
    if line.value <= 0 or line.given_back <= 0 or line.invoice_total <= 0:
        return line.value
    left = max(line.invoice_total - line.given_back, 0)
    return divide_round_half_even(line.value * left, line.invoice_total)


def _seconds(line: ServiceLine) -> int:
    return (line.period_end - _EPOCH) // _SECOND - (line.period_start - _EPOCH) // _SECOND
