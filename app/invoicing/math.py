"""Invoice arithmetic in integer minor units: lines, discount, tax, customer balance, amount due.

Pure code: no database, no HTTP, no floats. Every amount is an ``int`` of the invoice currency's
minor units (cents, yen, fils); rates are integers too (``Decimal`` is used only to *parse* a
rate string exactly).

Rules (docs/invoicing-math.md explains them with worked examples):

* A line's amount is ``quantity * unit_amount``, exactly. ``quantity`` may be 0 (a metered line
  with no usage is still worth showing); credits are negative ``unit_amount``, never negative
  quantities.
* Rounding, wherever a division happens, is to the nearest minor unit with ties away from zero
  ("commercial rounding", the rule tax authorities and calculators use). It is symmetric, so a
  credit note computes exactly the negated amounts of the invoice it reverses. (Proration,
  where exact halves are common, rounds ties to even instead: see docs/invoicing-math.md.)
* The discount applies to the discountable subtotal (the sum of the lines marked
  ``discountable``): ``round(base * percent_off / 10000)`` or the fixed ``amount_off``, capped at
  that base (never below zero; no discount on a base <= 0). Credits for unused time are not
  discountable: they are computed from what was paid, after the discount of their period.
* The discount is spread over the positive discountable lines in proportion to their amounts by
  the largest remainder method, so the discounted line amounts add up exactly to
  ``subtotal - discount``.
* Tax is computed once per invoice, with one rounding, on the discounted taxable base (the sum of
  the discounted taxable lines). Exclusive: ``tax = round(base * rate)``, added to the total.
  Inclusive: ``tax = base - round(base / (1 + rate))``, already inside the amounts, so its line is
  *informational* and is not added again.
* Invariant: ``total == sum(line.amount for line in lines if not line.informational)``.
* A credit balance pays first: ``balance_applied = min(balance, max(total, 0))``,
  ``amount_due = max(total, 0) - balance_applied``; a negative total (a net credit) is reported as
  ``credit_to_balance`` for the caller to add to the customer's balance.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.catalog import BASIS_POINTS, RATE_SCALE, Coupon, TaxRate
from app.core.errors import DomainError, ErrorCode
from app.core.money import MAX_AMOUNT, normalize_currency

__all__ = [
    "ComputedLine",
    "InvoiceTotals",
    "LineDraft",
    "LineKind",
    "compute_totals",
    "credited_tax",
    "tax_line",
]

_MAX_DESCRIPTION = 1_000


class LineKind(enum.Enum):
    SUBSCRIPTION = "subscription"
    PRORATION = "proration"
    USAGE = "usage"
    ONE_OFF = "one_off"
    DISCOUNT = "discount"
    TAX = "tax"


_GENERATED_KINDS = frozenset({LineKind.DISCOUNT, LineKind.TAX})


def _invalid(message: str, *field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message, field=field)


def _check_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer.", name)
    if not low <= value <= high:
        raise _invalid(f"{name} must be between {low} and {high}.", name)
    return value


def _check_bound(amount: int, what: str, *field: str) -> int:
    if abs(amount) > MAX_AMOUNT:
        raise _invalid(
            f"{what} must be between -{MAX_AMOUNT} and {MAX_AMOUNT} minor units.", *field
        )
    return amount


def _round_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` to the nearest integer, ties away from zero."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


@dataclass(frozen=True, slots=True)
class LineDraft:
    """An input line. ``quantity`` >= 0; ``unit_amount`` < 0 for credits (e.g. unused time)."""

    description: str
    quantity: int
    unit_amount: int
    kind: LineKind
    period_start: datetime | None = None
    period_end: datetime | None = None
    taxable: bool = True
    discountable: bool = True

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise DomainError(
                ErrorCode.REQUIRED, "A line needs a description.", field=("description",)
            )
        if len(self.description) > _MAX_DESCRIPTION:
            raise _invalid(
                f"A description has at most {_MAX_DESCRIPTION} characters.", "description"
            )
        _check_int(self.quantity, "quantity", 0, MAX_AMOUNT)
        _check_int(self.unit_amount, "unitAmount", -MAX_AMOUNT, MAX_AMOUNT)
        if self.kind in _GENERATED_KINDS:
            raise _invalid("Discount and tax lines are computed, not given.", "kind")
        _check_bound(self.amount, "A line amount", "unitAmount")
        for name, moment in (("periodStart", self.period_start), ("periodEnd", self.period_end)):
            if moment is not None and moment.utcoffset() is None:
                raise _invalid("Billing periods need timezone-aware datetimes.", name)
        if (
            self.period_start is not None
            and self.period_end is not None
            and self.period_end < self.period_start
        ):
            raise _invalid("A period cannot end before it starts.", "periodEnd")

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_amount


@dataclass(frozen=True, slots=True)
class ComputedLine:
    """A line of the computed invoice.

    ``discount_amount`` is the share of the invoice discount allocated to this line (0 on the
    generated lines). ``informational`` is true only for an inclusive tax line, whose amount is
    already contained in the other lines.
    """

    description: str
    kind: LineKind
    quantity: int
    unit_amount: int
    amount: int
    discount_amount: int = 0
    taxable: bool = False
    discountable: bool = False
    period_start: datetime | None = None
    period_end: datetime | None = None
    tax_rate: int | None = None
    informational: bool = False

    @property
    def net_amount(self) -> int:
        """The amount after this line's share of the discount."""
        return self.amount - self.discount_amount


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    """The computed invoice; every figure is in minor units of ``currency``.

    ``taxable_amount`` is the tax base net of tax (for inclusive tax, the discounted taxable
    amount minus the tax it contains), so ``taxable_amount + tax_total`` is the gross taxable
    amount for inclusive tax. ``total = subtotal - discount_total + tax_total`` for exclusive tax
    and ``subtotal - discount_total`` for inclusive tax.
    """

    currency: str
    lines: tuple[ComputedLine, ...]
    subtotal: int
    discount_total: int
    taxable_amount: int
    tax_total: int
    tax_inclusive: bool
    total: int
    balance_applied: int
    amount_due: int
    credit_to_balance: int


def _allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount`` (0 <= amount <= sum(weights)) in proportion to non-negative weights.

    Largest remainder: everyone gets the floor of their exact share, then the units left over go
    to the largest fractional parts (earlier lines first on ties). No share exceeds its weight.
    """
    if amount == 0:
        return [0] * len(weights)
    weight_sum = sum(weights)
    shares: list[int] = []
    remainders: list[int] = []
    for weight in weights:
        share, remainder = divmod(amount * weight, weight_sum)
        shares.append(share)
        remainders.append(remainder)
    left_over = amount - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:left_over]:
        shares[index] += 1
    return shares


def _discount(base: int, currency: str, coupon: Coupon) -> int:
    amount_off = coupon.amount_off
    if amount_off is not None and amount_off.currency != currency:
        raise DomainError(
            ErrorCode.CURRENCY_MISMATCH,
            f"The coupon is in {amount_off.currency} but the invoice is in {currency}.",
            field=("coupon", "amountOff", "currency"),
        )
    if base <= 0:
        return 0
    if amount_off is not None:
        return min(amount_off.amount, base)
    return _round_div(base * (coupon.percent_off or 0), BASIS_POINTS)


def tax_line(description: str, rate: int, tax: int, *, informational: bool) -> ComputedLine:
    return ComputedLine(
        description=description,
        kind=LineKind.TAX,
        quantity=1,
        unit_amount=tax,
        amount=tax,
        tax_rate=rate,
        informational=informational,
    )


def compute_totals(
    lines: Sequence[LineDraft],
    currency: str,
    *,
    coupon: Coupon | None = None,
    tax_rate: TaxRate | None = None,
    reverse_charge: bool = False,
    customer_balance: int = 0,
) -> InvoiceTotals:
    """Compute an invoice's lines and totals (see the module docstring for the rules).

    ``customer_balance`` is the customer's credit in minor units (>= 0). ``reverse_charge`` (or a
    tax-exempt customer) yields a 0 tax line described "Reverse charge" whatever ``tax_rate`` is,
    and amounts are charged as given. Raises ``DomainError``: ``INVALID`` when an amount leaves
    +-MAX_AMOUNT, ``CURRENCY_MISMATCH`` for a fixed coupon in another currency.
    """
    code = normalize_currency(currency)
    _check_int(customer_balance, "customerBalance", 0, MAX_AMOUNT)

    subtotal = _check_bound(sum(line.amount for line in lines), "The subtotal", "lines")
    base = sum(line.amount for line in lines if line.discountable)
    discount = _discount(base, code, coupon) if coupon is not None else 0
    shares = _allocate(
        discount, [max(line.amount, 0) if line.discountable else 0 for line in lines]
    )

    computed = [
        ComputedLine(
            description=line.description,
            kind=line.kind,
            quantity=line.quantity,
            unit_amount=line.unit_amount,
            amount=line.amount,
            discount_amount=share,
            taxable=line.taxable,
            discountable=line.discountable,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for line, share in zip(lines, shares, strict=True)
    ]
    if coupon is not None:
        computed.append(
            ComputedLine(
                description=coupon.label,
                kind=LineKind.DISCOUNT,
                quantity=1,
                unit_amount=-discount,
                amount=-discount,
            )
        )

    tax_base = sum(line.net_amount for line in computed if line.taxable)
    tax, taxable_amount, inclusive = 0, tax_base, False
    if reverse_charge:
        suffix = f" ({tax_rate.name})" if tax_rate is not None else ""
        computed.append(tax_line(f"Reverse charge{suffix}", 0, 0, informational=False))
    elif tax_rate is not None:
        inclusive = tax_rate.inclusive
        if inclusive:
            taxable_amount = _round_div(tax_base * RATE_SCALE, RATE_SCALE + tax_rate.rate)
            tax = tax_base - taxable_amount
        else:
            tax = _round_div(tax_base * tax_rate.rate, RATE_SCALE)
        label = f"{tax_rate.name} {tax_rate.percent}%{' included' if inclusive else ''}"
        computed.append(tax_line(label, tax_rate.rate, tax, informational=inclusive))

    total = _check_bound(
        subtotal - discount + (0 if inclusive else tax), "The invoice total", "lines"
    )
    payable = max(total, 0)
    balance_applied = min(customer_balance, payable)
    return InvoiceTotals(
        currency=code,
        lines=tuple(computed),
        subtotal=subtotal,
        discount_total=discount,
        taxable_amount=taxable_amount,
        tax_total=tax,
        tax_inclusive=inclusive,
        total=total,
        balance_applied=balance_applied,
        amount_due=payable - balance_applied,
        credit_to_balance=max(-total, 0),
    )


def credited_tax(invoice_tax: int, invoice_amount: int, before: int, after: int) -> int:
    """The tax a credit note gives back when the amount credited on an invoice goes from
    ``before`` to ``after`` (net of tax for exclusive tax, gross for inclusive), given the
    invoice's ``invoice_tax`` on ``invoice_amount`` (its net total, or gross total).

    The tax credited so far is the invoice's tax in proportion to what was credited, rounded
    once on the cumulative amount; each note takes the difference. So notes in any number of
    pieces add up exactly to the invoice's tax once everything is credited, and never to more.
    """
    if invoice_amount <= 0 or invoice_tax == 0:
        return 0
    upto = min(max(after, 0), invoice_amount)
    done = min(max(before, 0), invoice_amount)
    return _round_div(invoice_tax * upto, invoice_amount) - _round_div(
        invoice_tax * done, invoice_amount
    )
