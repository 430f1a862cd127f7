"""Statistics arithmetic: integer division rounded half-even, ratios, and the classification of
an MRR change at the customer's level. Pure code, no database.

The MRR of one subscription is defined in SQL (``stats_subscription_mrr`` in
db/migrations/0007_statistics.sql) so the live path, the migration's baseline and plain
aggregate queries share one definition; docs/statistics.md states it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Movement", "Ratio", "classify", "customer_delta", "div_half_even"]


def div_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` to the nearest integer, ties to the even neighbour (the
    rounding of averages, ARPU and the monthly normalisation of MRR)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


class Movement(enum.Enum):
    """How a change of one customer's MRR (in one currency) is counted."""

    NEW = "new"  # from none to some, the first time
    EXPANSION = "expansion"  # up, from some
    CONTRACTION = "contraction"  # down, to some
    CHURN = "churn"  # from some to none
    REACTIVATION = "reactivation"  # from none to some, after having churned


def classify(before: int, after: int, episodes: int) -> Movement | None:
    """The movement of a customer's MRR going from ``before`` to ``after``; ``episodes`` counts
    the times it has gone from none to some, this change included. None when unchanged."""
    if after == before:
        return None
    if before == 0:
        return Movement.NEW if episodes <= 1 else Movement.REACTIVATION
    if after == 0:
        return Movement.CHURN
    return Movement.EXPANSION if after > before else Movement.CONTRACTION


def customer_delta(movement: Movement | None) -> int:
    """How a movement changes the number of paying customers."""
    if movement in (Movement.NEW, Movement.REACTIVATION):
        return 1
    if movement is Movement.CHURN:
        return -1
    return 0


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator / denominator``, exact; ``percent`` is it times 100 with two decimals,
    rounded half-even. Only built with a positive denominator."""

    numerator: int
    denominator: int

    @property
    def percent(self) -> str:
        hundredths = div_half_even(self.numerator * 10_000, self.denominator)
        sign = "-" if hundredths < 0 else ""
        whole, part = divmod(abs(hundredths), 100)
        return f"{sign}{whole}.{part:02d}"

    @classmethod
    def of(cls, numerator: int, denominator: int) -> Ratio | None:
        """The ratio, or None when the denominator is zero (undefined, not zero)."""
        return cls(numerator, denominator) if denominator > 0 else None
