from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.catalog.terms import BASIS_POINTS, RATE_SCALE, Coupon, TaxRate
from app.core.errors import DomainError, ErrorCode
from app.core.money import MAX_AMOUNT, Money, format_decimal
from app.invoicing.math import InvoiceTotals, LineDraft, LineKind, compute_totals


def line(unit_amount: int, quantity: int = 1, *, taxable: bool = True) -> LineDraft:
    return LineDraft(
        f"Item {unit_amount}", quantity, unit_amount, LineKind.ONE_OFF, taxable=taxable
    )


def line_sum(totals: InvoiceTotals) -> int:
    return sum(item.amount for item in totals.lines if not item.informational)


def kinds(totals: InvoiceTotals) -> list[LineKind]:
    return [item.kind for item in totals.lines]


# --- exact outcomes -------------------------------------------------------------------------


def test_exclusive_twenty_percent_on_19_99_is_4_00() -> None:
    # 1999 * 200000 / 1000000 = 399.8 -> 400 cents.
    totals = compute_totals([line(1999)], "USD", tax_rate=TaxRate.parse("VAT", "20"))
    assert (totals.subtotal, totals.taxable_amount, totals.tax_total, totals.total) == (
        1999,
        1999,
        400,
        2399,
    )
    assert format_decimal(totals.tax_total, "USD") == "4.00"
    tax_line = totals.lines[-1]
    assert (tax_line.kind, tax_line.description, tax_line.amount) == (
        LineKind.TAX,
        "VAT 20%",
        400,
    )
    assert tax_line.tax_rate == 200_000
    assert not tax_line.informational
    assert totals.amount_due == 2399


def test_ties_round_away_from_zero_not_to_even() -> None:
    # 10 % of 125 = 12.5: half-up gives 13 where banker's rounding would give 12.
    rate = TaxRate.parse("GST", "10")
    assert compute_totals([line(125)], "USD", tax_rate=rate).tax_total == 13
    assert compute_totals([line(-125)], "USD", tax_rate=rate).tax_total == -13
    assert compute_totals([line(124)], "USD", tax_rate=rate).tax_total == 12
    coupon = Coupon(percent_off=5000)
    assert compute_totals([line(5)], "USD", coupon=coupon).discount_total == 3


def test_inclusive_tax_is_extracted_and_not_added() -> None:
    rate = TaxRate.parse("VAT", "20", inclusive=True)
    totals = compute_totals([line(1200)], "EUR", tax_rate=rate)
    assert (totals.taxable_amount, totals.tax_total, totals.total) == (1000, 200, 1200)
    # 1999 / 1.2 = 1665.83 -> net 1666, tax 333.
    totals = compute_totals([line(1999)], "EUR", tax_rate=rate)
    assert (totals.taxable_amount, totals.tax_total, totals.total) == (1666, 333, 1999)
    assert totals.tax_inclusive
    tax_line = totals.lines[-1]
    assert tax_line.informational
    assert tax_line.description == "VAT 20% included"
    assert line_sum(totals) == totals.total == 1999


def test_reverse_charge_gives_a_zero_tax_line() -> None:
    rate = TaxRate.parse("VAT", "20")
    totals = compute_totals([line(10_000)], "EUR", tax_rate=rate, reverse_charge=True)
    assert totals.tax_total == 0
    assert totals.total == 10_000
    tax_line = totals.lines[-1]
    assert (tax_line.kind, tax_line.amount, tax_line.tax_rate) == (LineKind.TAX, 0, 0)
    assert tax_line.description == "Reverse charge (VAT)"

    exempt = compute_totals([line(10_000)], "EUR", reverse_charge=True)
    assert exempt.lines[-1].description == "Reverse charge"
    assert exempt.lines[-1].amount == 0


def test_reverse_charge_ignores_an_inclusive_rate() -> None:
    rate = TaxRate.parse("VAT", "20", inclusive=True)
    totals = compute_totals([line(1200)], "EUR", tax_rate=rate, reverse_charge=True)
    assert (totals.tax_total, totals.total, totals.tax_inclusive) == (0, 1200, False)
    assert not totals.lines[-1].informational


def test_no_tax_rate_means_no_tax_line() -> None:
    totals = compute_totals([line(500)], "USD")
    assert kinds(totals) == [LineKind.ONE_OFF]
    assert (totals.tax_total, totals.total) == (0, 500)


def test_jpy_has_no_minor_digits() -> None:
    lines = [LineDraft("Seats", 3, 980, LineKind.SUBSCRIPTION), line(1234)]
    totals = compute_totals(
        lines, "jpy", coupon=Coupon(percent_off=1500), tax_rate=TaxRate.parse("JCT", "10")
    )
    # subtotal 4174; 15 % = 626.1 -> 626; base 3548; 10 % = 354.8 -> 355.
    assert totals.currency == "JPY"
    assert (totals.subtotal, totals.discount_total, totals.taxable_amount) == (4174, 626, 3548)
    assert (totals.tax_total, totals.total) == (355, 3903)
    assert format_decimal(totals.total, "JPY") == "3903"
    assert line_sum(totals) == totals.total


def test_kwd_has_three_minor_digits() -> None:
    totals = compute_totals([line(12_345, 2)], "KWD", tax_rate=TaxRate.parse("VAT", "5"))
    # 24.690 * 5 % = 1.2345 -> 1.235 (a tie, away from zero).
    assert (totals.subtotal, totals.tax_total, totals.total) == (24_690, 1235, 25_925)
    assert format_decimal(totals.total, "KWD") == "25.925"


def test_discount_is_allocated_by_largest_remainder() -> None:
    coupon = Coupon(amount_off=Money(100, "EUR"), name="Launch")
    totals = compute_totals([line(100), line(200), line(300)], "EUR", coupon=coupon)
    # Exact shares 16.67, 33.33, 50: the leftover cent goes to the largest fraction (0.67).
    assert [item.discount_amount for item in totals.lines[:3]] == [17, 33, 50]
    assert [item.net_amount for item in totals.lines[:3]] == [83, 167, 250]
    discount_line = totals.lines[3]
    assert (discount_line.kind, discount_line.description, discount_line.amount) == (
        LineKind.DISCOUNT,
        "Launch",
        -100,
    )
    assert totals.total == 500


def test_discount_skips_credit_lines_and_only_taxable_lines_are_taxed() -> None:
    lines = [line(1000), line(-400), line(1000, taxable=False)]
    totals = compute_totals(
        lines, "USD", coupon=Coupon(percent_off=1000), tax_rate=TaxRate.parse("Tax", "10")
    )
    # subtotal 1600, discount 160 split 80/0/80; taxable base 920 - 400 = 520; tax 52.
    assert [item.discount_amount for item in totals.lines[:3]] == [80, 0, 80]
    assert (totals.discount_total, totals.taxable_amount, totals.tax_total) == (160, 520, 52)
    assert totals.total == 1600 - 160 + 52
    assert totals.lines[3].description == "Discount (10%)"


def test_fixed_coupon_is_capped_at_the_subtotal() -> None:
    coupon = Coupon(amount_off=Money(5000, "USD"))
    totals = compute_totals([line(1500)], "USD", coupon=coupon, tax_rate=TaxRate.parse("T", "20"))
    assert (totals.discount_total, totals.tax_total, totals.total, totals.amount_due) == (
        1500,
        0,
        0,
        0,
    )


def test_no_discount_on_a_credit_invoice() -> None:
    totals = compute_totals([line(-700), line(200)], "USD", coupon=Coupon(percent_off=5000))
    assert totals.discount_total == 0
    assert totals.lines[-1].amount == 0
    assert (totals.total, totals.amount_due, totals.credit_to_balance) == (-500, 0, 500)


def test_fixed_coupon_in_another_currency_is_refused() -> None:
    coupon = Coupon(amount_off=Money(500, "EUR"))
    with pytest.raises(DomainError) as caught:
        compute_totals([line(1000)], "USD", coupon=coupon)
    assert caught.value.code is ErrorCode.CURRENCY_MISMATCH
    assert caught.value.field == ("coupon", "amountOff", "currency")
    assert caught.value.message == "The coupon is in EUR but the invoice is in USD."


def test_customer_balance_reduces_the_amount_due() -> None:
    partial = compute_totals([line(1000)], "USD", customer_balance=300)
    assert (partial.total, partial.balance_applied, partial.amount_due) == (1000, 300, 700)
    covered = compute_totals([line(1000)], "USD", customer_balance=5000)
    assert (covered.total, covered.balance_applied, covered.amount_due) == (1000, 1000, 0)
    assert covered.credit_to_balance == 0


def test_zero_quantity_lines_are_allowed_and_worth_nothing() -> None:
    totals = compute_totals([LineDraft("API calls", 0, 3, LineKind.USAGE)], "USD")
    assert totals.lines[0].amount == 0
    assert totals.total == 0


def test_empty_invoice_is_zero() -> None:
    totals = compute_totals([], "USD", coupon=Coupon(percent_off=100))
    assert (totals.subtotal, totals.total, totals.amount_due) == (0, 0, 0)


def test_periods_are_kept() -> None:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    draft = LineDraft("Pro", 1, 2900, LineKind.SUBSCRIPTION, period_start=start, period_end=end)
    computed = compute_totals([draft], "USD").lines[0]
    assert (computed.period_start, computed.period_end) == (start, end)


def test_overflowing_subtotal_is_invalid() -> None:
    with pytest.raises(DomainError) as caught:
        compute_totals([line(MAX_AMOUNT), line(1)], "USD")
    assert caught.value.code is ErrorCode.INVALID
    assert caught.value.field == ("lines",)


def test_overflowing_total_after_tax_is_invalid() -> None:
    with pytest.raises(DomainError) as caught:
        compute_totals([line(MAX_AMOUNT)], "USD", tax_rate=TaxRate.parse("T", "1"))
    assert caught.value.code is ErrorCode.INVALID


def test_overflowing_line_amount_is_invalid() -> None:
    with pytest.raises(DomainError) as caught:
        LineDraft("Big", 2, MAX_AMOUNT // 2 + 1, LineKind.ONE_OFF)
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID, ("unitAmount",))


@pytest.mark.parametrize(
    ("make", "code", "field"),
    [
        (lambda: LineDraft("x", -1, 100, LineKind.ONE_OFF), ErrorCode.INVALID, ("quantity",)),
        (lambda: LineDraft("x", True, 100, LineKind.ONE_OFF), ErrorCode.INVALID, ("quantity",)),
        (lambda: LineDraft(" ", 1, 100, LineKind.ONE_OFF), ErrorCode.REQUIRED, ("description",)),
        (lambda: LineDraft("x", 1, 100, LineKind.TAX), ErrorCode.INVALID, ("kind",)),
        (lambda: LineDraft("x", 1, 100, LineKind.DISCOUNT), ErrorCode.INVALID, ("kind",)),
        (
            lambda: LineDraft(
                "x",
                1,
                1,
                LineKind.SUBSCRIPTION,
                period_start=datetime(2025, 2, 1, tzinfo=UTC),
                period_end=datetime(2025, 1, 1, tzinfo=UTC),
            ),
            ErrorCode.INVALID,
            ("periodEnd",),
        ),
        (
            lambda: LineDraft("x", 1, 1, LineKind.USAGE, period_start=datetime(2025, 1, 1)),
            ErrorCode.INVALID,
            ("periodStart",),
        ),
        (lambda: Coupon(), ErrorCode.INVALID, ("percentOff",)),
        (
            lambda: Coupon(percent_off=10, amount_off=Money(1, "USD")),
            ErrorCode.INVALID,
            ("percentOff",),
        ),
        (lambda: Coupon(percent_off=0), ErrorCode.INVALID, ("percentOff",)),
        (lambda: Coupon(percent_off=BASIS_POINTS + 1), ErrorCode.INVALID, ("percentOff",)),
        (lambda: Coupon(amount_off=Money(0, "USD")), ErrorCode.INVALID, ("amountOff",)),
        (lambda: TaxRate("VAT", RATE_SCALE + 1), ErrorCode.INVALID, ("rate",)),
        (lambda: TaxRate("VAT", -1), ErrorCode.INVALID, ("rate",)),
        (lambda: TaxRate.parse("VAT", "8.87501"), ErrorCode.INVALID, ("rate",)),
        (lambda: TaxRate.parse("VAT", "abc"), ErrorCode.INVALID, ("rate",)),
        (lambda: TaxRate.parse("VAT", "NaN"), ErrorCode.INVALID, ("rate",)),
        (lambda: TaxRate.parse("VAT", "100.01"), ErrorCode.INVALID, ("rate",)),
        (lambda: compute_totals([], "XXX"), ErrorCode.UNKNOWN_CURRENCY, ("currency",)),
        (
            lambda: compute_totals([], "USD", customer_balance=-1),
            ErrorCode.INVALID,
            ("customerBalance",),
        ),
    ],
)
def test_invalid_input_is_a_domain_error(
    make: Callable[[], object], code: ErrorCode, field: tuple[str, ...]
) -> None:
    with pytest.raises(DomainError) as caught:
        make()
    assert (caught.value.code, caught.value.field) == (code, field)


@pytest.mark.parametrize(
    ("text", "rate", "label"),
    [("20", 200_000, "20"), ("8.875", 88_750, "8.875"), ("0", 0, "0"), ("7.0000", 70_000, "7")],
)
def test_tax_rate_parses_exactly(text: str, rate: int, label: str) -> None:
    parsed = TaxRate.parse("Tax", text)
    assert (parsed.rate, parsed.percent) == (rate, label)


# --- properties -----------------------------------------------------------------------------

currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD"])
drafts = st.builds(
    LineDraft,
    description=st.just("Line"),
    quantity=st.integers(0, 1000),
    unit_amount=st.integers(-(10**8), 10**9),
    kind=st.sampled_from([LineKind.SUBSCRIPTION, LineKind.PRORATION, LineKind.USAGE]),
    taxable=st.booleans(),
)
line_lists = st.lists(drafts, max_size=30)
coupons = st.one_of(
    st.none(),
    st.builds(Coupon, percent_off=st.integers(1, BASIS_POINTS)),
    st.integers(1, 10**12).map(lambda amount: Coupon(amount_off=Money(amount, "USD"))),
)
tax_rates = st.one_of(
    st.none(),
    st.builds(
        TaxRate, name=st.just("Tax"), rate=st.integers(0, RATE_SCALE), inclusive=st.booleans()
    ),
)


def usd_coupon_only(coupon: Coupon | None, currency: str) -> Coupon | None:
    if coupon is not None and coupon.amount_off is not None and currency != "USD":
        return Coupon(amount_off=Money(coupon.amount_off.amount, currency))
    return coupon


@given(
    lines=line_lists,
    currency=currencies,
    coupon=coupons,
    tax_rate=tax_rates,
    reverse_charge=st.booleans(),
    balance=st.integers(0, 10**10),
)
def test_total_is_the_exact_sum_of_its_lines(
    lines: list[LineDraft],
    currency: str,
    coupon: Coupon | None,
    tax_rate: TaxRate | None,
    reverse_charge: bool,
    balance: int,
) -> None:
    coupon = usd_coupon_only(coupon, currency)
    totals = compute_totals(
        lines,
        currency,
        coupon=coupon,
        tax_rate=tax_rate,
        reverse_charge=reverse_charge,
        customer_balance=balance,
    )
    assert totals.total == line_sum(totals)
    assert totals.subtotal == sum(item.quantity * item.unit_amount for item in lines)
    expected_tax = 0 if totals.tax_inclusive else totals.tax_total
    assert totals.total == totals.subtotal - totals.discount_total + expected_tax
    assert totals.amount_due + totals.balance_applied == max(totals.total, 0)
    assert 0 <= totals.balance_applied <= balance
    assert totals.amount_due >= 0
    assert totals.credit_to_balance == max(-totals.total, 0)
    if reverse_charge:
        assert totals.tax_total == 0


@given(lines=line_lists, currency=currencies, coupon=coupons)
def test_discount_allocation_sums_exactly(
    lines: list[LineDraft], currency: str, coupon: Coupon | None
) -> None:
    coupon = usd_coupon_only(coupon, currency)
    totals = compute_totals(lines, currency, coupon=coupon)
    given_lines = totals.lines[: len(lines)]
    assert sum(item.discount_amount for item in given_lines) == totals.discount_total
    assert sum(item.net_amount for item in given_lines) == totals.subtotal - totals.discount_total
    weight = sum(max(item.amount, 0) for item in given_lines)
    for item in given_lines:
        if item.amount <= 0:
            assert item.discount_amount == 0
        else:
            assert 0 <= item.discount_amount <= item.amount
            # Within one minor unit of the exact proportional share.
            exact = totals.discount_total * item.amount
            assert abs(item.discount_amount * weight - exact) < weight


@given(lines=line_lists, percent_off=st.integers(1, BASIS_POINTS))
def test_percentage_discount_never_exceeds_the_subtotal(
    lines: list[LineDraft], percent_off: int
) -> None:
    totals = compute_totals(lines, "USD", coupon=Coupon(percent_off=percent_off))
    assert 0 <= totals.discount_total <= max(totals.subtotal, 0)
    if totals.subtotal > 0:
        # Rounded to the nearest minor unit: off by at most half a unit.
        error = totals.discount_total * BASIS_POINTS - totals.subtotal * percent_off
        assert 2 * abs(error) <= BASIS_POINTS
    assert totals.total >= min(totals.subtotal, 0)


@given(lines=line_lists, rate=st.integers(0, RATE_SCALE), currency=currencies)
def test_inclusive_tax_plus_net_is_gross(lines: list[LineDraft], rate: int, currency: str) -> None:
    totals = compute_totals(lines, currency, tax_rate=TaxRate("VAT", rate, inclusive=True))
    gross = sum(item.amount for item in lines if item.taxable)
    assert totals.taxable_amount + totals.tax_total == gross
    assert totals.total == totals.subtotal
    # The net is the nearest minor unit to gross / (1 + rate).
    error = totals.taxable_amount * (RATE_SCALE + rate) - gross * RATE_SCALE
    assert 2 * abs(error) <= RATE_SCALE + rate


@given(lines=line_lists, rate=st.integers(0, RATE_SCALE))
def test_exclusive_tax_is_the_rounded_rate_of_the_base(lines: list[LineDraft], rate: int) -> None:
    totals = compute_totals(lines, "EUR", tax_rate=TaxRate("VAT", rate))
    base = sum(item.amount for item in lines if item.taxable)
    assert totals.taxable_amount == base
    assert 2 * abs(totals.tax_total * RATE_SCALE - base * rate) <= RATE_SCALE


@given(lines=line_lists, tax_rate=tax_rates)
def test_a_credit_note_mirrors_its_invoice(
    lines: list[LineDraft], tax_rate: TaxRate | None
) -> None:
    negated = [
        LineDraft(
            item.description, item.quantity, -item.unit_amount, item.kind, taxable=item.taxable
        )
        for item in lines
    ]
    invoice = compute_totals(lines, "USD", tax_rate=tax_rate)
    credit = compute_totals(negated, "USD", tax_rate=tax_rate)
    assert (credit.tax_total, credit.total) == (-invoice.tax_total, -invoice.total)


def test_a_coupon_leaves_lines_that_are_not_discountable_alone() -> None:
    """A credit for unused time is computed from what was paid after its own discount; the
    coupon of the invoice it lands on applies to the other lines only."""
    period = LineDraft("Pro, next month", 1, 10_000, LineKind.SUBSCRIPTION)
    credit = LineDraft("Unused time on Pro", 1, -2_500, LineKind.PRORATION, discountable=False)
    charge = LineDraft("Remaining time on Team", 1, 4_000, LineKind.PRORATION)
    totals = compute_totals([period, credit, charge], "USD", coupon=Coupon(percent_off=5_000))
    assert totals.discount_total == 7_000  # half of 100.00 + 40.00, the credit untouched
    assert [line.discount_amount for line in totals.lines[:3]] == [5_000, 0, 2_000]
    assert totals.total == 10_000 - 2_500 + 4_000 - 7_000
    # Only non-discountable lines: no discount at all, even on a positive total.
    alone = compute_totals(
        [LineDraft("Fee", 1, 1_000, LineKind.ONE_OFF, discountable=False)],
        "USD",
        coupon=Coupon(percent_off=5_000),
    )
    assert (alone.discount_total, alone.total) == (0, 1_000)
