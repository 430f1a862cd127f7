"""A month of usage billed by the worker on the test clock: metrics, a plan with metered
prices, events through the API (duplicates counted once), currentUsage, the renewal invoice
with its usage lines, then late usage (adjusted on the next invoice, or refused)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pypdf import PdfReader

from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    advance,
    current,
    paying_customer,
    subscribe,
)
from tests.schema.usage_support import (
    CURRENT_USAGE,
    RECORD,
    SETTINGS,
    USAGE,
    event,
    lines_of,
    metric,
    record_batch,
)
from tests.support import GraphQLClient

MAR_1 = datetime(2027, 3, 1, tzinfo=UTC)
APR_1 = datetime(2027, 4, 1, tzinfo=UTC)
MAY_1 = datetime(2027, 5, 1, tzinfo=UTC)


async def metered_plan(admin: GraphQLClient, plan_factory: Callable[..., Any]) -> dict[str, Any]:
    await metric(admin, code="api_calls", name="API calls", aggregation="COUNT")
    await metric(admin, code="storage_gb", name="Storage (GB)", aggregation="MAX")
    await metric(
        admin,
        code="seats",
        name="Active users",
        aggregation="UNIQUE_COUNT",
        property="user",
        filters=[{"property": "region", "values": ["eu", "us"]}],
    )
    plan: dict[str, Any] = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        creditsIncluded=0,
        meteredPrices=[
            {
                "metric": "api_calls",
                "model": "GRADUATED",
                "tiers": [
                    {"upTo": "1000", "unitPrice": "0"},
                    {"upTo": "10000", "unitPrice": "0.002"},
                    {"unitPrice": "0.001"},
                ],
            },
            {"metric": "storage_gb", "model": "PER_UNIT", "unitPrice": "0.5", "freeUnits": "10"},
            {"metric": "seats", "model": "PER_UNIT", "unitPrice": "3"},
        ],
    )
    return plan


async def test_a_month_of_usage_is_billed_with_the_renewal(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    plan = await metered_plan(admin, plan_factory)
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"])
    assert sub["status"] == "ACTIVE"
    # Events are not taken from the future (by the test clock): the month passes first.
    await advance(admin, datetime(2027, 3, 31, 23, tzinfo=UTC))

    # 1,500 API calls in two batches across the month, storage peaking at 25 GB, 3 users
    # (one of them twice, one in a region the metric does not count).
    calls = [
        event(f"call-{n}", "api_calls", sub["id"], MAR_1 + timedelta(minutes=29 * n))
        for n in range(1500)
    ]
    first = await record_batch(admin, calls[:1000])
    assert (first["acceptedCount"], first["duplicateCount"], first["refusedCount"]) == (1000, 0, 0)
    second = await record_batch(admin, calls[1000:])
    assert second["acceptedCount"] == 500
    storage = [
        event(f"gb-{n}", "storage_gb", sub["id"], MAR_1 + timedelta(days=n + 1), value=v)
        for n, v in enumerate(["5", "25", "12.5"])
    ]
    users = [
        event(f"u-{n}", "seats", sub["id"], MAR_1 + timedelta(days=2, hours=n), properties=p)
        for n, p in enumerate(
            [
                {"user": "ana", "region": "eu"},
                {"user": "bo", "region": "us"},
                {"user": "ana", "region": "eu"},
                {"user": "cy", "region": "apac"},
            ]
        )
    ]
    assert (await record_batch(admin, storage + users))["acceptedCount"] == 7

    # A replayed batch is counted once.
    replay = await record_batch(admin, calls[:1000])
    assert (replay["acceptedCount"], replay["duplicateCount"]) == (0, 1000)

    usage = (await admin.data(CURRENT_USAGE, {"id": sub["id"]}))["subscription"]["currentUsage"]
    by_code = {u["metric"]["code"]: u for u in usage}
    assert by_code["api_calls"]["quantity"] == "1500"
    assert by_code["api_calls"]["amount"] == {"amount": "100", "currency": "USD"}
    assert [
        (t["tier"], t["units"], t["amount"]["amount"]) for t in by_code["api_calls"]["tiers"]
    ] == [
        (1, "1000", "0"),
        (2, "500", "100"),
    ]
    assert (by_code["storage_gb"]["quantity"], by_code["storage_gb"]["amount"]["amount"]) == (
        "25",
        "750",
    )
    assert (by_code["seats"]["quantity"], by_code["seats"]["amount"]["amount"]) == ("2", "600")

    series = (
        await admin.data(
            USAGE,
            {
                "sub": sub["id"],
                "metric": "api_calls",
                "from": MAR_1.isoformat(),
                "to": APR_1.isoformat(),
                "groupBy": "DAY",
            },
        )
    )["usage"]
    assert series["total"] == "1500"
    assert sum(int(b["quantity"]) for b in series["buckets"]) == 1500
    assert series["buckets"][0] == {
        "start": MAR_1.isoformat(),
        "quantity": "50",  # one call every 29 minutes: 50 on the first day
        "events": 50,
    }

    # The renewal on April 1: the fixed price for April, March's usage in arrears.
    await advance(admin, APR_1 + timedelta(hours=1))
    renewed = await current(admin, sub["id"])
    assert renewed["status"] == "ACTIVE"
    invoice = await lines_of(admin, renewed["latestInvoiceId"])
    assert invoice["status"] == "PAID"
    usage_lines = [line for line in invoice["lines"] if line["kind"] == "USAGE"]
    assert [(line["amount"]["amount"], line["periodStart"]) for line in usage_lines] == [
        ("0", MAR_1.isoformat()),
        ("100", MAR_1.isoformat()),
        ("750", MAR_1.isoformat()),
        ("600", MAR_1.isoformat()),
    ]
    assert "API calls: tier 2" in usage_lines[1]["description"]
    assert "500 x 0.002 USD" in usage_lines[1]["description"]
    assert invoice["total"]["amount"] == str(1000 + 100 + 750 + 600)

    # Late usage (default ADJUST): 1,000 calls on March 30, received in April, go on the May
    # invoice as an adjustment naming March: tier 2 now holds 1,500 calls (300, not 100).
    late = [
        event(f"late-{n}", "api_calls", sub["id"], datetime(2027, 3, 30, tzinfo=UTC))
        for n in range(1000)
    ]
    late_batch = await record_batch(admin, late)
    assert late_batch["acceptedCount"] == 1000, late_batch["results"][:2]
    # An April event counts in April.
    april = event("april-1", "api_calls", sub["id"], APR_1 + timedelta(minutes=30))
    assert (await admin.data(RECORD, {"input": april}))["usageRecord"]["errors"] == []

    await advance(admin, MAY_1 + timedelta(hours=1))
    may = await lines_of(admin, (await current(admin, sub["id"]))["latestInvoiceId"])
    usage_lines = [line for line in may["lines"] if line["kind"] == "USAGE"]
    adjustments = [line for line in usage_lines if "adjustment" in line["description"]]
    assert [(a["amount"]["amount"], a["periodStart"]) for a in adjustments] == [
        ("200", MAR_1.isoformat())
    ]
    april_lines = [line for line in usage_lines if line["periodStart"] == APR_1.isoformat()]
    assert sum(int(line["amount"]["amount"]) for line in april_lines) == 0  # 1 call: tier 1

    # revenueStats: usage invoiced per period (April's invoice bills March's usage).
    stats = await admin.data(
        """query($from: DateTime!, $to: DateTime!) {
          revenueStats(from: $from, to: $to, interval: MONTH, currency: "USD") {
            buckets { start usageBilled { amount } } total { usageBilled { amount } }
          }
        }""",
        {"from": MAR_1.isoformat(), "to": (MAY_1 + timedelta(days=1)).isoformat()},
    )
    (usd,) = stats["revenueStats"]
    assert [b["usageBilled"]["amount"] for b in usd["buckets"]] == ["0", "1450", "200"]
    assert usd["total"]["usageBilled"]["amount"] == "1650"

    # With REFUSE, a late event is refused and nothing is recorded.
    refused = await admin.data(SETTINGS, {"input": {"lateUsage": "REFUSE"}})
    assert refused["organizationSettingsUpdate"]["organization"]["lateUsage"] == "REFUSE"
    too_late = event("too-late", "api_calls", sub["id"], datetime(2027, 4, 20, tzinfo=UTC))
    result = (await admin.data(RECORD, {"input": too_late}))["usageRecord"]
    assert result["result"]["status"] == "REFUSED"
    assert [e["code"] for e in result["errors"]] == ["USAGE_PERIOD_CLOSED"]
    # …and ADJUST again takes it: nothing was lost or counted twice.
    await admin.data(SETTINGS, {"input": {"lateUsage": "ADJUST"}})
    again = (await admin.data(RECORD, {"input": too_late}))["usageRecord"]
    assert again["result"]["status"] == "ACCEPTED"
    assert (await admin.data(RECORD, {"input": too_late}))["usageRecord"]["result"][
        "status"
    ] == "DUPLICATE"


async def test_the_final_invoice_bills_the_last_period_s_usage(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    await metric(admin, code="jobs", name="Build minutes", aggregation="SUM")
    plan = await plan_factory(
        price={"amount": 2000, "currency": "USD"},
        creditsIncluded=500,
        meteredPrices=[
            {"metric": "jobs", "model": "PACKAGE", "unitPrice": "2.5", "packageSize": 100}
        ],
    )
    ending = await subscribe(admin, customerId=(await paying_customer())["id"], planId=plan["id"])
    immediate = await subscribe(
        admin, customerId=(await paying_customer())["id"], planId=plan["id"]
    )
    await advance(admin, datetime(2027, 3, 16, tzinfo=UTC))
    events = [
        event(f"{sub['id']}-{n}", "jobs", sub["id"], MAR_1 + timedelta(days=n), value="150")
        for sub in (ending, immediate)
        for n in range(1, 10)  # 1,350 minutes: 14 blocks of 100 = 35.00, less 5.00 included
    ]
    assert (await record_batch(admin, events))["acceptedCount"] == 18

    # Canceled now: the final invoice bills the usage so far (with the unused time credited).
    canceled = await admin.data(
        "mutation($input: SubscriptionCancelInput!) { subscriptionCancel(input: $input) "
        "{ subscription { status latestInvoiceId } errors { code } } }",
        {"input": {"id": immediate["id"], "atPeriodEnd": False}},
    )
    final = await lines_of(admin, canceled["subscriptionCancel"]["subscription"]["latestInvoiceId"])
    usage_lines = [line for line in final["lines"] if line["kind"] == "USAGE"]
    assert [line["amount"]["amount"] for line in usage_lines] == ["3500", "-500"]
    assert usage_lines[0]["periodEnd"] == datetime(2027, 3, 16, tzinfo=UTC).isoformat()
    assert "14 x 2.5 USD" in usage_lines[0]["description"]
    # The PDF shows them.
    pdf = await http.get(
        f"/invoices/{final['id']}.pdf", headers={"authorization": f"Bearer {admin.bearer}"}
    )
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Build minutes" in text
    assert "Included usage credit" in text

    # Canceled at period end: the whole last period's usage goes on the final invoice.
    await admin.data(
        "mutation($input: SubscriptionCancelInput!) { subscriptionCancel(input: $input) "
        "{ errors { code } } }",
        {"input": {"id": ending["id"], "atPeriodEnd": True}},
    )
    late = event("last-day", "jobs", ending["id"], datetime(2027, 3, 16, tzinfo=UTC), value="50")
    assert (await admin.data(RECORD, {"input": late}))["usageRecord"]["errors"] == []
    await advance(admin, APR_1 + timedelta(hours=1))
    ended = await current(admin, ending["id"])
    assert ended["status"] == "CANCELED"
    last = await lines_of(admin, ended["latestInvoiceId"])
    assert [line["amount"]["amount"] for line in last["lines"] if line["kind"] == "USAGE"] == [
        "3500",  # 1,400 minutes: still 14 blocks
        "-500",
    ]
    # After the end, no event is taken for it.
    after = event("after", "jobs", ending["id"], APR_1 + timedelta(minutes=30), value="1")
    refused = (await admin.data(RECORD, {"input": after}))["usageRecord"]
    assert [e["code"] for e in refused["errors"]] == ["USAGE_PERIOD_CLOSED"]
