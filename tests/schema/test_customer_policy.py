"""The customer self-service policy through the API: a customer token gets the plan's trial once
per plan family and nothing it chooses itself, stays within the organization's quantity limit,
pays for its plan changes (also when one ends its trial), pauses only when allowed; admin and
service tokens keep their overrides."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from app.core.settings import Settings
from tests.schema.test_customers_api import SET_CARD, stripe_card
from tests.schema.test_subscriptions_api import (
    CANCEL,
    CHANGE,
    CREATE,
    JAN_31,
    PAUSE,
    RESUME,
    advance,
    current,
    invoices_of,
    iso,
    subscribe,
)
from tests.support import GraphQLClient, token

ORGANIZATION = """{ organization {
  customerMaxQuantity customerProrationBehavior customerCanPause endedSubscriptionInvoices
  refundApprovalThresholds { amount currency }
} }"""
SETTINGS = """mutation($input: OrganizationSettingsUpdateInput!) {
  organizationSettingsUpdate(input: $input) {
    organization {
      customerMaxQuantity customerProrationBehavior customerCanPause endedSubscriptionInvoices
    }
    errors { field code message }
  }
}"""
FAMILY = "query($id: ID!) { plan(id: $id) { code family } }"
UPDATE_PLAN = """mutation($input: PlanUpdateInput!) {
  planUpdate(input: $input) { plan { code family } errors { field code message } }
}"""
SUBSCRIPTIONS = """query($customer: ID!) {
  subscriptions(filter: {customerId: $customer}) { totalCount edges { node { id status } } }
}"""


def key() -> str:
    return str(uuid.uuid4())


def errors_of(payload: dict[str, Any]) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["errors"]]


async def create(client: GraphQLClient, **values: Any) -> dict[str, Any]:
    data = await client.data(CREATE, {"input": {"idempotencyKey": key(), **values}})
    payload: dict[str, Any] = data["subscriptionCreate"]
    return payload


async def change(client: GraphQLClient, subscription_id: str, **values: Any) -> dict[str, Any]:
    variables = {"input": {"id": subscription_id, "idempotencyKey": key(), **values}}
    payload: dict[str, Any] = (await client.data(CHANGE, variables))["subscriptionChangePlan"]
    return payload


async def count_subscriptions(admin: GraphQLClient, customer_id: str) -> int:
    found = await admin.data(SUBSCRIPTIONS, {"customer": customer_id})
    return int(found["subscriptions"]["totalCount"])


async def set_policy(admin: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await admin.data(SETTINGS, {"input": values}))[
        "organizationSettingsUpdate"
    ]
    return payload


async def test_a_plan_family_defaults_to_its_code_and_can_be_shared(
    admin: GraphQLClient, plan_factory: Callable[..., Any]
) -> None:
    alone = await plan_factory(code="solo")
    shared = await plan_factory(code="pro-yearly", family=" pro ")
    assert (await admin.data(FAMILY, {"id": alone["id"]}))["plan"] == {
        "code": "solo",
        "family": "solo",
    }
    assert (await admin.data(FAMILY, {"id": shared["id"]}))["plan"]["family"] == "pro"
    bad = (await admin.data(UPDATE_PLAN, {"input": {"id": alone["id"], "family": "no spaces"}}))[
        "planUpdate"
    ]
    assert errors_of(bad) == [(["input", "family"], "INVALID")]
    moved = (await admin.data(UPDATE_PLAN, {"input": {"id": alone["id"], "family": "pro"}}))[
        "planUpdate"
    ]
    assert moved["plan"] == {"code": "solo", "family": "pro"}


@pytest.fixture
def customer_with_card(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> Callable[..., Any]:
    """A new customer with a card, and a client holding its customer token."""

    async def make(method: str = "pm_card_visa") -> tuple[dict[str, Any], GraphQLClient]:
        customer: dict[str, Any] = await customer_factory()
        done = await admin.data(
            SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": method}}
        )
        assert done["customerSetDefaultPaymentMethod"]["errors"] == []
        me = GraphQLClient(http, token(settings, org, "customer", sub=customer["id"]))
        return customer, me

    return make


async def test_a_customer_cannot_choose_its_trial_and_gets_the_plans_once_per_family(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> None:
    await advance(admin, JAN_31)
    no_trial = await plan_factory(price={"amount": 900, "currency": "USD"})
    pro = await plan_factory(code="pro-a", family="pro", trialDays=14)
    sibling = await plan_factory(
        code="pro-b", family="pro", trialDays=30, price={"amount": 2500, "currency": "USD"}
    )
    customer, me = await customer_with_card()

    refused = await create(me, customerId=customer["id"], planId=no_trial["id"], trialDays=730)
    assert refused["subscription"] is None
    assert errors_of(refused) == [(["input", "trialDays"], "NOT_PERMITTED")]
    assert refused["errors"][0]["message"] == (
        "A customer token cannot choose a trial: leave trialDays out to get the plan's trial "
        "(once per plan family) or send 0 for none."
    )
    assert await count_subscriptions(admin, customer["id"]) == 0, "nothing was written"

    first = await create(me, customerId=customer["id"], planId=pro["id"])
    assert first["errors"] == []
    trial = first["subscription"]
    assert (trial["status"], trial["trialStart"], trial["trialEnd"]) == (
        "TRIALING",
        iso(JAN_31),
        iso(JAN_31 + timedelta(days=14)),
    )
    ended = (await me.data(CANCEL, {"input": {"id": trial["id"], "atPeriodEnd": False}}))[
        "subscriptionCancel"
    ]
    assert ended["subscription"]["status"] == "CANCELED"

    # Same family, another plan, the first one canceled: no second trial; charged at once.
    again = await create(me, customerId=customer["id"], planId=sibling["id"])
    assert again["errors"] == []
    paid = again["subscription"]
    assert (paid["status"], paid["trialStart"], paid["trialEnd"]) == ("ACTIVE", None, None)
    (invoice,) = await invoices_of(admin, customer["id"])
    assert (invoice["status"], invoice["total"]["amount"]) == ("PAID", "2500")

    # Staff keep their overrides: a two-year trial on a plan without one, for the same customer.
    staff_trial = await subscribe(
        admin, customerId=customer["id"], planId=no_trial["id"], trialDays=730
    )
    assert staff_trial["trialEnd"] == iso(JAN_31 + timedelta(days=730))
    service = GraphQLClient(http, token(settings, org, "service"))
    backdated = await subscribe(
        service,
        customerId=customer["id"],
        planId=(await plan_factory(trialDays=5))["id"],
        startAt=iso(JAN_31 - timedelta(days=2)),
        trialDays=3,
        quantity=40,
    )
    assert (backdated["status"], backdated["trialEnd"], backdated["quantity"]) == (
        "TRIALING",
        iso(JAN_31 + timedelta(days=1)),
        40,
    )


async def test_a_customer_may_skip_the_trial_but_not_choose_its_start(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory(trialDays=14)
    customer, me = await customer_with_card()
    backdated = await create(
        me,
        customerId=customer["id"],
        planId=plan["id"],
        startAt=iso(JAN_31 - timedelta(days=300)),
    )
    assert errors_of(backdated) == [(["input", "startAt"], "NOT_PERMITTED")]
    assert await count_subscriptions(admin, customer["id"]) == 0
    skipped = await create(me, customerId=customer["id"], planId=plan["id"], trialDays=0)
    assert skipped["errors"] == []
    assert (skipped["subscription"]["status"], skipped["subscription"]["trialEnd"]) == (
        "ACTIVE",
        None,
    )


async def test_quantities_and_proration_within_the_organizations_limits(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
) -> None:
    await advance(admin, JAN_31)
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    top = await plan_factory(price={"amount": 90000, "currency": "USD"}, tier="ENTERPRISE")
    custom = await plan_factory(price={"amount": 1, "currency": "USD"}, tier="CUSTOM")
    customer, me = await customer_with_card()

    seats = await create(me, customerId=customer["id"], planId=basic["id"], quantity=2)
    assert errors_of(seats) == [(["input", "quantity"], "NOT_PERMITTED")]
    assert seats["errors"][0]["message"] == (
        "A customer token can subscribe to at most 1 unit; ask the organization for more."
    )
    deal = await create(me, customerId=customer["id"], planId=custom["id"])
    assert errors_of(deal) == [(["input", "planId"], "NOT_PERMITTED")]
    assert await count_subscriptions(admin, customer["id"]) == 0

    sub = (await create(me, customerId=customer["id"], planId=basic["id"]))["subscription"]
    assert (sub["status"], sub["quantity"]) == ("ACTIVE", 1)
    million = await change(me, sub["id"], planId=top["id"], quantity=1_000_000)
    assert errors_of(million) == [(["input", "quantity"], "NOT_PERMITTED")]
    for behavior in ("NONE", "CREATE_PRORATIONS"):
        free = await change(me, sub["id"], planId=top["id"], prorationBehavior=behavior)
        assert errors_of(free) == [(["input", "prorationBehavior"], "NOT_PERMITTED")], behavior
    assert (await current(admin, sub["id"]))["plan"]["id"] == basic["id"], "nothing changed"
    assert len(await invoices_of(admin, customer["id"])) == 1

    policy = await set_policy(admin, customerMaxQuantity=3)
    assert policy["errors"] == []
    three = await change(me, sub["id"], planId=top["id"], quantity=3)
    assert three["errors"] == []
    moved = three["subscription"]
    assert (moved["plan"]["id"], moved["quantity"], moved["status"]) == (top["id"], 3, "ACTIVE")
    # Omitted behavior: the organization's default for customers, ALWAYS_INVOICE, billed now.
    proration = (await invoices_of(admin, customer["id"]))[-1]
    assert proration["status"] == "PAID"
    assert sorted(int(line["amount"]["amount"]) for line in proration["lines"]) == [
        -1000,
        270000,
    ]

    # Staff keep their overrides: a million seats, not billed.
    staff = await change(
        admin, sub["id"], planId=basic["id"], quantity=1_000_000, prorationBehavior="NONE"
    )
    assert staff["errors"] == []
    assert staff["subscription"]["quantity"] == 1_000_000
    assert len(await invoices_of(admin, customer["id"])) == 2
    # The customer may keep or lower what staff gave, not raise it.
    fewer = await change(me, sub["id"], planId=basic["id"], quantity=999_999)
    assert fewer["errors"] == []


async def test_organization_policy_settings(admin: GraphQLClient) -> None:
    defaults = (await admin.data(ORGANIZATION))["organization"]
    assert defaults == {
        "customerMaxQuantity": 1,
        "customerProrationBehavior": "ALWAYS_INVOICE",
        "customerCanPause": False,
        "endedSubscriptionInvoices": "UNCOLLECTIBLE",
        "refundApprovalThresholds": [],
    }
    bad = await set_policy(
        admin,
        customerMaxQuantity=0,
        customerProrationBehavior="NONE",
        customerCanPause=True,
        endedSubscriptionInvoices="VOID",
        refundApprovalThresholds=[{"amount": 100, "currency": "USD"}],
    )
    assert bad["organization"] is None
    assert errors_of(bad) == [
        (["input", "customerMaxQuantity"], "INVALID"),
        (["input", "customerProrationBehavior"], "INVALID"),
    ]
    assert (await admin.data(ORGANIZATION))["organization"] == defaults, "nothing changed"
    good = await set_policy(
        admin, customerMaxQuantity=25, customerProrationBehavior="CREATE_PRORATIONS"
    )
    assert good["organization"] == {
        "customerMaxQuantity": 25,
        "customerProrationBehavior": "CREATE_PRORATIONS",
        "customerCanPause": False,
        "endedSubscriptionInvoices": "UNCOLLECTIBLE",
    }
    await set_policy(admin, customerCanPause=True, endedSubscriptionInvoices="VOID")
    after = (await admin.data(ORGANIZATION))["organization"]
    assert (
        after["customerMaxQuantity"],
        after["customerCanPause"],
        after["endedSubscriptionInvoices"],
    ) == (25, True, "VOID")
    await set_policy(admin, endedSubscriptionInvoices="UNCOLLECTIBLE")
    after = (await admin.data(ORGANIZATION))["organization"]
    assert (after["endedSubscriptionInvoices"], after["customerMaxQuantity"]) == (
        "UNCOLLECTIBLE",
        25,
    )


async def test_a_customer_changing_plan_in_a_trial_keeps_no_more_trial_than_the_new_plan(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
) -> None:
    await advance(admin, JAN_31)
    long_trial = await plan_factory(trialDays=14, price={"amount": 2500, "currency": "USD"})
    shorter = await plan_factory(trialDays=7, price={"amount": 3000, "currency": "USD"})
    longer = await plan_factory(trialDays=60, price={"amount": 3500, "currency": "USD"})
    no_trial = await plan_factory(trialDays=0, price={"amount": 4000, "currency": "USD"})
    customer, me = await customer_with_card()
    sub = (await create(me, customerId=customer["id"], planId=long_trial["id"]))["subscription"]
    await advance(admin, JAN_31 + timedelta(days=3))

    cut = (await change(me, sub["id"], planId=shorter["id"]))["subscription"]
    assert (cut["status"], cut["trialEnd"], cut["currentPeriodEnd"]) == (
        "TRIALING",
        iso(JAN_31 + timedelta(days=7)),
        iso(JAN_31 + timedelta(days=7)),
    )
    kept = (await change(me, sub["id"], planId=longer["id"]))["subscription"]
    assert kept["trialEnd"] == iso(JAN_31 + timedelta(days=7)), "never lengthened"
    assert await invoices_of(admin, customer["id"]) == []

    now = JAN_31 + timedelta(days=3)
    ended = await change(me, sub["id"], planId=no_trial["id"])
    assert ended["errors"] == []
    billed = ended["subscription"]
    assert (billed["status"], billed["trialEnd"]) == ("ACTIVE", iso(now))
    assert (billed["currentPeriodStart"], billed["currentPeriodEnd"]) == (
        iso(now),
        "2027-03-03T10:00:00+00:00",
    )
    (invoice,) = await invoices_of(admin, customer["id"])
    assert (invoice["status"], invoice["total"]["amount"]) == ("PAID", "4000")
    assert (invoice["periodStart"], invoice["subscriptionId"]) == (iso(now), sub["id"])
    await advance(admin, JAN_31 + timedelta(days=15))  # past the old trial ends
    assert len(await invoices_of(admin, customer["id"])) == 1, "billed once"
    assert (await current(admin, sub["id"]))["currentPeriodEnd"] == "2027-03-03T10:00:00+00:00"

    # Staff changes keep today's behaviour: the trial stays.
    other, _ = await customer_with_card()
    staff = await subscribe(admin, customerId=other["id"], planId=long_trial["id"])
    moved = (await change(admin, staff["id"], planId=no_trial["id"]))["subscription"]
    assert (moved["status"], moved["trialEnd"]) == ("TRIALING", staff["trialEnd"])


async def test_an_unpaid_upgrade_goes_past_due_not_free_whoever_made_it(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
    settings: Settings,
) -> None:
    await advance(admin, JAN_31)
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 5000, "currency": "USD"})
    declining = await stripe_card(settings, "4000000000000341")  # attaches, declines charges
    subs = {}
    for who in ("customer", "admin"):
        customer, me = await customer_with_card()
        sub = (await create(me, customerId=customer["id"], planId=basic["id"]))["subscription"]
        assert sub["status"] == "ACTIVE"
        await admin.data(
            SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": declining}}
        )
        client = me if who == "customer" else admin
        upgrade = await change(
            client, sub["id"], planId=pro["id"], prorationBehavior="ALWAYS_INVOICE"
        )
        assert upgrade["errors"] == []
        subs[who] = (customer, upgrade["subscription"])

    # Whoever made the change (a staff change too, since the unpaid change rule): dunning.
    for who in ("customer", "admin"):
        customer, after = subs[who]
        assert (after["status"], after["dunningAttempts"], after["nextRetryAt"]) == (
            "PAST_DUE",
            0,
            iso(JAN_31 + timedelta(days=3)),
        ), who
        assert after["plan"]["id"] == pro["id"], "the change stands"
        unpaid = (await invoices_of(admin, customer["id"]))[-1]
        assert (unpaid["id"], unpaid["status"]) == (after["latestInvoiceId"], "OPEN")


async def test_customers_pause_only_when_allowed_and_pay_for_the_period_they_resume_in(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_with_card: Callable[..., Any],
) -> None:
    start = datetime(2027, 4, 1, tzinfo=UTC)
    await advance(admin, start)
    plan = await plan_factory(price={"amount": 3000, "currency": "USD"})
    customer, me = await customer_with_card()
    sub = (await create(me, customerId=customer["id"], planId=plan["id"]))["subscription"]

    refused = (await me.data(PAUSE, {"input": {"id": sub["id"]}}))["subscriptionPause"]
    assert errors_of(refused) == [(["input", "id"], "NOT_PERMITTED")]
    staff_pause = (await admin.data(PAUSE, {"input": {"id": sub["id"]}}))["subscriptionPause"]
    assert staff_pause["subscription"]["status"] == "PAUSED"
    resume = (await me.data(RESUME, {"input": {"id": sub["id"]}}))["subscriptionResume"]
    assert errors_of(resume) == [(["input", "id"], "NOT_PERMITTED")]
    assert (await current(admin, sub["id"]))["status"] == "PAUSED"
    await admin.data(RESUME, {"input": {"id": sub["id"]}})

    assert (await set_policy(admin, customerCanPause=True))["errors"] == []
    later = iso(start + timedelta(days=20))
    timed = (await me.data(PAUSE, {"input": {"id": sub["id"], "resumesAt": later}}))[
        "subscriptionPause"
    ]
    assert errors_of(timed) == [(["input", "resumesAt"], "NOT_PERMITTED")]
    assert (await current(admin, sub["id"]))["status"] == "ACTIVE"

    await advance(admin, start + timedelta(days=9))
    paused = (await me.data(PAUSE, {"input": {"id": sub["id"]}}))["subscriptionPause"]
    assert paused["errors"] == []
    # May's period (31 days) begins while paused, without an invoice; resumed on May 11 with
    # 21 days left, the customer pays 21/31 of 30.00 = 20.32 first.
    await advance(admin, datetime(2027, 5, 11, tzinfo=UTC))
    assert len(await invoices_of(admin, customer["id"])) == 1
    resumed = (await me.data(RESUME, {"input": {"id": sub["id"]}}))["subscriptionResume"]
    assert resumed["errors"] == []
    assert (resumed["subscription"]["status"], resumed["subscription"]["currentPeriodEnd"]) == (
        "ACTIVE",
        "2027-06-01T00:00:00+00:00",
    )
    invoices = await invoices_of(admin, customer["id"])
    assert [(i["status"], i["total"]["amount"]) for i in invoices] == [
        ("PAID", "3000"),
        ("PAID", "2032"),
    ]
    # Paused and resumed within a period it already paid: nothing more to pay.
    await me.data(PAUSE, {"input": {"id": sub["id"]}})
    await advance(admin, datetime(2027, 5, 12, tzinfo=UTC))
    again = (await me.data(RESUME, {"input": {"id": sub["id"]}}))["subscriptionResume"]
    assert again["subscription"]["status"] == "ACTIVE"
    assert len(await invoices_of(admin, customer["id"])) == 2


# -- randomized: whatever a customer token sends ------------------------------------------------

_POOL = [  # (code, family, tier, trial days, price)
    ("alpha", "alpha", "PRO", 0, 1000),
    ("beta-1", "beta", "PRO", 14, 2000),
    ("beta-2", "beta", "PRO", 30, 2500),
    ("gamma", "gamma", "ENTERPRISE", 7, 9000),
    ("deal", "deal", "CUSTOM", 60, 10),
]
_LIMIT = 3
_FIELDS = """
  id status quantity price { amount } trialStart trialEnd plan { id }
"""
_CREATE = f"""mutation($input: SubscriptionCreateInput!) {{
  subscriptionCreate(input: $input) {{ subscription {{ {_FIELDS} }} errors {{ field code }} }}
}}"""
_CHANGE = f"""mutation($input: SubscriptionChangePlanInput!) {{
  subscriptionChangePlan(input: $input) {{ subscription {{ {_FIELDS} }} errors {{ field code }} }}
}}"""
_ALL = """query($customer: ID!) {
  subscriptions(filter: {customerId: $customer}) { edges { node { id quantity } } }
}"""


def _mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` about four times in five: enough accepted requests to check what they give."""
    return st.integers(0, 4).flatmap(lambda n: rare if n == 0 else usual)


_inputs = st.fixed_dictionaries(
    {
        "history": st.sampled_from([None, None, "alpha", "beta", "gamma"]),
        "plan": st.integers(0, len(_POOL) - 1),
        "quantity": _mostly(st.one_of(st.none(), st.integers(1, _LIMIT)), st.integers(-1, 9)),
        "trialDays": _mostly(st.sampled_from([None, None, 0]), st.integers(-3, 1000)),
        "startAt": _mostly(
            st.none(), st.integers(-400, 2).map(lambda d: JAN_31 + timedelta(days=d))
        ),
        "to": st.integers(0, len(_POOL) - 1),
        "toQuantity": _mostly(st.one_of(st.none(), st.integers(1, _LIMIT)), st.integers(-1, 9)),
        "behavior": _mostly(
            st.sampled_from([None, "ALWAYS_INVOICE"]),
            st.sampled_from(["NONE", "CREATE_PRORATIONS"]),
        ),
    }
)


@pytest.fixture
async def catalog(admin: GraphQLClient, plan_factory: Callable[..., Any]) -> list[dict[str, Any]]:
    await advance(admin, JAN_31)
    assert (await set_policy(admin, customerMaxQuantity=_LIMIT))["errors"] == []
    plans = []
    for code, family, tier, trial, price in _POOL:
        made = await plan_factory(
            code=code,
            family=family,
            tier=tier,
            trialDays=trial,
            price={"amount": price, "currency": "USD"},
        )
        plans.append({**made, "family": family})
    return plans


@examples(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=_inputs)
async def test_random_customer_inputs_never_get_more_than_the_catalog_and_policy_give(
    case: dict[str, Any],
    admin: GraphQLClient,
    catalog: list[dict[str, Any]],
    customer_with_card: Callable[..., Any],
) -> None:
    customer, me = await customer_with_card()
    used: set[str] = set()
    if case["history"] is not None:  # an earlier subscription in a family, ended since
        earlier = next(p for p in catalog if p["family"] == case["history"])
        made = await subscribe(admin, customerId=customer["id"], planId=earlier["id"], trialDays=0)
        await admin.data(CANCEL, {"input": {"id": made["id"], "atPeriodEnd": False}})
        used.add(case["history"])

    plan = catalog[case["plan"]]
    values: dict[str, Any] = {"customerId": customer["id"], "planId": plan["id"]}
    for name in ("quantity", "trialDays", "startAt"):
        if case[name] is not None:
            values[name] = iso(case[name]) if name == "startAt" else case[name]
    before = await admin.data(_ALL, {"customer": customer["id"]})
    created = (await me.data(_CREATE, {"input": {"idempotencyKey": key(), **values}}))[
        "subscriptionCreate"
    ]
    sub = created["subscription"]
    if sub is None:
        event("create refused")
        assert created["errors"] != []
        assert await admin.data(_ALL, {"customer": customer["id"]}) == before, "nothing written"
        return
    assert created["errors"] == []
    assert 1 <= sub["quantity"] <= _LIMIT
    assert sub["price"]["amount"] == str(_POOL[case["plan"]][4]), "the plan's price"
    assert plan["tier"] != "CUSTOM"
    offered = _POOL[case["plan"]][3]
    gets_trial = offered > 0 and plan["family"] not in used and case["trialDays"] is None
    event(f"created {sub['status']}")
    if gets_trial:
        assert (sub["status"], sub["trialStart"]) == ("TRIALING", iso(JAN_31))
        assert sub["trialEnd"] == iso(JAN_31 + timedelta(days=offered))
    else:
        assert (sub["trialStart"], sub["trialEnd"]) == (None, None)
    used.add(plan["family"])

    target = catalog[case["to"]]
    change_input: dict[str, Any] = {
        "id": sub["id"],
        "planId": target["id"],
        "idempotencyKey": key(),
    }
    if case["toQuantity"] is not None:
        change_input["quantity"] = case["toQuantity"]
    if case["behavior"] is not None:
        change_input["prorationBehavior"] = case["behavior"]
    moved = (await me.data(_CHANGE, {"input": change_input}))["subscriptionChangePlan"]
    after = moved["subscription"]
    if after is None:
        event("change refused")
        assert moved["errors"] != []
        assert await current(admin, sub["id"]) is not None
        assert (await current(admin, sub["id"]))["plan"]["id"] == plan["id"], "nothing changed"
        return
    assert moved["errors"] == []
    event(f"changed {sub['status']} -> {after['status']}")
    assert case["behavior"] in (None, "ALWAYS_INVOICE")
    assert 1 <= after["quantity"] <= _LIMIT
    assert after["price"]["amount"] == str(_POOL[case["to"]][4])
    assert target["tier"] != "CUSTOM" or target["id"] == plan["id"]
    if after["status"] == "TRIALING":
        assert sub["trialEnd"] is not None
        limit = JAN_31 + timedelta(days=_POOL[case["to"]][3])
        assert datetime.fromisoformat(after["trialEnd"]) <= min(
            datetime.fromisoformat(sub["trialEnd"]), limit
        )
        assert target["family"] == plan["family"] or target["family"] not in used - {plan["family"]}
    else:
        assert after["trialEnd"] in (None, iso(JAN_31)), "a trial cut short ends now"
