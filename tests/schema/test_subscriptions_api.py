"""Subscriptions through the API with the test clock: trials, a year of renewals, proration,
cancellation, pause, dunning. Charges go through the real invoicing and payments path."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from tests.conftest import INVOICE_FIELDS
from tests.schema.test_customers_api import SET_CARD, stripe_card
from tests.support import GraphQLClient, token

SUB_FIELDS = """
  id status quantity price { amount currency } periodAmount { amount }
  currentPeriodStart currentPeriodEnd trialStart trialEnd cancelAtPeriodEnd canceledAt endedAt
  cancelReason cancelFeedback pausedAt resumesAt dunningAttempts nextRetryAt latestInvoiceId
  customer { id } plan { id code }
"""
PAYLOAD = f"{{ subscription {{ {SUB_FIELDS} }} errors {{ field message code }} }}"
CREATE = (
    f"mutation($input: SubscriptionCreateInput!) {{ subscriptionCreate(input: $input) {PAYLOAD} }}"
)
CHANGE = (
    "mutation($input: SubscriptionChangePlanInput!) "
    f"{{ subscriptionChangePlan(input: $input) {PAYLOAD} }}"
)
CANCEL = (
    f"mutation($input: SubscriptionCancelInput!) {{ subscriptionCancel(input: $input) {PAYLOAD} }}"
)
PAUSE = (
    f"mutation($input: SubscriptionPauseInput!) {{ subscriptionPause(input: $input) {PAYLOAD} }}"
)
RESUME = (
    f"mutation($input: SubscriptionResumeInput!) {{ subscriptionResume(input: $input) {PAYLOAD} }}"
)
GET = f"query($id: ID!) {{ subscription(id: $id) {{ {SUB_FIELDS} }} }}"
ADVANCE = """mutation($to: DateTime!) {
  testClockAdvance(input: {to: $to}) { now steps errors { field message code } }
}"""
INVOICES = f"""query($customer: ID!) {{
  invoices(first: 100, filter: {{customerId: $customer}}) {{
    edges {{ node {{ {INVOICE_FIELDS} }} }}
  }}
}}"""

BALANCES = "query($id: ID!) { customer(id: $id) { creditBalances { amount currency } } }"

JAN_31 = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def advance(admin: GraphQLClient, to: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = (await admin.data(ADVANCE, {"to": iso(to)}))["testClockAdvance"]
    assert payload["errors"] == [], payload
    return payload


async def subscribe(admin: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload = (
        await admin.data(CREATE, {"input": {"idempotencyKey": str(uuid.uuid4()), **values}})
    )["subscriptionCreate"]
    assert payload["errors"] == [], payload
    subscription: dict[str, Any] = payload["subscription"]
    return subscription


async def current(admin: GraphQLClient, subscription_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await admin.data(GET, {"id": subscription_id}))["subscription"]
    return found


async def invoices_of(admin: GraphQLClient, customer_id: str) -> list[dict[str, Any]]:
    """The customer's invoices by period start, then in the order they were made."""
    edges = (await admin.data(INVOICES, {"customer": customer_id}))["invoices"]["edges"]
    return sorted((e["node"] for e in edges), key=lambda i: i["periodStart"] or "")


async def balances_of(admin: GraphQLClient, customer_id: str) -> list[dict[str, Any]]:
    found = await admin.data(BALANCES, {"id": customer_id})
    balances: list[dict[str, Any]] = found["customer"]["creditBalances"]
    return balances


@pytest.fixture
def paying_customer(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> Callable[..., Any]:
    async def make(method: str = "pm_card_visa") -> dict[str, Any]:
        customer: dict[str, Any] = await customer_factory()
        done = await admin.data(
            SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": method}}
        )
        assert done["customerSetDefaultPaymentMethod"]["errors"] == []
        return customer

    return make


async def test_a_trial_converts_when_it_ends(
    admin: GraphQLClient, plan_factory: Callable[..., Any], paying_customer: Callable[..., Any]
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory(trialDays=14, price={"amount": 2500, "currency": "USD"})
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"])
    assert sub["status"] == "TRIALING"
    assert sub["trialEnd"] == iso(JAN_31 + timedelta(days=14))
    assert await invoices_of(admin, customer["id"]) == []

    await advance(admin, JAN_31 + timedelta(days=13))
    assert (await current(admin, sub["id"]))["status"] == "TRIALING"
    await advance(admin, JAN_31 + timedelta(days=15))
    after = await current(admin, sub["id"])
    assert after["status"] == "ACTIVE"
    assert after["currentPeriodStart"] == iso(JAN_31 + timedelta(days=14))
    assert after["currentPeriodEnd"] == "2027-03-14T10:00:00+00:00"
    (invoice,) = await invoices_of(admin, customer["id"])
    assert (invoice["status"], invoice["total"]["amount"]) == ("PAID", "2500")
    assert invoice["subscriptionId"] == sub["id"]


async def test_a_year_of_monthly_renewals_from_january_31(
    admin: GraphQLClient, plan_factory: Callable[..., Any], paying_customer: Callable[..., Any]
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory(price={"amount": 1999, "currency": "USD"})
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    assert sub["status"] == "ACTIVE"
    assert sub["currentPeriodEnd"] == "2027-02-28T10:00:00+00:00"

    await advance(admin, datetime(2028, 1, 30, tzinfo=UTC))
    invoices = await invoices_of(admin, customer["id"])
    assert len(invoices) == 12
    assert all(i["status"] == "PAID" and i["total"]["amount"] == "1999" for i in invoices)
    ends = [i["periodEnd"][:10] for i in invoices]
    assert ends == [
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
        "2027-07-31",
        "2027-08-31",
        "2027-09-30",
        "2027-10-31",
        "2027-11-30",
        "2027-12-31",
        "2028-01-31",
    ]
    numbers = [i["number"] for i in invoices]
    assert len(set(numbers)) == 12
    after = await current(admin, sub["id"])
    assert (after["status"], after["currentPeriodEnd"]) == ("ACTIVE", "2028-01-31T10:00:00+00:00")


async def test_upgrade_and_downgrade_mid_period_prorate_to_the_second(
    admin: GraphQLClient, plan_factory: Callable[..., Any], paying_customer: Callable[..., Any]
) -> None:
    start = datetime(2027, 4, 1, tzinfo=UTC)  # a 30-day period: April
    await advance(admin, start)
    basic = await plan_factory(price={"amount": 3000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 9000, "currency": "USD"})
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, start + timedelta(days=10))  # 20 of 30 days left

    up = (
        await admin.data(
            CHANGE,
            {
                "input": {
                    "id": sub["id"],
                    "planId": pro["id"],
                    "prorationBehavior": "ALWAYS_INVOICE",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
    )["subscriptionChangePlan"]
    assert up["errors"] == []
    assert up["subscription"]["plan"]["id"] == pro["id"]
    invoices = await invoices_of(admin, customer["id"])
    proration = [i for i in invoices if any(line["kind"] == "PRORATION" for line in i["lines"])]
    (invoice,) = proration
    amounts = sorted(int(line["amount"]["amount"]) for line in invoice["lines"])
    assert amounts == [-2000, 6000]  # -2/3 of 30.00, +2/3 of 90.00
    assert invoice["total"]["amount"] == "4000"
    assert invoice["status"] == "PAID"

    await advance(admin, start + timedelta(days=20))  # 10 of 30 days left
    down = (
        await admin.data(
            CHANGE,
            {
                "input": {
                    "id": sub["id"],
                    "planId": basic["id"],
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
    )["subscriptionChangePlan"]
    assert down["errors"] == []
    # CREATE_PRORATIONS: the lines wait for the renewal invoice on May 1.
    assert len(await invoices_of(admin, customer["id"])) == 2
    await advance(admin, datetime(2027, 5, 1, 1, tzinfo=UTC))
    renewal = (await invoices_of(admin, customer["id"]))[-1]
    lines = sorted((line["kind"], int(line["amount"]["amount"])) for line in renewal["lines"])
    assert lines == [("PRORATION", -3000), ("PRORATION", 1000), ("SUBSCRIPTION", 3000)]
    assert renewal["total"]["amount"] == "1000"


async def test_cancel_at_period_end_and_its_undo(
    admin: GraphQLClient, plan_factory: Callable[..., Any], paying_customer: Callable[..., Any]
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    cancel = {"id": sub["id"], "atPeriodEnd": True, "reason": "too expensive", "feedback": "Meh."}
    done = (await admin.data(CANCEL, {"input": cancel}))["subscriptionCancel"]["subscription"]
    assert (done["status"], done["cancelAtPeriodEnd"], done["cancelFeedback"]) == (
        "ACTIVE",
        True,
        "Meh.",
    )
    undone = (await admin.data(RESUME, {"input": {"id": sub["id"]}}))["subscriptionResume"]
    assert undone["subscription"]["cancelAtPeriodEnd"] is False

    await admin.data(CANCEL, {"input": cancel})
    await advance(admin, datetime(2027, 3, 1, tzinfo=UTC))
    ended = await current(admin, sub["id"])
    assert (ended["status"], ended["endedAt"]) == ("CANCELED", "2027-02-28T10:00:00+00:00")
    assert len(await invoices_of(admin, customer["id"])) == 1  # no renewal was billed
    again = (await admin.data(RESUME, {"input": {"id": sub["id"]}}))["subscriptionResume"]
    assert [e["code"] for e in again["errors"]] == ["INVALID_STATE"]
    assert (await current(admin, sub["id"]))["status"] == "CANCELED"


async def test_immediate_cancellation_ends_access_now(
    admin: GraphQLClient, plan_factory: Callable[..., Any], paying_customer: Callable[..., Any]
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    done = (await admin.data(CANCEL, {"input": {"id": sub["id"], "atPeriodEnd": False}}))[
        "subscriptionCancel"
    ]["subscription"]
    assert (done["status"], done["endedAt"]) == ("CANCELED", iso(JAN_31))
    # Canceled the instant it was paid: the final invoice credits the whole period (19.99) to
    # the customer's credit balance.
    paid, final = await invoices_of(admin, customer["id"])
    assert (paid["total"]["amount"], done["latestInvoiceId"]) == ("1999", final["id"])
    assert [(line["kind"], line["amount"]["amount"]) for line in final["lines"]] == [
        ("PRORATION", "-1999")
    ]
    assert (final["status"], final["total"]["amount"], final["creditToBalance"]["amount"]) == (
        "PAID",
        "-1999",
        "1999",
    )
    assert await balances_of(admin, customer["id"]) == [{"amount": "1999", "currency": "USD"}]
    await advance(admin, datetime(2027, 6, 1, tzinfo=UTC))
    assert len(await invoices_of(admin, customer["id"])) == 2
    again = await admin.data(CANCEL, {"input": {"id": sub["id"], "atPeriodEnd": False}})
    assert [e["code"] for e in again["subscriptionCancel"]["errors"]] == ["INVALID_STATE"]

    # prorate: false ends it without the credit (no final invoice: nothing was pending).
    other = await paying_customer()
    kept = await subscribe(admin, customerId=other["id"], planId=plan["id"], trialDays=0)
    plain = {"id": kept["id"], "atPeriodEnd": False, "prorate": False}
    ended = (await admin.data(CANCEL, {"input": plain}))["subscriptionCancel"]["subscription"]
    assert ended["status"] == "CANCELED"
    assert [i["total"]["amount"] for i in await invoices_of(admin, other["id"])] == ["1999"]
    assert await balances_of(admin, other["id"]) == []


async def test_pause_skips_invoices_and_resume_bills_again(
    admin: GraphQLClient, plan_factory: Callable[..., Any], paying_customer: Callable[..., Any]
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    resumes = datetime(2027, 5, 15, tzinfo=UTC)
    paused = (await admin.data(PAUSE, {"input": {"id": sub["id"], "resumesAt": iso(resumes)}}))[
        "subscriptionPause"
    ]["subscription"]
    assert paused["status"] == "PAUSED"
    await advance(admin, datetime(2027, 5, 1, tzinfo=UTC))
    assert len(await invoices_of(admin, customer["id"])) == 1  # Feb, Mar, Apr periods skipped
    await advance(admin, datetime(2027, 6, 1, tzinfo=UTC))
    after = await current(admin, sub["id"])
    assert after["status"] == "ACTIVE"
    invoices = await invoices_of(admin, customer["id"])
    assert [i["periodStart"][:10] for i in invoices] == ["2027-01-31", "2027-05-31"]


async def test_dunning_moves_to_past_due_and_recovers(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],
    settings: Settings,
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    declining = await stripe_card(settings, "4000000000000341")  # attaches, declines charges
    await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": declining}}
    )

    await advance(admin, datetime(2027, 3, 1, tzinfo=UTC))
    due = await current(admin, sub["id"])
    assert (due["status"], due["dunningAttempts"]) == ("PAST_DUE", 0)
    assert due["nextRetryAt"] == "2027-03-03T10:00:00+00:00"  # failure on Feb 28 + 3 days
    await advance(admin, datetime(2027, 3, 4, tzinfo=UTC))
    assert (await current(admin, sub["id"]))["dunningAttempts"] == 1

    await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}}
    )
    await advance(admin, datetime(2027, 3, 10, tzinfo=UTC))  # retry 2 at Mar 8 succeeds
    recovered = await current(admin, sub["id"])
    assert (recovered["status"], recovered["dunningAttempts"]) == ("ACTIVE", 0)
    invoices = await invoices_of(admin, customer["id"])
    assert [i["status"] for i in invoices] == ["PAID", "PAID"]


async def test_dunning_ends_canceled_after_the_last_retry(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],
    settings: Settings,
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    declining = await stripe_card(settings, "4000000000000341")
    await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": declining}}
    )
    await advance(admin, datetime(2027, 4, 1, tzinfo=UTC))
    final = await current(admin, sub["id"])
    # Failed Feb 28, retried Mar 3, Mar 8, Mar 15: canceled after the third retry.
    assert (final["status"], final["dunningAttempts"], final["endedAt"]) == (
        "CANCELED",
        3,
        "2027-03-15T10:00:00+00:00",
    )
    invoices = await invoices_of(admin, customer["id"])
    # The organization's endedSubscriptionInvoices (default UNCOLLECTIBLE) closes the unpaid one.
    assert [i["status"] for i in invoices] == ["PAID", "UNCOLLECTIBLE"]
    assert invoices[1]["paymentAttempts"] == 4
    assert invoices[1]["statusReason"] == "The subscription was canceled after failed payments."


async def test_first_charge_failure_leaves_it_incomplete_then_expired(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],
    settings: Settings,
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    customer = await paying_customer(await stripe_card(settings, "4000000000000341"))
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=0)
    assert sub["status"] == "INCOMPLETE"
    await advance(admin, JAN_31 + timedelta(hours=24))
    assert (await current(admin, sub["id"]))["status"] == "INCOMPLETE_EXPIRED"
    # It never started: its first invoice is void, whatever the organization's setting.
    (invoice,) = await invoices_of(admin, customer["id"])
    assert (invoice["status"], invoice["statusReason"]) == (
        "VOID",
        "The subscription expired before its first payment.",
    )


async def test_lifecycle_errors_are_payload_errors(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory()
    one_time = await plan_factory(interval="ONE_TIME")
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"], trialDays=3)
    key = str(uuid.uuid4())
    duplicate = (
        await admin.data(
            CREATE,
            {"input": {"customerId": customer["id"], "planId": plan["id"], "idempotencyKey": key}},
        )
    )["subscriptionCreate"]
    assert [(e["field"], e["code"]) for e in duplicate["errors"]] == [
        (["input", "planId"], "DUPLICATE")
    ]
    for plan_id, code in [(one_time["id"], "INVALID"), ("plan_missing", "NOT_FOUND")]:
        bad = (
            await admin.data(
                CREATE,
                {
                    "input": {
                        "customerId": customer["id"],
                        "planId": plan_id,
                        "idempotencyKey": str(uuid.uuid4()),
                    }
                },
            )
        )["subscriptionCreate"]
        assert [e["code"] for e in bad["errors"]] == [code]
    pause_twice = await admin.data(PAUSE, {"input": {"id": sub["id"]}})
    assert pause_twice["subscriptionPause"]["errors"] == []
    again = await admin.data(PAUSE, {"input": {"id": sub["id"]}})
    assert [e["code"] for e in again["subscriptionPause"]["errors"]] == ["INVALID_STATE"]
    assert (await current(admin, sub["id"]))["status"] == "PAUSED"

    other = await paying_customer()
    stranger = GraphQLClient(http, token(settings, org, "customer", sub=other["id"]))
    assert (await stranger.data(GET, {"id": sub["id"]}))["subscription"] is None
    refused = await stranger.data(CANCEL, {"input": {"id": sub["id"], "atPeriodEnd": False}})
    assert [e["code"] for e in refused["subscriptionCancel"]["errors"]] == ["NOT_FOUND"]
    backwards = await admin.data(ADVANCE, {"to": iso(JAN_31 - timedelta(days=1))})
    assert [e["code"] for e in backwards["testClockAdvance"]["errors"]] == ["INVALID"]
