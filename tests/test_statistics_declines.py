"""Every declined charge attempt is one failed payment, counted once at the moment it was
declined (by the organization's clock, in the requested time zone's days).

The defect: a renewal declined and then retried three times by dunning made four charges at
Stripe, but `failedPaymentCount` said 1, because it counted payments *now* failed and dunning
cancels the declined payment before it charges a new one. Declines are now events
(``payment_declines``), so they stay counted whatever the payment does afterwards, and counting
is keyed by the attempt, so a replayed or concurrent recording of one attempt counts once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.core.settings import Settings
from app.rollups.recorder import StatsRecorder
from app.subscriptions.billing import InvoicedBilling
from tests.conftest import CONFIRM_PAYMENT
from tests.schema.test_customers_api import stripe_card
from tests.stats_support import (
    DECLINES,
    REVENUE,
    SET_CARD,
    STATS,
    SUBSCRIBE,
    advance,
    assert_rollups_match_raw,
    iso,
    mutate,
)
from tests.support import GraphQLClient

DECLINING = "4000000000000341"  # attaches, declines every charge
SUBSCRIPTION = """query($id: ID!) {
  subscription(id: $id) { status dunningAttempts latestInvoiceId } }"""
CANCEL_PAYMENT = """mutation($input: PaymentCancelInput!) {
  paymentCancel(input: $input) { payment { id status } errors { code message } } }"""
REFRESH = """mutation($input: PaymentRefreshInput!) {
  paymentRefresh(input: $input) { payment { id status } errors { code message } } }"""


async def failed_per_day(
    admin: GraphQLClient, start: datetime, end: datetime, tz: str
) -> tuple[dict[str, int], int]:
    """The failed counts of the local days of ``tz`` with any (day -> count), and the total."""
    variables = {"from": iso(start), "to": iso(end), "interval": "DAY", "tz": tz}
    found = {c["currency"]: c for c in (await admin.data(REVENUE, variables))["revenueStats"]}
    if "USD" not in found:
        return {}, 0
    usd = found["USD"]
    days = {b["start"][:10]: b["failedPaymentCount"] for b in usd["buckets"]}
    return {d: n for d, n in days.items() if n}, usd["total"]["failedPaymentCount"]


async def declines(db: Any, org: str) -> list[tuple[str, str, datetime]]:
    """(payment, attempt, declined at) of every recorded decline, in time order."""
    rows = await db.fetch_all(DECLINES, {"org": org})
    return [(r["payment_id"], r["attempt_key"], r["declined_at"]) for r in rows]


async def test_a_renewal_declined_and_retried_three_times_counts_four_failed_payments(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    # 23:30 UTC is already the next day in Tokyo (UTC+9): the days differ by zone.
    start = datetime(2027, 1, 10, 23, 30, tzinfo=UTC)
    await advance(admin, start)
    plan = await plan_factory(price={"amount": 2500, "currency": "USD"}, interval="MONTH")
    customer = await customer_factory()
    await mutate(
        admin,
        SET_CARD,
        "customerSetDefaultPaymentMethod",
        customerId=customer["id"],
        paymentMethodId="pm_card_visa",
    )
    made = await mutate(
        admin,
        SUBSCRIBE,
        "subscriptionCreate",
        customerId=customer["id"],
        planId=plan["id"],
        trialDays=0,
    )
    subscription_id = made["subscription"]["id"]
    assert made["subscription"]["status"] == "ACTIVE"  # the first period is paid
    await mutate(
        admin,
        SET_CARD,
        "customerSetDefaultPaymentMethod",
        customerId=customer["id"],
        paymentMethodId=await stripe_card(settings, DECLINING),
    )

    # The renewal on 10 February is declined; dunning retries 3, 5 and 7 days after each failure.
    renewal = datetime(2027, 2, 10, 23, 30, tzinfo=UTC)
    expected = [renewal + timedelta(days=d) for d in (0, 3, 8, 15)]
    feb = (datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))
    await advance(admin, expected[1] + timedelta(minutes=1))
    subscription = (await admin.data(SUBSCRIPTION, {"id": subscription_id}))["subscription"]
    assert (subscription["status"], subscription["dunningAttempts"]) == ("PAST_DUE", 1)
    assert (await failed_per_day(admin, *feb, "UTC"))[1] == 2
    # Replaying dunning attempt 1 (a worker that crashed after charging runs the step again,
    # with the same key) returns its outcome and charges and counts nothing.
    invoice_id = subscription["latestInvoiceId"]
    billing = InvoicedBilling(app_services.invoice_billing)
    again = await billing.retry(org, invoice_id=invoice_id, key=f"{invoice_id}:retry:1")
    assert (again.paid, again.failure_code) == (False, "CARD_DECLINED")
    assert (await failed_per_day(admin, *feb, "UTC"))[1] == 2

    await advance(admin, expected[-1] + timedelta(minutes=1))
    subscription = (await admin.data(SUBSCRIPTION, {"id": subscription_id}))["subscription"]
    assert (subscription["status"], subscription["dunningAttempts"]) == ("CANCELED", 3)

    assert await failed_per_day(admin, *feb, "UTC") == (
        {"2027-02-10": 1, "2027-02-13": 1, "2027-02-18": 1, "2027-02-25": 1},
        4,
    )
    assert await failed_per_day(admin, *feb, "Asia/Tokyo") == (
        {"2027-02-11": 1, "2027-02-14": 1, "2027-02-19": 1, "2027-02-26": 1},
        4,
    )

    # Four charges at Stripe, each its own payment of the renewal's invoice: the first three
    # were canceled by the next attempt, the last is still failed. Each is one decline.
    assert subscription["latestInvoiceId"] == invoice_id
    payments = await app_services.db.fetch_all(
        "SELECT id, status, failed_at FROM payments WHERE organization_id = :org "
        "AND metadata->>'invoice_id' = :invoice ORDER BY created_at, id",
        {"org": org, "invoice": invoice_id},
    )
    assert [p["status"] for p in payments] == ["canceled", "canceled", "canceled", "failed"]
    recorded = await declines(app_services.db, org)
    assert [(p, at) for p, _, at in recorded] == list(
        zip([p["id"] for p in payments], expected, strict=True)
    )
    assert payments[-1]["failed_at"] == expected[-1]

    # Exact to the microsecond at the edges (read from the declines, not whole buckets).
    tick = timedelta(microseconds=1)
    assert (await failed_per_day(admin, expected[1], expected[2], "UTC"))[1] == 1
    assert (await failed_per_day(admin, expected[1] + tick, expected[2] + tick, "UTC"))[1] == 1
    assert (await failed_per_day(admin, expected[1] + tick, expected[2], "UTC"))[1] == 0

    # `stats`: the local day of the last retry, and the month of all four.
    stats = (await admin.data(STATS, {"tz": "Asia/Tokyo"}))["stats"]
    assert stats["failedPaymentsToday"] == 1
    (usd,) = stats["currencies"]
    assert (usd["today"]["failedPaymentCount"], usd["thisMonth"]["failedPaymentCount"]) == (1, 4)
    assert (usd["today"]["paymentCount"], usd["thisMonth"]["paymentCount"]) == (0, 0)

    await assert_rollups_match_raw(app_services.db, org)


async def test_a_confirmation_replayed_or_refreshed_counts_its_decline_once(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    payment_factory: Callable[..., Any],
) -> None:
    at = datetime(2027, 4, 2, 9, 0, tzinfo=UTC)
    await advance(admin, at)
    payment = await payment_factory(
        amount={"amount": 1200, "currency": "USD"},
        paymentMethodId=await stripe_card(settings, DECLINING),
    )
    confirm = {"input": {"paymentId": payment["id"], "idempotencyKey": f"c-{uuid.uuid4()}"}}
    for _ in range(3):  # the first declines; the same request again replays its answer
        answer = (await admin.data(CONFIRM_PAYMENT, confirm))["paymentIntentConfirm"]
        assert [e["code"] for e in answer["errors"]] == ["CARD_DECLINED"]
        assert answer["payment"]["status"] == "FAILED"
    for _ in range(2):  # reading it from Stripe again finds nothing new
        refreshed = await mutate(admin, REFRESH, "paymentRefresh", paymentId=payment["id"])
        assert refreshed["payment"]["status"] == "FAILED"
    day = (at - timedelta(hours=9), at + timedelta(hours=15))
    assert await failed_per_day(admin, *day, "UTC") == ({"2027-04-02": 1}, 1)
    ((payment_id, attempt, declined_at),) = await declines(app_services.db, org)
    assert (payment_id, declined_at) == (payment["id"], at)
    assert attempt.startswith("billing-")
    assert attempt.endswith("-confirm")
    await assert_rollups_match_raw(app_services.db, org)


async def test_a_decline_made_in_the_browser_counts_when_recorded_and_stays_when_canceled(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    payment_factory: Callable[..., Any],
) -> None:
    """Stripe.js confirms with a declining card (Stripe answers the browser, not us); the
    first refresh, a day later, records the decline: it counts then, once however often the
    payment is refreshed, and still after the payment is canceled."""
    first = datetime(2027, 5, 3, 12, 0, tzinfo=UTC)
    await advance(admin, first)
    payment = await payment_factory(
        amount={"amount": 3000, "currency": "USD"},
        paymentMethodId=await stripe_card(settings, DECLINING),
    )
    intent = payment["stripePaymentIntentId"]
    auth = {"authorization": f"Bearer {settings.stripe_api_key}"}
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "", headers=auth) as stripe:
        declined = await stripe.post(f"/v1/payment_intents/{intent}/confirm")
        assert declined.status_code == 402, declined.text
    await advance(admin, first + timedelta(days=1))
    for _ in range(2):
        refreshed = await mutate(admin, REFRESH, "paymentRefresh", paymentId=payment["id"])
        assert refreshed["payment"]["status"] == "FAILED"
    canceled = await mutate(
        admin,
        CANCEL_PAYMENT,
        "paymentCancel",
        paymentId=payment["id"],
        idempotencyKey=f"x-{uuid.uuid4()}",
    )
    assert canceled["payment"]["status"] == "CANCELED"

    days = (first - timedelta(hours=12), first + timedelta(days=1, hours=12))
    assert await failed_per_day(admin, *days, "UTC") == ({"2027-05-04": 1}, 1)
    ((_, attempt, at),) = await declines(app_services.db, org)
    assert (attempt.startswith("refresh-"), at) == (True, first + timedelta(days=1))
    await assert_rollups_match_raw(app_services.db, org)


async def test_the_same_attempt_recorded_again_or_concurrently_counts_once(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    payment_factory: Callable[..., Any],
) -> None:
    """The state machine records a status once (a conditional update); should the same
    transition reach the recorder again anyway — a replay, two workers at once — the attempt's
    key lets only one of them count."""
    at = datetime(2027, 6, 7, 15, 0, tzinfo=UTC)
    await advance(admin, at)
    payment = await payment_factory(
        amount={"amount": 700, "currency": "USD"},
        paymentMethodId=await stripe_card(settings, DECLINING),
    )
    confirm = {"input": {"paymentId": payment["id"], "idempotencyKey": f"c-{uuid.uuid4()}"}}
    await admin.data(CONFIRM_PAYMENT, confirm)
    db = app_services.db
    after = await db.fetch_one(
        "SELECT * FROM payments WHERE organization_id = :org AND id = :id",
        {"org": org, "id": payment["id"]},
    )
    ((_, attempt, _),) = await declines(db, org)
    # The row as the confirm's conditional update found it: in flight under that attempt.
    before = {**dict(after._mapping), "status": "requires_confirmation"}
    recorder = StatsRecorder(db)

    async def record(attempt: str) -> None:
        async with db.transaction():
            await recorder.payment_changed({**before, "operation_key": attempt}, after)

    await record(attempt)
    await asyncio.gather(*(record(attempt) for _ in range(5)))
    day = (at - timedelta(hours=15), at + timedelta(hours=9))
    assert await failed_per_day(admin, *day, "UTC") == ({"2027-06-07": 1}, 1)

    # Another attempt of the same payment (confirmed again after Stripe.js retried it) is
    # another decline.
    await record("billing-other-confirm")
    assert await failed_per_day(admin, *day, "UTC") == ({"2027-06-07": 2}, 2)
    await assert_rollups_match_raw(db, org)
