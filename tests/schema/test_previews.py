"""Previews answer what the mutation (or the worker) then does, and write nothing: the
upcoming invoice against the renewal the worker issues, and plan change, creation and
cancellation previews against the mutations run right after them with the same input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.settings import Settings
from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    CANCEL,
    CHANGE,
    CREATE,
    advance,
    current,
    paying_customer,
    subscribe,
)
from tests.schema.usage_support import event, lines_of, metric, record_batch
from tests.support import GraphQLClient, token

PREVIEW_INVOICE = """
  customerId subscriptionId currency subtotal { amount } discountTotal { amount }
  taxTotal { amount } total { amount } balanceApplied { amount } amountDue { amount }
  lines { kind description quantity amount { amount } periodStart periodEnd }
"""
UPCOMING = f"query($id: ID!) {{ upcomingInvoice(subscriptionId: $id) {{ {PREVIEW_INVOICE} }} }}"
PREVIEW_OUT = f"""{{
  preview {{
    subscription {{ status planId quantity currentPeriodStart currentPeriodEnd endedAt }}
    invoice {{ {PREVIEW_INVOICE} }}
    creditGranted {{ amount currency }}
    nextInvoice {{ {PREVIEW_INVOICE} }}
  }}
  errors {{ field message code }}
}}"""
CHANGE_PREVIEW = (
    "query($input: SubscriptionChangePlanInput!) "
    f"{{ subscriptionChangePreview(input: $input) {PREVIEW_OUT} }}"
)
CREATE_PREVIEW = (
    "query($input: SubscriptionCreateInput!) "
    f"{{ subscriptionCreatePreview(input: $input) {PREVIEW_OUT} }}"
)
CANCEL_PREVIEW = (
    "query($input: SubscriptionCancelInput!) "
    f"{{ subscriptionCancelPreview(input: $input) {PREVIEW_OUT} }}"
)
MAR_1 = datetime(2027, 3, 1, tzinfo=UTC)
COUNTS = """SELECT (SELECT count(*) FROM invoices WHERE organization_id = :org) AS invoices,
  (SELECT count(*) FROM invoice_lines WHERE organization_id = :org) AS lines,
  (SELECT count(*) FROM usage_charges WHERE organization_id = :org) AS usage,
  (SELECT count(*) FROM idempotency_keys WHERE organization_id = :org) AS keys,
  (SELECT count(*) FROM ledger_entries WHERE organization_id = :org) AS entries,
  (SELECT coalesce(max(last_number), 0) FROM document_counters
     WHERE organization_id = :org) AS numbers,
  (SELECT count(*) FROM subscription_pending_lines WHERE organization_id = :org) AS pending,
  (SELECT string_agg(id || status || plan_id || quantity, ',' ORDER BY id)
     FROM subscriptions WHERE organization_id = :org) AS subscriptions"""


async def counts(app_services: Any, org: str) -> dict[str, Any]:
    row = await app_services.db.fetch_one(COUNTS, {"org": org})
    return dict(row._mapping) if hasattr(row, "_mapping") else dict(row)


def shape(invoice: dict[str, Any]) -> dict[str, Any]:
    """What a preview and an issued invoice must have alike: amounts and lines."""
    keys = ("currency", "subtotal", "discountTotal", "taxTotal", "total", "amountDue")
    return {
        **{k: invoice[k] for k in keys},
        "lines": [
            (line["kind"], line["description"], line["amount"]["amount"], line["periodStart"])
            for line in invoice["lines"]
        ],
    }


async def test_the_upcoming_invoice_is_the_renewal_the_worker_issues(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    await metric(admin, code="calls", name="Calls", aggregation="COUNT")
    small = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        meteredPrices=[{"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"}],
    )
    large = await plan_factory(
        price={"amount": 3000, "currency": "USD"},
        meteredPrices=[{"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"}],
    )
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=small["id"])
    await advance(admin, datetime(2027, 3, 16, tzinfo=UTC))
    # A change on the next invoice (pending prorations) and some usage so far.
    changed = await admin.data(
        CHANGE,
        {
            "input": {
                "id": sub["id"],
                "planId": large["id"],
                "prorationBehavior": "CREATE_PRORATIONS",
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    assert changed["subscriptionChangePlan"]["errors"] == []
    calls = [event(f"c{n}", "calls", sub["id"], MAR_1 + timedelta(hours=n)) for n in range(37)]
    assert (await record_batch(admin, calls))["acceptedCount"] == 37

    before = await counts(app_services, org)
    upcoming = (await admin.data(UPCOMING, {"id": sub["id"]}))["upcomingInvoice"]
    assert await counts(app_services, org) == before  # nothing written, no number used
    kinds = [line["kind"] for line in upcoming["lines"]]
    assert kinds == ["PRORATION", "PRORATION", "SUBSCRIPTION", "USAGE"]
    assert upcoming["lines"][3]["amount"]["amount"] == "37"

    await advance(admin, datetime(2027, 4, 1, 1, tzinfo=UTC))
    full = await _full(admin, (await current(admin, sub["id"]))["latestInvoiceId"])
    assert shape(full) == shape(upcoming)


async def test_change_create_and_cancel_previews_equal_the_mutations(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 4500, "currency": "USD"})
    customer = await paying_customer()

    # Create: the preview's first invoice is the one the mutation issues.
    create_input = {"customerId": customer["id"], "planId": basic["id"]}
    before = await counts(app_services, org)
    preview = (
        await admin.data(
            CREATE_PREVIEW, {"input": {**create_input, "idempotencyKey": str(uuid.uuid4())}}
        )
    )["subscriptionCreatePreview"]
    assert preview["errors"] == []
    assert await counts(app_services, org) == before
    made = await subscribe(admin, **create_input)
    first = await lines_of(admin, made["latestInvoiceId"])
    full = await _full(admin, first["id"])
    assert shape(full) == shape(preview["preview"]["invoice"])
    assert preview["preview"]["subscription"]["status"] == made["status"] == "ACTIVE"
    assert preview["preview"]["nextInvoice"]["total"]["amount"] == "1000"

    # Change, invoiced at once: the same invoice, credit and state.
    await advance(admin, datetime(2027, 3, 11, tzinfo=UTC))
    change_input = {
        "id": made["id"],
        "planId": pro["id"],
        "quantity": 2,
        "prorationBehavior": "ALWAYS_INVOICE",
        "idempotencyKey": str(uuid.uuid4()),
    }
    before = await counts(app_services, org)
    previewed = (await admin.data(CHANGE_PREVIEW, {"input": change_input}))[
        "subscriptionChangePreview"
    ]["preview"]
    assert await counts(app_services, org) == before
    done = (await admin.data(CHANGE, {"input": change_input}))["subscriptionChangePlan"]
    assert done["errors"] == []
    changed = done["subscription"]
    assert (previewed["subscription"]["planId"], previewed["subscription"]["quantity"]) == (
        changed["plan"]["id"],
        changed["quantity"],
    )
    # The period after the change, not after the renewal the preview also computes.
    assert (
        previewed["subscription"]["currentPeriodStart"],
        previewed["subscription"]["currentPeriodEnd"],
    ) == (changed["currentPeriodStart"], changed["currentPeriodEnd"])
    change_invoice = await _full(admin, changed["latestInvoiceId"])
    assert shape(change_invoice) == shape(previewed["invoice"])
    credits = [
        -int(line["amount"]["amount"])
        for line in change_invoice["lines"]
        if line["kind"] == "PRORATION" and int(line["amount"]["amount"]) < 0
    ]
    assert previewed["creditGranted"] == {"amount": str(sum(credits)), "currency": "USD"}
    assert sum(credits) > 0
    assert previewed["nextInvoice"]["total"]["amount"] == "9000"

    # A refused change: the preview answers the mutation's errors.
    same = {**change_input, "idempotencyKey": str(uuid.uuid4())}
    refused = (await admin.data(CHANGE_PREVIEW, {"input": same}))["subscriptionChangePreview"]
    mutation = (await admin.data(CHANGE, {"input": same}))["subscriptionChangePlan"]
    assert refused["preview"] is None
    assert refused["errors"] == mutation["errors"] != []

    # Cancel now: the final invoice with the credit for the unused time.
    await advance(admin, datetime(2027, 3, 21, tzinfo=UTC))
    cancel_input = {"id": made["id"], "atPeriodEnd": False}
    previewed = (await admin.data(CANCEL_PREVIEW, {"input": cancel_input}))[
        "subscriptionCancelPreview"
    ]["preview"]
    assert previewed["subscription"]["status"] == "CANCELED"
    assert previewed["nextInvoice"] is None
    ended = (await admin.data(CANCEL, {"input": cancel_input}))["subscriptionCancel"]
    final = await _full(admin, ended["subscription"]["latestInvoiceId"])
    assert shape(final) == shape(previewed["invoice"])
    assert int(previewed["creditGranted"]["amount"]) == -sum(
        int(line["amount"]["amount"])
        for line in final["lines"]
        if int(line["amount"]["amount"]) < 0
    )
    assert (await admin.data(UPCOMING, {"id": made["id"]}))["upcomingInvoice"] is None


async def test_customers_preview_only_their_own_under_their_policy(
    admin: GraphQLClient,
    http: Any,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    await advance(admin, MAR_1)
    plan = await plan_factory(price={"amount": 1000, "currency": "USD"})
    other_plan = await plan_factory(price={"amount": 2000, "currency": "USD"})
    owner, stranger = await paying_customer(), await paying_customer()
    sub = await subscribe(admin, customerId=owner["id"], planId=plan["id"])
    as_owner = admin.as_(token(settings, org, "customer", sub=owner["id"]))
    as_stranger = admin.as_(token(settings, org, "customer", sub=stranger["id"]))
    assert (await as_owner.data(UPCOMING, {"id": sub["id"]}))["upcomingInvoice"] is not None
    assert (await as_stranger.data(UPCOMING, {"id": sub["id"]}))["upcomingInvoice"] is None
    change = {
        "id": sub["id"],
        "planId": other_plan["id"],
        "quantity": 5,  # over the customer policy's maximum (1)
        "idempotencyKey": str(uuid.uuid4()),
    }
    theirs = (await as_stranger.data(CHANGE_PREVIEW, {"input": change}))[
        "subscriptionChangePreview"
    ]
    assert [e["code"] for e in theirs["errors"]] == ["NOT_FOUND"]
    mine = (await as_owner.data(CHANGE_PREVIEW, {"input": change}))["subscriptionChangePreview"]
    mutation = (await as_owner.data(CHANGE, {"input": change}))["subscriptionChangePlan"]
    assert mine["errors"] == mutation["errors"]
    assert [e["code"] for e in mine["errors"]] == ["NOT_PERMITTED"]


async def _full(admin: GraphQLClient, invoice_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        await admin.data(
            f"query($id: ID!) {{ invoice(id: $id) {{ {PREVIEW_INVOICE} }} }}", {"id": invoice_id}
        )
    )["invoice"]
    return found


async def test_a_preview_cancelled_with_its_query_leaves_no_transaction_open(
    admin: GraphQLClient,
    app_services: Any,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811 - the fixture imported above
) -> None:
    """GraphQL cancels a query's other fields when a non-null one fails. A preview cancelled
    between its BEGIN and its ROLLBACK would leave its connection in a transaction, out of the
    pool (the CI run's fuzz test left three so, and the run could not close its pool); the dry
    run is now a shielded task of its own. The race is timing-dependent: this runs the shape
    that provokes it several times and checks that nothing is left open."""
    await advance(admin, MAR_1)
    plan = await plan_factory(price={"amount": 1000, "currency": "USD"})
    sub = await subscribe(admin, customerId=(await paying_customer())["id"], planId=plan["id"])
    previews = " ".join(
        f"p{n}: upcomingInvoice(subscriptionId: $id) {{ total {{ amount }} }}" for n in range(8)
    )
    # `slow` fails after a statement, while the previews are between BEGIN and ROLLBACK.
    query = (
        f"query($id: ID!) {{ {previews} "
        "slow: plans(first: 1) { totalCount } "
        "broken: plans(first: 0) { totalCount } }"
    )
    for _ in range(10):
        body = await admin(query, {"id": sub["id"]})
        assert body["data"] is None  # plans(first: 0) fails the whole (non-null) query
    stuck = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'idle in transaction'"
    )
    for _ in range(50):
        if await app_services.db.fetch_val(stuck) == 0:
            break
        await asyncio.sleep(0.1)
    assert await app_services.db.fetch_val(stuck) == 0
