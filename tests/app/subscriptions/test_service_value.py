"""The value of the unused rest of a subscription's service, from what was paid: hand-computed
cases over a 30-day period (April 2027), and the identity with the list-price credit when a
period was paid in full without a discount."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.core.money import MAX_AMOUNT
from app.subscriptions.proration import prorate
from app.subscriptions.service_value import ServiceLine, Standing, counts, unused_value

START = datetime(2027, 4, 1, tzinfo=UTC)
END = datetime(2027, 5, 1, tzinfo=UTC)  # 30 days


def day(n: int) -> datetime:
    return START + timedelta(days=n)


def line(
    value: int, standing: Standing, start: datetime = START, end: datetime = END
) -> ServiceLine:
    return ServiceLine(value=value, period_start=start, period_end=end, standing=standing)


def test_a_paid_period_is_worth_its_remaining_share() -> None:
    paid = line(1999, Standing.PAID)
    assert unused_value([paid], day(10)) == 1333  # 1999 x 20/30 = 1332.67
    assert unused_value([paid], START) == 1999
    assert unused_value([paid], END) == 0
    assert unused_value([paid], END + timedelta(days=1)) == 0


def test_a_charge_counts_only_when_its_invoice_is_paid() -> None:
    for standing in (Standing.OPEN, Standing.UNCOLLECTIBLE, Standing.VOID):
        assert unused_value([line(3000, standing)], day(10)) == 0, standing
    assert counts(line(3000, Standing.PAID))
    assert counts(line(3000, Standing.PENDING))


def test_a_credit_already_given_counts_unless_its_invoice_is_void() -> None:
    # 10.00 paid for April; on Apr 11 an upgrade credited 6.67 for [Apr 11, May 1) on an invoice
    # whose charge was never paid. On Apr 21: 1000 x 10/30 = 333.33 -> 333 left of what was
    # paid, minus 667 x 10/20 = 333.5 -> 334 (ties to even) already credited: -1, so 0.
    paid = line(1000, Standing.PAID)
    unpaid_charge = line(2000, Standing.OPEN, day(10))
    for standing in (Standing.OPEN, Standing.PAID, Standing.UNCOLLECTIBLE):
        credit = line(-667, standing, day(10))
        assert unused_value([paid, credit, unpaid_charge], day(20)) == 0, standing
    voided = line(-667, Standing.VOID, day(10))
    assert unused_value([paid, voided, unpaid_charge], day(20)) == 333
    assert not counts(voided)


def test_pending_lines_count_whatever_their_sign() -> None:
    # Waiting for the renewal: a credit of 5.00 and a charge of 20.00 for [Apr 11, May 1);
    # on Apr 21 half of each is left: -250 + 1000.
    pending = [line(-500, Standing.PENDING, day(10)), line(2000, Standing.PENDING, day(10))]
    assert unused_value(pending, day(20)) == 750


def test_a_discounted_period_is_worth_what_was_paid_not_the_list_price() -> None:
    # 100.00 with 50 % off: the line's net value is 50.00; at mid-period 25.00 is left.
    assert unused_value([line(10000 - 5000, Standing.PAID)], day(15)) == 2500


def test_the_total_never_goes_below_zero() -> None:
    assert unused_value([line(-1000, Standing.PAID)], day(10)) == 0
    assert unused_value([], day(10)) == 0


def test_lines_are_prorated_over_their_own_period() -> None:
    # Before its start a line counts in full (max(t, start)); after its end, not at all; a
    # line of no length is skipped.
    later = line(700, Standing.PAID, day(10))
    assert unused_value([later], day(5)) == 700
    assert unused_value([later], day(20)) == 350  # 700 x 10/20
    assert unused_value([line(700, Standing.PAID, START, day(10))], day(10)) == 0
    assert unused_value([line(700, Standing.PAID, day(10), day(10))], day(5)) == 0
    next_period = line(2500, Standing.PENDING, END, END + timedelta(days=31))
    assert unused_value([next_period], day(29)) == 2500


def test_zero_decimal_and_three_decimal_currencies() -> None:
    assert unused_value([line(980, Standing.PAID)], day(10)) == 653  # JPY: 653.33 yen
    assert unused_value([line(10000, Standing.PAID)], day(10)) == 6667  # KWD 6.66667


def test_five_flip_flops_leave_only_the_value_of_the_cheaper_plan() -> None:
    """19.99 paid for April; on days 5, 10, 15, 20, 25 a change to a 1.00 plan invoiced at once
    (credit, charge; all paid), and back to 19.99 without proration. Each credit is worth the
    rest of the 1.00 plan, not of 19.99 (by hand, ties to even):

    day 5:  1999 x 25/30 = 1665.83 -> 1666;  charge 100 x 25/30 = 83.33 -> 83
    day 10: 1333 - 1333 (1666 x 20/25) + 66 (83 x 20/25 = 66.4)  = 66;   charge 67
    day 15: 1000 - 1000 + 50 - 50 (66 x 15/20 = 49.5 -> 50) + 50 (67 x 15/20 = 50.25) = 50
    day 20: 666 - 666 + 33 - 33 + 34 (67 x 10/20 = 33.5 -> 34) - 33 + 33 = 34;   charge 33
    day 25: 333 - 333 + 17 - 16 (66 x 5/20 = 16.5 -> 16) + 17 - 17 + 17 - 17 + 16 = 17
    """
    lines = [line(1999, Standing.PAID)]
    credits, charges = [], []
    for n in (5, 10, 15, 20, 25):
        credit = unused_value(lines, day(n))
        charge = prorate(100, START, END, day(n))
        credits.append(credit)
        charges.append(charge)
        lines += [line(-credit, Standing.PAID, day(n)), line(charge, Standing.PAID, day(n))]
    assert credits == [1666, 66, 50, 34, 17]
    assert charges == [83, 67, 50, 33, 17]
    # Credit balance after each cycle: 1583, 1582, 1582, 1583, 1583 (never more than the 16.66
    # paid for the unused time of the first change).
    balance, balances = 0, []
    for credit, charge in zip(credits, charges, strict=True):
        balance += credit - charge
        balances.append(balance)
    assert balances == [1583, 1582, 1582, 1583, 1583]


@given(
    amount=st.integers(0, MAX_AMOUNT),
    length=st.integers(1, 3 * 366 * 86400),
    data=st.data(),
)
def test_a_period_paid_in_full_is_worth_what_the_list_price_credit_was(
    amount: int, length: int, data: st.DataObject
) -> None:
    """Without a discount or an earlier change, the credit is exactly the one computed from the
    price before (``prorate(price x quantity)``): amounts that were right stay the same."""
    end = START + timedelta(seconds=length)
    at = START + timedelta(seconds=data.draw(st.integers(0, length)))
    paid = line(amount, Standing.PAID, START, end)
    assert unused_value([paid], at) == prorate(amount, START, end, at)
