"""Money of plan changes and cancellations through the API, hand-computed to the minor unit.

Every scenario runs in April 2027, a 30-day period (Apr 1 00:00 to May 1 00:00 UTC), so "day n"
leaves (30 - n)/30 of it. Prorations round half to even; a credit for unused time is what the
rest of the period is worth by what was paid for it (paid invoice lines after their discount,
net of credits already given), never the list price.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.auth import Principal, Role
from app.core.errors import ProviderUnreachable
from app.core.settings import Settings
from app.organizations.policy import ProrationBehavior
from app.subscriptions.billing import ChargeOutcome, InvoicedBilling
from app.subscriptions.service import SubscriptionService
from tests.conftest import INVOICE_FIELDS
from tests.schema.test_coupons_api import APPLY, CREATE_COUPON
from tests.schema.test_customers_api import SET_CARD
from tests.schema.test_subscriptions_api import (
    CANCEL,
    CHANGE,
    advance,
    balances_of,
    current,
    invoices_of,
    iso,
    subscribe,
)
from tests.support import GraphQLClient, token

START = datetime(2027, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2027, 5, 1, tzinfo=UTC)
INVOICE = f"query($id: ID!) {{ invoice(id: $id) {{ {INVOICE_FIELDS} }} }}"
SETTINGS = """mutation($input: OrganizationSettingsUpdateInput!) {
  organizationSettingsUpdate(input: $input) {
    organization { endedSubscriptionInvoices } errors { field code message }
  }
}"""
DECLINING = "pm_card_chargeCustomerFail"  # attaches, then every charge is declined


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def usd(amount: int) -> list[dict[str, str]]:
    """A credit balance as ``creditBalances`` shows it."""
    return [{"amount": str(amount), "currency": "USD"}]


def lines_of(invoice: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(kind, amount, discount) of every line, in invoice order."""
    return [
        (line["kind"], int(line["amount"]["amount"]), int(line["discountAmount"]["amount"]))
        for line in invoice["lines"]
    ]


def periods_of(invoice: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["periodStart"][:10], line["periodEnd"][:10]) for line in invoice["lines"]]


async def invoice(admin: GraphQLClient, invoice_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await admin.data(INVOICE, {"id": invoice_id}))["invoice"]
    return found


async def change(client: GraphQLClient, subscription_id: str, **values: Any) -> dict[str, Any]:
    variables = {"input": {"id": subscription_id, "idempotencyKey": str(uuid.uuid4()), **values}}
    payload: dict[str, Any] = (await client.data(CHANGE, variables))["subscriptionChangePlan"]
    return payload


async def changed(client: GraphQLClient, subscription_id: str, **values: Any) -> dict[str, Any]:
    payload = await change(client, subscription_id, **values)
    assert payload["errors"] == [], payload["errors"]
    subscription: dict[str, Any] = payload["subscription"]
    return subscription


async def cancel(admin: GraphQLClient, subscription_id: str, **values: Any) -> dict[str, Any]:
    payload = (await admin.data(CANCEL, {"input": {"id": subscription_id, **values}}))[
        "subscriptionCancel"
    ]
    assert payload["errors"] == [], payload["errors"]
    subscription: dict[str, Any] = payload["subscription"]
    return subscription


async def set_card(admin: GraphQLClient, customer_id: str, method: str) -> None:
    done = await admin.data(
        SET_CARD, {"input": {"customerId": customer_id, "paymentMethodId": method}}
    )
    assert done["customerSetDefaultPaymentMethod"]["errors"] == []


async def half_off_forever(admin: GraphQLClient, customer: dict[str, Any]) -> None:
    made = (
        await admin.data(
            CREATE_COUPON,
            {
                "input": {
                    "code": f"HALF{uuid.uuid4().hex[:8].upper()}",
                    "name": "Half",
                    "duration": "FOREVER",
                    "percentOff": "50",
                }
            },
        )
    )["couponCreate"]
    assert made["errors"] == []
    applied = (
        await admin.data(
            APPLY, {"input": {"customerId": customer["id"], "couponId": made["coupon"]["id"]}}
        )
    )["couponApply"]
    assert applied["errors"] == []


@pytest.fixture
def customer_with_card(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> Callable[..., Any]:
    """A new customer paying with ``pm_card_visa``, and a client holding its customer token."""

    async def make() -> tuple[dict[str, Any], GraphQLClient]:
        customer: dict[str, Any] = await customer_factory()
        await set_card(admin, customer["id"], "pm_card_visa")
        return customer, GraphQLClient(http, token(settings, org, "customer", sub=customer["id"]))

    return make


@pytest.fixture
async def april(admin: GraphQLClient) -> None:
    await advance(admin, START)


# -- defect 1: credit comes from what was paid ------------------------------------------------


@pytest.mark.usefixtures("april")
async def test_five_flip_flops_at_once_mint_no_credit(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """Pay 19.99, change to a 1.00 plan (invoiced at once, by the customer), back without
    proration (staff), five times at the start of the period. The first change credits the
    19.99 paid and charges 1.00: 18.99 of credit, legitimately. Each later change can only
    credit the 1.00 plan's time that was paid (1.00) and charges 1.00 again: +0.00. Before,
    each cycle credited 19.99 again, 94.95 in all."""
    dear = await plan_factory(price={"amount": 1999, "currency": "USD"})
    cheap = await plan_factory(price={"amount": 100, "currency": "USD"})
    customer, me = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=dear["id"], trialDays=0)
    seen = []
    for _ in range(5):
        moved = await changed(me, sub["id"], planId=cheap["id"], prorationBehavior="ALWAYS_INVOICE")
        seen.append(lines_of(await invoice(admin, moved["latestInvoiceId"])))
        await changed(admin, sub["id"], planId=dear["id"], prorationBehavior="NONE")
        assert await balances_of(admin, customer["id"]) == usd(1899)
    first = [("PRORATION", -1999, 0), ("PRORATION", 100, 0)]
    again = [("PRORATION", -100, 0), ("PRORATION", 100, 0)]
    assert seen == [first, again, again, again, again]


@pytest.mark.usefixtures("april")
async def test_five_flip_flops_through_the_month_mint_no_credit(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """The same on days 5, 10, 15, 20, 25 (hand model in
    tests/app/subscriptions/test_service_value.py):

    | day | credit (from paid lines) | charge 1.00 x left | balance |
    |  5  | 1999 x 25/30 -> 1666     | 83                 | 15.83   |
    | 10  | 66                       | 67 (paid by 0.01)  | 15.82   |
    | 15  | 50                       | 50                 | 15.82   |
    | 20  | 34                       | 33                 | 15.83   |
    | 25  | 17                       | 17                 | 15.83   |

    The balance never exceeds the 16.66 paid for the unused time at the first change; before,
    the credits were 16.66, 13.33, 10.00, 6.66, 3.33 at 19.99 (47.48 of balance)."""
    dear = await plan_factory(price={"amount": 1999, "currency": "USD"})
    cheap = await plan_factory(price={"amount": 100, "currency": "USD"})
    customer, me = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=dear["id"], trialDays=0)
    seen, balances = [], []
    for n in (5, 10, 15, 20, 25):
        await advance(admin, day(n))
        moved = await changed(me, sub["id"], planId=cheap["id"], prorationBehavior="ALWAYS_INVOICE")
        billed = await invoice(admin, moved["latestInvoiceId"])
        assert billed["status"] == "PAID"
        seen.append([amount for _, amount, _ in lines_of(billed)])
        await changed(admin, sub["id"], planId=dear["id"], prorationBehavior="NONE")
        balances.append(await balances_of(admin, customer["id"]))
    assert seen == [[-1666, 83], [-66, 67], [-50, 50], [-34, 33], [-17, 17]]
    assert balances == [usd(1583), usd(1582), usd(1582), usd(1583), usd(1583)]


@pytest.mark.usefixtures("april")
async def test_flip_flops_in_yen(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """1980 yen paid. Day 10: to 980 yen, credit 1980 x 20/30 = 1320, charge 653.33 -> 653:
    667 yen of balance. Back without proration. Day 20: paid lines left: 660 - 660 (the credit,
    1320 x 10/20) + 326.5 -> 326 (the charge, 653 x 10/20, ties to even) = 326; charge 326.67
    -> 327: one yen is paid from the balance, 666 left. Before: 660 was credited (1000 yen of
    balance)."""
    dear = await plan_factory(price={"amount": 1980, "currency": "JPY"})
    cheap = await plan_factory(price={"amount": 980, "currency": "JPY"})
    customer, me = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=dear["id"], trialDays=0)
    seen, balances = [], []
    for n in (10, 20):
        await advance(admin, day(n))
        moved = await changed(me, sub["id"], planId=cheap["id"], prorationBehavior="ALWAYS_INVOICE")
        billed = await invoice(admin, moved["latestInvoiceId"])
        seen.append(([amount for _, amount, _ in lines_of(billed)], billed["total"]["amount"]))
        await changed(admin, sub["id"], planId=dear["id"], prorationBehavior="NONE")
        balances.append(await balances_of(admin, customer["id"]))
    assert seen == [([-1320, 653], "-667"), ([-326, 327], "1")]
    yen = [[{"amount": "667", "currency": "JPY"}], [{"amount": "666", "currency": "JPY"}]]
    assert balances == yen


@pytest.mark.usefixtures("april")
async def test_time_paid_at_the_old_price_is_not_credited_at_the_new_one(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """10.00 paid; day 10, upgrade to 30.00 without proration; day 20, back down, invoiced: the
    10 days left were paid at 10.00 (333.33 -> 3.33), not at 30.00 (10.00). Credit 3.33,
    charge 3.33: nothing to pay, no balance. Before: 6.67 of credit."""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, day(10))
    await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="NONE")
    await advance(admin, day(20))
    down = await changed(admin, sub["id"], planId=basic["id"], prorationBehavior="ALWAYS_INVOICE")
    billed = await invoice(admin, down["latestInvoiceId"])
    assert lines_of(billed) == [("PRORATION", -333, 0), ("PRORATION", 333, 0)]
    assert (billed["status"], billed["total"]["amount"]) == ("PAID", "0")
    assert await balances_of(admin, customer["id"]) == []


@pytest.mark.usefixtures("april")
async def test_an_upgrade_never_paid_is_never_credited(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """10.00 paid; day 10, an upgrade to 30.00 invoiced at once is declined (-6.67 + 20.00):
    the subscription is past due, so it cannot be changed again (before, it stayed active and a
    downgrade then credited 10.00 at 30.00 for time never paid). Canceled now on day 12: left
    of what was paid, 1000 x 18/30 = 600, minus the 6.67 credit already given on the open
    invoice, 667 x 18/20 = 600.3 -> 600: nothing, so no final invoice and no balance."""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await set_card(admin, customer["id"], DECLINING)
    await advance(admin, day(10))
    up = await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="ALWAYS_INVOICE")
    assert up["status"] == "PAST_DUE"
    unpaid = await invoice(admin, up["latestInvoiceId"])
    assert lines_of(unpaid) == [("PRORATION", -667, 0), ("PRORATION", 2000, 0)]
    assert unpaid["status"] == "OPEN"

    await advance(admin, day(11))
    down = await change(admin, sub["id"], planId=basic["id"], prorationBehavior="ALWAYS_INVOICE")
    assert [(e["code"], e["message"]) for e in down["errors"]] == [
        ("INVALID_STATE", "A past_due subscription cannot change plan.")
    ]
    await advance(admin, day(12))
    ended = await cancel(admin, sub["id"], atPeriodEnd=False)
    assert (ended["status"], ended["latestInvoiceId"]) == ("CANCELED", unpaid["id"])
    assert await balances_of(admin, customer["id"]) == []
    assert [i["status"] for i in await invoices_of(admin, customer["id"])] == ["PAID", "OPEN"]


@pytest.mark.usefixtures("april")
async def test_concurrent_changes_credit_what_was_paid_once(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """19.99 paid; two changes invoiced at once arrive together, to 1.00 and to 2.00. They run
    one after the other (the row lock), and the second reads the credit the first gave: the
    balance is what one order or the other gives (to 1.00 then 2.00: 18.99 - 1.00 = 17.99;
    to 2.00 then 1.00: 17.99 + 1.00 = 18.99), never a second 19.99."""
    dear = await plan_factory(price={"amount": 1999, "currency": "USD"})
    one = await plan_factory(price={"amount": 100, "currency": "USD"})
    two = await plan_factory(price={"amount": 200, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=dear["id"], trialDays=0)
    results = await asyncio.gather(
        *(
            change(admin, sub["id"], planId=plan["id"], prorationBehavior="ALWAYS_INVOICE")
            for plan in (one, two)
        )
    )
    assert [r["errors"] for r in results] == [[], []]
    final_plan = (await current(admin, sub["id"]))["plan"]["id"]
    balance, totals = {
        two["id"]: (1799, [-1899, 100, 1999]),  # -19.99 + 1.00, then -1.00 + 2.00
        one["id"]: (1899, [-1799, -100, 1999]),  # -19.99 + 2.00, then -2.00 + 1.00
    }[final_plan]
    assert await balances_of(admin, customer["id"]) == usd(balance)
    invoices = await invoices_of(admin, customer["id"])
    assert sorted(int(i["total"]["amount"]) for i in invoices) == totals


# -- defect 2: discounted customers ------------------------------------------------------------


@pytest.mark.usefixtures("april")
async def test_a_discounted_downgrade_credits_what_was_paid(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """50 % off forever: 50.00 paid for a 100.00 plan. Day 15, down to 20.00, invoiced at once:
    credit 50.00 x 15/30 = 25.00 (not discounted again), charge 20.00 x 15/30 = 10.00 less 50 %
    = 5.00: 20.00 to the credit balance (before: -50.00 + 10.00 = 40.00, the coupon lost)."""
    big = await plan_factory(price={"amount": 10000, "currency": "USD"})
    small = await plan_factory(price={"amount": 2000, "currency": "USD"})
    customer, _ = await customer_with_card()
    await half_off_forever(admin, customer)
    sub = await subscribe(admin, customerId=customer["id"], planId=big["id"], trialDays=0)
    (first,) = await invoices_of(admin, customer["id"])
    assert (first["total"]["amount"], lines_of(first)) == (
        "5000",
        [("SUBSCRIPTION", 10000, 5000), ("DISCOUNT", -5000, 0)],
    )
    await advance(admin, day(15))
    down = await changed(admin, sub["id"], planId=small["id"], prorationBehavior="ALWAYS_INVOICE")
    billed = await invoice(admin, down["latestInvoiceId"])
    assert lines_of(billed) == [
        ("PRORATION", -2500, 0),
        ("PRORATION", 1000, 500),
        ("DISCOUNT", -500, 0),
    ]
    assert (billed["status"], billed["total"]["amount"], billed["creditToBalance"]["amount"]) == (
        "PAID",
        "-2000",
        "2000",
    )
    assert await balances_of(admin, customer["id"]) == usd(2000)


@pytest.mark.usefixtures("april")
async def test_a_discounted_downgrade_at_renewal_keeps_the_months_discount(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """The same downgrade with CREATE_PRORATIONS: the May renewal has the 25.00 credit (not
    discountable), the 10.00 charge and May's 20.00, and 50 % off the 30.00 of charges:
    -25.00 + 30.00 - 15.00 = -10.00 (before: -50.00 + 10.00 + 20.00 = -20.00, May's discount
    lost because the credit took the discountable base below zero)."""
    big = await plan_factory(price={"amount": 10000, "currency": "USD"})
    small = await plan_factory(price={"amount": 2000, "currency": "USD"})
    customer, _ = await customer_with_card()
    await half_off_forever(admin, customer)
    sub = await subscribe(admin, customerId=customer["id"], planId=big["id"], trialDays=0)
    await advance(admin, day(15))
    await changed(admin, sub["id"], planId=small["id"], prorationBehavior="CREATE_PRORATIONS")
    await advance(admin, MAY_1 + timedelta(hours=1))
    renewal = await invoice(admin, (await current(admin, sub["id"]))["latestInvoiceId"])
    assert lines_of(renewal) == [
        ("PRORATION", -2500, 0),
        ("PRORATION", 1000, 500),
        ("SUBSCRIPTION", 2000, 1000),
        ("DISCOUNT", -1500, 0),
    ]
    assert (renewal["total"]["amount"], renewal["discountTotal"]["amount"]) == ("-1000", "1500")
    assert renewal["creditToBalance"]["amount"] == "1000"
    assert await balances_of(admin, customer["id"]) == usd(1000)


# -- defect 3: pending prorations when a subscription ends --------------------------------------


@pytest.mark.usefixtures("april")
async def test_pending_prorations_are_billed_when_it_ends_at_period_end(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """Day 10 (20/30 left), upgrade 10.00 -> 29.99 with CREATE_PRORATIONS, then cancel at
    period end: on May 1 a final invoice bills -6.67 + 19.99 = 13.32. The reverse downgrade
    credits 13.32 to the balance (-19.99 + 6.67). Before, both vanished."""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 2999, "currency": "USD"})
    up_customer, _ = await customer_with_card()
    down_customer, _ = await customer_with_card()
    up = await subscribe(admin, customerId=up_customer["id"], planId=basic["id"], trialDays=0)
    down = await subscribe(admin, customerId=down_customer["id"], planId=pro["id"], trialDays=0)
    await advance(admin, day(10))
    await changed(admin, up["id"], planId=pro["id"], prorationBehavior="CREATE_PRORATIONS")
    await changed(admin, down["id"], planId=basic["id"], prorationBehavior="CREATE_PRORATIONS")
    for sub in (up, down):
        await cancel(admin, sub["id"], atPeriodEnd=True)
    await advance(admin, MAY_1 + timedelta(hours=1))

    for sub, customer, lines, total in (
        (up, up_customer, [-667, 1999], 1332),
        (down, down_customer, [-1999, 667], -1332),
    ):
        ended = await current(admin, sub["id"])
        assert (ended["status"], ended["endedAt"]) == ("CANCELED", iso(MAY_1))
        _, final = await invoices_of(admin, customer["id"])
        assert ended["latestInvoiceId"] == final["id"]
        assert [amount for _, amount, _ in lines_of(final)] == lines
        assert periods_of(final) == [("2027-04-11", "2027-05-01")] * 2
        assert (final["status"], final["total"]["amount"]) == ("PAID", str(total))
    assert (await invoices_of(admin, up_customer["id"]))[1]["amountPaid"]["amount"] == "1332"
    assert await balances_of(admin, up_customer["id"]) == []
    assert await balances_of(admin, down_customer["id"]) == usd(1332)


@pytest.mark.usefixtures("april")
async def test_an_immediate_cancellation_settles_pending_lines_up_to_now(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """Day 10, upgrade 10.00 -> 29.99 with CREATE_PRORATIONS (pending: -6.67 and 19.99 for
    Apr 11 - May 1); day 20, cancel now. The charge is cut to the 10 days used: 19.99 -
    19.99 x 10/20 (9.995 -> 10.00, ties to even) = 9.99. Unused time: 3.33 left of the 10.00
    paid, minus 3.34 (6.67 x 10/20 = 3.335) already credited: nothing. Final invoice: -6.67 +
    9.99 = 3.32, charged. (Basic for 10 days 3.33 + Pro for 10 days 10.00 = 13.33 in all, paid
    10.00 + 3.32.)"""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 2999, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, day(10))
    await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="CREATE_PRORATIONS")
    await advance(admin, day(20))
    ended = await cancel(admin, sub["id"], atPeriodEnd=False)
    final = await invoice(admin, ended["latestInvoiceId"])
    assert lines_of(final) == [("PRORATION", -667, 0), ("PRORATION", 999, 0)]
    assert periods_of(final) == [("2027-04-11", "2027-05-01"), ("2027-04-11", "2027-04-21")]
    assert final["lines"][1]["description"].endswith(", until 2027-04-21 00:00:00 UTC")
    assert (final["status"], final["amountPaid"]["amount"]) == ("PAID", "332")
    await advance(admin, MAY_1 + timedelta(days=2))
    assert len(await invoices_of(admin, customer["id"])) == 2, "nothing more"


@pytest.mark.usefixtures("april")
async def test_an_immediate_cancellation_credits_what_was_paid_for_the_unused_time(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """50 % off forever, 50.00 paid for 100.00; canceled now on day 15: 25.00 to the credit
    balance (not 50.00). With prorate: false, nothing."""
    plan = await plan_factory(price={"amount": 10000, "currency": "USD"})
    customer, _ = await customer_with_card()
    other, _ = await customer_with_card()
    for who in (customer, other):
        await half_off_forever(admin, who)
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    kept = await subscribe(admin, customerId=other["id"], planId=plan["id"], trialDays=0)
    await advance(admin, day(15))
    ended = await cancel(admin, sub["id"], atPeriodEnd=False, reason="moving")
    final = await invoice(admin, ended["latestInvoiceId"])
    assert lines_of(final) == [("PRORATION", -2500, 0), ("DISCOUNT", 0, 0)]
    assert final["lines"][0]["description"].endswith("after 2027-04-16 00:00:00 UTC")
    assert (final["total"]["amount"], final["creditToBalance"]["amount"]) == ("-2500", "2500")
    assert await balances_of(admin, customer["id"]) == usd(2500)

    plain = await cancel(admin, kept["id"], atPeriodEnd=False, prorate=False)
    assert plain["status"] == "CANCELED"
    assert len(await invoices_of(admin, other["id"])) == 1
    assert await balances_of(admin, other["id"]) == []


# -- defect 4: a declined ALWAYS_INVOICE change ------------------------------------------------


@pytest.mark.usefixtures("april")
async def test_a_declined_change_goes_past_due_and_recovers_once_the_card_is_fixed(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """Staff upgrade 10.00 -> 30.00 on day 10, invoiced at once (13.33), declined: the change
    stands, PAST_DUE, retried on the dunning schedule (3 days after the failure). The card is
    fixed; the retry on Apr 14 pays it: ACTIVE, and May renews at 30.00. Never fixed: retries
    on Apr 14, 19 and 26 fail, then CANCELED and the invoice written off (UNCOLLECTIBLE)."""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    fixed, _ = await customer_with_card()
    never, _ = await customer_with_card()
    subs = []
    for customer in (fixed, never):
        sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
        await set_card(admin, customer["id"], DECLINING)
        subs.append(sub)
    await advance(admin, day(10))
    upgrades = []
    for sub in subs:
        up = await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="ALWAYS_INVOICE")
        assert (up["status"], up["plan"]["id"], up["nextRetryAt"]) == (
            "PAST_DUE",
            pro["id"],
            iso(day(13)),
        )
        billed = await invoice(admin, up["latestInvoiceId"])
        assert (billed["status"], billed["amountDue"]["amount"]) == ("OPEN", "1333")
        assert billed["lastPaymentError"]["code"] is not None
        upgrades.append(billed)

    await set_card(admin, fixed["id"], "pm_card_visa")
    await advance(admin, day(14))
    recovered = await current(admin, subs[0]["id"])
    assert (recovered["status"], recovered["dunningAttempts"], recovered["nextRetryAt"]) == (
        "ACTIVE",
        0,
        None,
    )
    assert recovered["currentPeriodEnd"] == iso(MAY_1)
    paid = await invoice(admin, upgrades[0]["id"])
    assert (paid["status"], paid["amountPaid"]["amount"]) == ("PAID", "1333")
    await advance(admin, MAY_1 + timedelta(hours=1))
    renewal = await invoice(admin, (await current(admin, subs[0]["id"]))["latestInvoiceId"])
    assert (lines_of(renewal), renewal["status"]) == ([("SUBSCRIPTION", 3000, 0)], "PAID")

    gave_up = await current(admin, subs[1]["id"])
    assert (gave_up["status"], gave_up["dunningAttempts"], gave_up["endedAt"]) == (
        "CANCELED",
        3,
        iso(day(25)),
    )
    written_off = await invoice(admin, upgrades[1]["id"])
    assert (written_off["status"], written_off["paymentAttempts"]) == ("UNCOLLECTIBLE", 4)


# -- line order ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("april")
async def test_renewal_lines_come_credits_first_then_charges_then_the_new_period(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """30.00 paid for April.
    Day 10, down to 10.00 (pending): credit 30.00 x 20/30 = 20.00, charge 6.67.
    Day 15, up to 30.00 at once: the pending 6.67 is cut to Apr 11-16: 6.67 - 6.67 x 15/20
    (5.0025 -> 5.00) = 1.67; left of what was paid: 15.00 - 15.00 (20.00 x 15/20) = 0, so no
    credit; charge 15.00, paid.
    Day 20, down to 10.00 (pending): left of what was paid: 10.00 - 10.00 + 10.00 (the 15.00 x
    10/15 paid on day 15) = 10.00 credited; charge 3.33.
    May 1: credits (-20.00 from Apr 11, -10.00 from Apr 21), charges (1.67 for Apr 11-16, 3.33
    from Apr 21), May's 10.00: -15.00 to the balance. April cost 20.00 in all (10 days at 30.00,
    5 at 10.00, 5 at 30.00, 10 at 10.00), paid 30.00 + 15.00 - 25.00."""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=pro["id"], trialDays=0)
    await advance(admin, day(10))
    await changed(admin, sub["id"], planId=basic["id"], prorationBehavior="CREATE_PRORATIONS")
    await advance(admin, day(15))
    up = await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="ALWAYS_INVOICE")
    now = await invoice(admin, up["latestInvoiceId"])
    assert (lines_of(now), now["status"]) == ([("PRORATION", 1500, 0)], "PAID")
    await advance(admin, day(20))
    await changed(admin, sub["id"], planId=basic["id"], prorationBehavior="CREATE_PRORATIONS")
    await advance(admin, MAY_1 + timedelta(hours=1))

    renewal = await invoice(admin, (await current(admin, sub["id"]))["latestInvoiceId"])
    assert lines_of(renewal) == [
        ("PRORATION", -2000, 0),
        ("PRORATION", -1000, 0),
        ("PRORATION", 167, 0),
        ("PRORATION", 333, 0),
        ("SUBSCRIPTION", 1000, 0),
    ]
    assert periods_of(renewal) == [
        ("2027-04-11", "2027-05-01"),
        ("2027-04-21", "2027-05-01"),
        ("2027-04-11", "2027-04-16"),
        ("2027-04-21", "2027-05-01"),
        ("2027-05-01", "2027-06-01"),
    ]
    assert (renewal["total"]["amount"], renewal["creditToBalance"]["amount"]) == ("-1500", "1500")
    assert await balances_of(admin, customer["id"]) == usd(1500)


# -- defect 5: invoices of ended subscriptions --------------------------------------------------


@pytest.mark.usefixtures("april")
async def test_dunning_cancellation_settles_pending_lines_and_voids_open_invoices(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_with_card: Callable[..., Any]
) -> None:
    """endedSubscriptionInvoices: VOID. 10.00 paid. Day 5, up to 30.00 (pending: -8.33 and
    25.00 from Apr 6). The card fails. Day 10, to 20.00 at once: the pending 25.00 is cut to
    Apr 6-11 (25.00 - 20.00 = 5.00); left of what was paid: 6.67 (10.00 x 20/30) - 6.66 (8.33 x
    20/25 = 6.664) = 0.01 credited; charge 13.33: 13.32 declined, PAST_DUE. Retries Apr 14, 19,
    26 fail: CANCELED on Apr 26; the final invoice settles the pending lines (-8.33 + 5.00:
    3.33 to the balance) and the unpaid invoice is voided."""
    settings = (await admin.data(SETTINGS, {"input": {"endedSubscriptionInvoices": "VOID"}}))[
        "organizationSettingsUpdate"
    ]
    assert (settings["errors"], settings["organization"]) == (
        [],
        {"endedSubscriptionInvoices": "VOID"},
    )
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    mid = await plan_factory(price={"amount": 2000, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, day(5))
    await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="CREATE_PRORATIONS")
    await set_card(admin, customer["id"], DECLINING)
    await advance(admin, day(10))
    moved = await changed(admin, sub["id"], planId=mid["id"], prorationBehavior="ALWAYS_INVOICE")
    assert moved["status"] == "PAST_DUE"
    unpaid = await invoice(admin, moved["latestInvoiceId"])
    assert (lines_of(unpaid), unpaid["amountDue"]["amount"]) == (
        [("PRORATION", -1, 0), ("PRORATION", 1333, 0)],
        "1332",
    )

    await advance(admin, day(27))
    ended = await current(admin, sub["id"])
    assert (ended["status"], ended["endedAt"], ended["dunningAttempts"]) == (
        "CANCELED",
        iso(day(25)),
        3,
    )
    final = await invoice(admin, ended["latestInvoiceId"])
    assert lines_of(final) == [("PRORATION", -833, 0), ("PRORATION", 500, 0)]
    assert periods_of(final) == [("2027-04-06", "2027-05-01"), ("2027-04-06", "2027-04-11")]
    assert (final["status"], final["creditToBalance"]["amount"]) == ("PAID", "333")
    voided = await invoice(admin, unpaid["id"])
    assert (voided["status"], voided["statusReason"]) == (
        "VOID",
        "The subscription was canceled after failed payments.",
    )
    assert await balances_of(admin, customer["id"]) == usd(333)
    statuses = sorted(i["status"] for i in await invoices_of(admin, customer["id"]))
    assert statuses == ["PAID", "PAID", "VOID"]


@pytest.mark.usefixtures("april")
async def test_canceling_an_incomplete_subscription_voids_its_first_invoice(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_factory: Callable[..., Any]
) -> None:
    plan = await plan_factory(price={"amount": 1000, "currency": "USD"})
    customer = await customer_factory()
    await set_card(admin, customer["id"], DECLINING)
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    assert sub["status"] == "INCOMPLETE"
    ended = await cancel(admin, sub["id"], atPeriodEnd=False)
    assert ended["status"] == "CANCELED"
    (first,) = await invoices_of(admin, customer["id"])
    assert (first["id"], first["status"], first["statusReason"]) == (
        sub["latestInvoiceId"],
        "VOID",
        "The subscription was canceled before its first payment.",
    )
    assert await balances_of(admin, customer["id"]) == []


# -- a request or a worker that dies before the final invoice ------------------------------------


class _Unreachable:
    """Billing that never gets an answer from Stripe (as if the process died there)."""

    async def bill(self, org: str, **_: Any) -> ChargeOutcome:
        raise ProviderUnreachable("charge the final invoice")

    async def issue(self, org: str, **_: Any) -> str:
        raise ProviderUnreachable("charge the final invoice")

    async def charge(self, org: str, **_: Any) -> ChargeOutcome:
        raise ProviderUnreachable("charge the final invoice")

    async def retry(self, org: str, **_: Any) -> ChargeOutcome:
        raise ProviderUnreachable("charge the final invoice")

    async def issued(self, org: str, **_: Any) -> str | None:
        return None


class _ChargeUnanswered:
    """Billing whose invoices are issued but whose charge gets no answer from Stripe."""

    def __init__(self, services: Any) -> None:
        self._real = InvoicedBilling(services.invoice_billing)

    async def issue(self, org: str, **values: Any) -> str:
        return await self._real.issue(org, **values)

    async def charge(self, org: str, **_: Any) -> ChargeOutcome:
        raise ProviderUnreachable("charge the invoice")

    async def bill(self, org: str, **_: Any) -> ChargeOutcome:
        raise ProviderUnreachable("charge the invoice")

    async def issued(self, org: str, **values: Any) -> str | None:
        return await self._real.issued(org, **values)


def _dying(services: Any, billing: Any = None) -> SubscriptionService:
    return SubscriptionService(
        services.db,
        clock=services.clock,
        plans=services.plans,
        billing=billing or _Unreachable(),
        invoices=services.invoices,
        keys=services.idempotency,
        lease=timedelta(0),
        organizations=services.organizations,
    )


@pytest.mark.usefixtures("april")
async def test_a_final_invoice_left_unbilled_is_billed_once_by_the_worker(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
    app_services: Any,
    org: str,
) -> None:
    """Canceled now on day 10 by a request that died after issuing the final invoice (30.00 x
    20/30 = 20.00 of credit, issued in the cancellation's transaction) and before billing it:
    the subscription is canceled, the credit given once, and the worker finishes the billing
    with the same key at its next step. Ending at period end, a worker that dies while billing
    the pending lines (-6.67 + 19.99) leaves them to the next one, which bills them once."""
    plan = await plan_factory(price={"amount": 3000, "currency": "USD"})
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 2999, "currency": "USD"})
    now_customer, _ = await customer_with_card()
    end_customer, _ = await customer_with_card()
    now_sub = await subscribe(admin, customerId=now_customer["id"], planId=plan["id"], trialDays=0)
    end_sub = await subscribe(admin, customerId=end_customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, day(10))
    await changed(admin, end_sub["id"], planId=pro["id"], prorationBehavior="CREATE_PRORATIONS")
    await cancel(admin, end_sub["id"], atPeriodEnd=True)

    dying = _dying(app_services, _ChargeUnanswered(app_services))
    ended = await dying.cancel(org, now_sub["id"], at_period_end=False, reason=None, feedback=None)
    assert ended.status.value == "canceled"
    assert ended.latest_invoice_id != (await invoices_of(admin, now_customer["id"]))[-1]["id"]
    await advance(admin, day(10) + timedelta(seconds=1))
    await advance(admin, day(11))
    _, final = await invoices_of(admin, now_customer["id"])
    assert (lines_of(final), final["creditToBalance"]["amount"]) == (
        [("PRORATION", -2000, 0)],
        "2000",
    )
    assert (await current(admin, now_sub["id"]))["latestInvoiceId"] == final["id"]
    assert await balances_of(admin, now_customer["id"]) == usd(2000)

    await app_services.clock.advance(org, MAY_1)
    with pytest.raises(ProviderUnreachable):
        await dying.process_due(org=org)
    assert len(await invoices_of(admin, end_customer["id"])) == 1
    assert (await current(admin, end_sub["id"]))["status"] == "ACTIVE"
    await advance(admin, MAY_1 + timedelta(days=1))
    ended_at_end = await current(admin, end_sub["id"])
    assert ended_at_end["status"] == "CANCELED"
    _, final = await invoices_of(admin, end_customer["id"])
    assert (lines_of(final), final["status"]) == (
        [("PRORATION", -667, 0), ("PRORATION", 1999, 0)],
        "PAID",
    )
    await advance(admin, MAY_1 + timedelta(days=40))
    assert len(await invoices_of(admin, now_customer["id"])) == 2
    assert len(await invoices_of(admin, end_customer["id"])) == 2


@pytest.mark.usefixtures("april")
async def test_a_change_whose_charge_gets_no_answer_is_left_to_dunning(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
    app_services: Any,
    org: str,
) -> None:
    """Upgrade 10.00 -> 30.00 on day 10, invoiced at once (13.33), and Stripe does not answer
    the charge: the change stands, PAST_DUE, and the dunning retry on Apr 14 charges it (the
    invoice is not lost open)."""
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    customer, _ = await customer_with_card()
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, day(10))
    principal = Principal(subject="staff", org=org, role=Role.ADMIN)
    moved = await _dying(app_services, _ChargeUnanswered(app_services)).change_plan(
        org,
        principal,
        sub["id"],
        plan_id=pro["id"],
        quantity=None,
        behavior=ProrationBehavior.ALWAYS_INVOICE,
        key=str(uuid.uuid4()),
    )
    assert (moved.status.value, moved.plan_id, moved.next_retry_at) == (
        "past_due",
        pro["id"],
        day(13),
    )
    assert moved.latest_invoice_id is not None
    unpaid = await invoice(admin, moved.latest_invoice_id)
    assert (lines_of(unpaid), unpaid["status"]) == (
        [("PRORATION", -667, 0), ("PRORATION", 2000, 0)],
        "OPEN",
    )
    await advance(admin, day(14))
    assert (await current(admin, sub["id"]))["status"] == "ACTIVE"
    paid = await invoice(admin, moved.latest_invoice_id)
    assert (paid["status"], paid["amountPaid"]["amount"]) == ("PAID", "1333")
