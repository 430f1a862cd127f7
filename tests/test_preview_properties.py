"""Property test of the previews (issue 18): on random subscriptions, a preview equals what the
mutation or the worker then does, through the GraphQL API.

Each example is a fresh organization (its own test clock) starting on a drawn day of 2032, with
drawn customer-policy settings, tax rates for France (20 %, exclusive), Germany (19 %,
inclusive) and California (8.875 %, exclusive), two or three monthly plans at drawn prices in
one currency (USD, or JPY, which has no minor unit), some with a trial, and one or two
customers paying with ``pm_card_visa`` (previews assume the charge succeeds), each with an
address in one of those jurisdictions, in an untaxed one, or none. Then 10 to 16 steps:

* compared: ``subscriptionCreate`` (1-3 seats; the plan's trial, none or 5 days; now and then
  back-dated), ``subscriptionChangePlan`` (CREATE_PRORATIONS, ALWAYS_INVOICE, NONE or the
  default; other plan and quantity) and ``subscriptionCancel(atPeriodEnd: false, prorate)`` —
  by the admin or, one time in four, the customer's own token (whose policy refuses some);
* compared: the renewal — ``upcomingInvoice`` of the subscription due first, then the clock
  moved just past its period end, and the invoice the worker issued;
* not compared, to reach more states: coupons (percent or amount off; once, repeating,
  forever), credit to the balance (a credit note to the balance on a paid invoice, or a
  credit-only one-off invoice), cancel at period end, pause and resume, clock advances of hours
  to days (renewals, trial ends).

A compared step calls the preview with the mutation's input, at the same clock time, then the
mutation, and asserts:

* the preview wrote nothing (invoices, lines, keys, ledger entries, redemptions, numbers,
  pending lines, subscriptions, read from the database before and after);
* refused: the same ``errors`` (field, code and message) and no preview;
* otherwise the invoice the mutation issued equals the preview's ``invoice`` (every amount, the
  tax, and every line: kind, description, quantity, unit amount, amount, discount, period, tax
  rate), or neither issued one; ``creditGranted`` equals the credit for unused time issued on it
  (its negative proration lines) plus the credit lines the mutation left pending; the
  subscription's state (status, plan, quantity, price, period, trial end, cancellation) equals
  the preview's; and the preview's ``nextInvoice`` equals ``upcomingInvoice`` right after.

For the renewal, ``upcomingInvoice`` equals the invoice the worker issues (or it is null and
the worker issues none). Only a subscription whose customer has nothing else due before it is
compared (the balance and a ``once`` coupon are the customer's, spent by whichever bills
first).

``test_the_preview_cases_were_compared`` then prints the cases compared per kind on one line,
and fails if a kind the default run must reach was never compared.

Runs. The default is reproducible for CI (``derandomize=True``, no example database).
Environment variables:

* ``PREVIEW_PROPERTY_EXAMPLES`` (default 10): how many sequences;
* ``PREVIEW_PROPERTY_RANDOM=1``: fresh random sequences on every run (for soaks);
* ``PREVIEW_PROPERTY_STEPS=10-16``: the range of steps per sequence;
* ``PREVIEW_PROPERTY_SHRINK=0``: report the first failure as found, without shrinking;
* ``PREVIEW_PROPERTY_VERBOSE=1``: print every step as it runs (with ``-s``);

Known bugs. The product bugs this test found are replayed as fixed sequences at the end of the
module (both fixed: a preview's ``subscription`` read after the renewal it also computes; no
upcoming invoice for a pause that ends before the period's end). A bug found later can be
tolerated narrowly while it is fixed (``KNOWN_BUGS``, empty today), so that the property test
keeps checking the rest.

A soak:

    PREVIEW_PROPERTY_EXAMPLES=100 PREVIEW_PROPERTY_RANDOM=1 \\
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    .venv/bin/python -m pytest tests/test_preview_properties.py -x -q -s
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.settings import Settings
from tests.preview_support import (
    ADVANCE,
    CANCEL,
    CANCEL_PREVIEW,
    CHANGE,
    CHANGE_PREVIEW,
    COUPON_APPLY,
    COUPON_CREATE,
    CREATE,
    CREATE_PREVIEW,
    CREDIT_NOTE,
    CUSTOMER_CREATE,
    GET,
    INVOICE_CREATE,
    INVOICE_FINALIZE,
    INVOICES,
    PAUSE,
    PENDING,
    PLAN_CREATE,
    RESUME,
    SET_CARD,
    SETTINGS_UPDATE,
    SUBSCRIPTIONS,
    TAX_RATE_CREATE,
    UPCOMING,
    WRITES,
    amount,
    credit_lines,
    shape,
    state,
)
from tests.support import GraphQLClient, new_org, token

EXAMPLES = int(os.environ.get("PREVIEW_PROPERTY_EXAMPLES", "10"))
RANDOM = os.environ.get("PREVIEW_PROPERTY_RANDOM", "") not in ("", "0")
_steps = os.environ.get("PREVIEW_PROPERTY_STEPS", "10-16").split("-")
MIN_STEPS, MAX_STEPS = int(_steps[0]), int(_steps[-1])
VERBOSE = os.environ.get("PREVIEW_PROPERTY_VERBOSE", "") not in ("", "0")
SHRINK = os.environ.get("PREVIEW_PROPERTY_SHRINK", "1") not in ("", "0")
# Product bugs this test found and tolerates (narrowly) until they are fixed, so that it keeps
# checking everything else; each has a regression test at the end of the module, marked
# xfail(strict): once the bug is fixed it passes, fails as XPASS, and both go.
# ``PREVIEW_PROPERTY_STRICT=1`` tolerates none.
KNOWN_BUGS: frozenset[str] = frozenset()  # none today: both bugs it found are fixed

CARD = "pm_card_visa"
EPOCH = datetime(2032, 1, 1, 9, 0, tzinfo=UTC)
# Jurisdictions: (address, the rate created for it or None).
ADDRESSES: list[dict[str, str] | None] = [
    None,
    {"country": "FR", "city": "Paris"},
    {"country": "DE", "city": "Berlin"},
    {"country": "US", "region": "CA"},
    {"country": "US", "region": "TX"},  # no rate
]
RATES: list[dict[str, Any]] = [
    {"name": "VAT", "percentage": "20", "country": "FR"},
    {"name": "MwSt", "percentage": "19", "country": "DE", "inclusive": True},
    {"name": "CA sales tax", "percentage": "8.875", "country": "US", "region": "CA"},
]

# Cases compared, across examples: kind -> count.
COMPARED: Counter[str] = Counter()
RUN: Counter[str] = Counter()


def log(text: str) -> None:
    note(text)
    if VERBOSE:
        print(text)


def key() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Backend:
    http: httpx.AsyncClient
    settings: Settings
    db: Any

    def __repr__(self) -> str:
        return "Backend(the in-process app, localstripe and the session's test database)"


@dataclass
class Customer:
    id: str
    client: GraphQLClient


@dataclass
class World:
    org: str
    currency: str
    admin: GraphQLClient
    draw: Callable[..., Any]
    now: datetime
    backend: Backend
    plans: list[dict[str, Any]] = field(default_factory=list)
    customers: list[Customer] = field(default_factory=list)
    subscribed: bool = False  # whether a subscription exists (they are never deleted)

    def pick(self, label: str, options: list[Any]) -> Any:
        return self.draw(st.sampled_from(options), label=label)

    def one_of(self, label: str, things: list[Any]) -> Any:
        return things[self.draw(st.integers(0, len(things) - 1), label=label)]

    def chance(self, label: str, times: int, out_of: int) -> bool:
        """True ``times`` in ``out_of``; the likelier answer first (hypothesis favours it)."""
        yes, no = [True] * times, [False] * (out_of - times)
        chosen: bool = self.pick(label, yes + no if 2 * times >= out_of else no + yes)
        return chosen

    def customer(self) -> Customer:
        chosen: Customer = self.one_of("customer", self.customers)
        return chosen

    def caller(self, owner: Customer) -> tuple[str, GraphQLClient]:
        if self.chance("customer calls", 1, 4):
            return "customer", owner.client
        return "admin", self.admin

    async def mutate(
        self, client: GraphQLClient, document: str, name: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        payload: dict[str, Any] = (await client.data(document, {"input": variables}))[name]
        return payload

    async def subscriptions(self, owner: Customer) -> list[dict[str, Any]]:
        found = await self.admin.data(SUBSCRIPTIONS, {"id": owner.id})
        subs: list[dict[str, Any]] = found["customer"]["subscriptions"]
        return subs

    async def all_subscriptions(self) -> list[tuple[Customer, dict[str, Any]]]:
        return [(c, s) for c in self.customers for s in await self.subscriptions(c)]

    async def invoices(self, owner: Customer) -> list[dict[str, Any]]:
        found = (await self.admin.data(INVOICES, {"id": owner.id}))["invoices"]
        assert not found["pageInfo"]["hasNextPage"]
        return [edge["node"] for edge in found["edges"]]

    async def writes(self) -> dict[str, Any]:
        row = await self.backend.db.fetch_one(WRITES, {"org": self.org})
        return dict(row._mapping) if hasattr(row, "_mapping") else dict(row)

    async def pending(self, subscription_id: str) -> dict[str, int]:
        rows = await self.backend.db.fetch_all(PENDING, {"org": self.org, "sub": subscription_id})
        return {row["id"]: int(row["amount"]) for row in rows}

    async def upcoming(self, subscription_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await self.admin.data(UPCOMING, {"id": subscription_id}))[
            "upcomingInvoice"
        ]
        return found

    async def advance(self, to: datetime) -> None:
        self.now = to
        done = await self.mutate(self.admin, ADVANCE, "testClockAdvance", {"to": to.isoformat()})
        assert done["errors"] == [], done


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def live(sub: dict[str, Any]) -> bool:
    return sub["status"] in ("ACTIVE", "TRIALING", "PAST_DUE", "PAUSED", "UNPAID")


def changeable(sub: dict[str, Any]) -> bool:
    return sub["status"] in ("ACTIVE", "TRIALING")


# -- the comparison of a preview with its mutation ------------------------------------------------


async def compared(
    w: World,
    kind: str,
    owner: Customer,
    client: GraphQLClient,
    preview_document: str,
    preview_name: str,
    mutation_document: str,
    mutation_name: str,
    values: dict[str, Any],
    subscription_id: str | None,
) -> str:
    """The preview of ``values``, then the mutation with them, compared (see the module)."""
    before_invoices = {i["id"] for i in await w.invoices(owner)}
    pending_before = await w.pending(subscription_id) if subscription_id else {}
    writes = await w.writes()
    found = (await client.data(preview_document, {"input": values}))[preview_name]
    assert await w.writes() == writes, f"the {kind} preview wrote something"
    done = await w.mutate(client, mutation_document, mutation_name, values)

    assert found["errors"] == done["errors"], (found["errors"], done["errors"])
    if done["errors"]:
        assert found["preview"] is None, found
        codes = ",".join(sorted({e["code"] for e in done["errors"]}))
        COMPARED[f"{kind.split(' ')[0]} refused"] += 1
        return f"refused:{codes}"
    preview = found["preview"]
    assert preview is not None, found
    sub_id = done["subscription"]["id"]
    w.subscribed = True
    issued = [
        i
        for i in await w.invoices(owner)
        if i["id"] not in before_invoices and i["subscriptionId"] == sub_id
    ]
    same_id = subscription_id is not None  # a created one has another id in its preview
    if preview["invoice"] is None:
        assert issued == [], f"{kind}: the preview issues no invoice, the mutation {issued}"
    else:
        assert len(issued) == 1, f"{kind}: the mutation issued {len(issued)} invoices"
        assert shape(issued[0], with_subscription=same_id) == shape(
            preview["invoice"], with_subscription=same_id
        ), kind
    # The credit granted: on the invoice issued, or left pending by the mutation.
    pending_after = await w.pending(sub_id)
    left = -sum(a for i, a in pending_after.items() if i not in pending_before and a < 0)
    credit = credit_lines(issued[0] if issued else None) + left
    assert preview["creditGranted"] == {"amount": str(credit), "currency": w.currency}, (
        kind,
        preview["creditGranted"],
        credit,
    )
    after = (await w.admin.data(GET, {"id": sub_id}))["subscription"]
    expected, previewed = state(after), state(preview["subscription"])
    if "state after renewal" in KNOWN_BUGS and (
        preview["nextInvoice"] is not None or after["cancelAtPeriodEnd"]
    ):
        # Known bug (test_the_previewed_subscription_is_its_state_after_the_change): the
        # preview describes the subscription after its next renewal; compare what a renewal
        # leaves alone.
        kept = ("planId", "quantity", "price", "trialEnd")
        expected, previewed = (
            {k: expected[k] for k in kept},
            {k: previewed[k] for k in kept},
        )
    assert previewed == expected, kind
    upcoming = await w.upcoming(sub_id)
    assert shape(preview["nextInvoice"], with_subscription=same_id) == shape(
        upcoming, with_subscription=same_id
    ), f"{kind}: nextInvoice is not the upcoming invoice after the mutation"
    COMPARED[kind] += 1
    COMPARED["next invoice"] += 1
    invoiced = "invoiced" if issued else "no invoice"
    return f"ok {after['status']} {invoiced} credit {credit}"


# -- steps ----------------------------------------------------------------------------------------


async def step_create(w: World) -> str:
    # Mostly a customer without a live subscription (the renewals compared are those of a
    # customer with nothing else due first), and a plan it does not hold (else DUPLICATE).
    held = {
        c.id: {s["plan"]["id"] for s in await w.subscriptions(c) if live(s)} for c in w.customers
    }
    free = [c for c in w.customers if not held[c.id]]
    owner = w.one_of(
        "customer", free if free and w.chance("a free customer", 3, 4) else w.customers
    )
    others = [p for p in w.plans if p["id"] not in held[owner.id]]
    plan = w.one_of("plan", others if others and w.chance("a plan not held", 7, 8) else w.plans)
    who, client = w.caller(owner)
    values: dict[str, Any] = {
        "customerId": owner.id,
        "planId": plan["id"],
        "quantity": w.draw(st.integers(1, 3), label="quantity"),
        "idempotencyKey": key(),
    }
    trial = w.pick("trial days", [0, None, 0, 5])
    if trial is not None:
        values["trialDays"] = trial
    if who == "admin" and w.chance("back-dated", 1, 4):
        # Now and then more than a period back: the worker then catches up on periods.
        days = w.draw(st.sampled_from([1, 5, 12, 20, 45, 70]), label="days back")
        values["startAt"] = (w.now - timedelta(days=days, hours=3)).isoformat()
    log(f"create by {who}: {values}")
    return await compared(
        w,
        "create",
        owner,
        client,
        CREATE_PREVIEW,
        "subscriptionCreatePreview",
        CREATE,
        "subscriptionCreate",
        values,
        None,
    )


async def target(w: World, fitting: Callable[[dict[str, Any]], bool]) -> tuple[Customer, Any]:
    """A subscription, three times in four one ``fitting`` the step (if any)."""
    subs = await w.all_subscriptions()
    good = [t for t in subs if fitting(t[1])]
    pool = good if good and w.chance("a fitting subscription", 7, 8) else subs
    chosen: tuple[Customer, Any] = w.one_of("subscription", pool)
    return chosen


async def step_change(w: World) -> str:
    owner, sub = await target(w, changeable)
    others = [p for p in w.plans if p["id"] != sub["plan"]["id"]]
    plan = w.one_of("plan", others if w.chance("another plan", 3, 4) else w.plans)
    who, client = w.caller(owner)
    values: dict[str, Any] = {"id": sub["id"], "planId": plan["id"], "idempotencyKey": key()}
    behavior = w.pick("behavior", ["ALWAYS_INVOICE", "CREATE_PRORATIONS", "NONE", None])
    if behavior is not None:
        values["prorationBehavior"] = behavior
    quantity = w.pick("quantity", [None, 1, 2, 3])
    if quantity is not None:
        values["quantity"] = quantity
    log(f"change {sub['id']} ({sub['status']}) by {who}: {values}")
    return await compared(
        w,
        f"change {behavior or 'default'}",
        owner,
        client,
        CHANGE_PREVIEW,
        "subscriptionChangePreview",
        CHANGE,
        "subscriptionChangePlan",
        values,
        sub["id"],
    )


async def step_cancel(w: World) -> str:
    owner, sub = await target(w, live)
    who, client = w.caller(owner)
    prorate = w.chance("prorate", 1, 2)
    values = {"id": sub["id"], "atPeriodEnd": False, "prorate": prorate}
    log(f"cancel now {sub['id']} ({sub['status']}) by {who}: {values}")
    return await compared(
        w,
        "cancel prorate" if prorate else "cancel without credit",
        owner,
        client,
        CANCEL_PREVIEW,
        "subscriptionCancelPreview",
        CANCEL,
        "subscriptionCancel",
        values,
        sub["id"],
    )


def renews(sub: dict[str, Any]) -> bool:
    """Whether the worker will renew it at its period end: active or trialing, or paused and
    resumed by itself before then (known bug "paused upcoming": left out while tolerated)."""
    if changeable(sub):
        return True
    return (
        "paused upcoming" not in KNOWN_BUGS
        and sub["status"] == "PAUSED"
        and sub["resumesAt"] is not None
        and when(sub["resumesAt"]) < when(sub["currentPeriodEnd"])
    )


def due_at(sub: dict[str, Any], now: datetime) -> datetime | None:
    """When the worker next bills or changes a subscription, if it will."""
    if sub["status"] in ("ACTIVE", "TRIALING"):
        return max(when(sub["currentPeriodEnd"]), now)
    if sub["status"] == "PAUSED" and sub["resumesAt"] is not None:
        return max(when(sub["resumesAt"]), now)  # resumed then, it may renew at once
    return None


async def step_renewal(w: World) -> str:
    """``upcomingInvoice`` of the subscription due first, against the worker's invoice."""
    subs = [(c, s) for c, s in await w.all_subscriptions() if renews(s)]
    if not subs:
        return "advanced: nothing renews " + await step_advance(w)
    owner, _ = w.one_of("renewing", subs)
    # The customer's subscription that renews first.
    mine = [s for s in await w.subscriptions(owner) if renews(s)]
    sub = min(mine, key=lambda s: (max(when(s["currentPeriodEnd"]), w.now), s["id"]))
    due = max(when(sub["currentPeriodEnd"]), w.now)
    end = due + timedelta(hours=1)
    others = [
        other
        for other in await w.subscriptions(owner)
        if other["id"] != sub["id"] and (d := due_at(other, w.now)) is not None and d <= end
    ]
    log(f"renewal of {sub['id']} ({sub['status']}) at {due.isoformat()}: others due {others}")
    if others:
        await w.advance(end)
        return "not compared: another subscription of the customer is due first"
    upcoming = await w.upcoming(sub["id"])
    before = {i["id"] for i in await w.invoices(owner)}
    await w.advance(end)
    issued = [
        i
        for i in await w.invoices(owner)
        if i["id"] not in before and i["subscriptionId"] == sub["id"]
    ]
    if upcoming is None:
        assert issued == [], f"no upcoming invoice, but the worker issued {issued}"
        COMPARED["renewal none"] += 1
        return "ok none"
    # More than one when it was behind (back-dated): the upcoming invoice is the first.
    assert issued, "upcomingInvoice shows an invoice, the worker issued none"
    first = min(issued, key=lambda i: min(line["periodStart"] or "" for line in i["lines"]))
    assert shape(first) == shape(upcoming), "upcomingInvoice is not the renewal invoice"
    COMPARED["renewal"] += 1
    return f"ok {len(upcoming['lines'])} lines"


async def step_coupon(w: World) -> str:
    owner = w.customer()
    terms: dict[str, Any] = {"code": f"P{uuid.uuid4().hex[:10].upper()}", "name": "Promo"}
    if w.chance("percent off", 1, 2):
        terms["percentOff"] = w.pick("percent", ["10", "12.5", "25", "50", "100"])
    else:
        terms["amountOff"] = {
            "amount": w.draw(st.integers(50, 3000), label="amount off"),
            "currency": w.currency,
        }
    terms["duration"] = w.pick("duration", ["ONCE", "REPEATING", "FOREVER"])
    if terms["duration"] == "REPEATING":
        terms["durationPeriods"] = w.draw(st.integers(1, 3), label="periods")
    made = await w.mutate(w.admin, COUPON_CREATE, "couponCreate", terms)
    assert made["errors"] == [], made
    log(f"coupon for {owner.id}: {terms}")
    applied = await w.mutate(
        w.admin,
        COUPON_APPLY,
        "couponApply",
        {"customerId": owner.id, "couponId": made["coupon"]["id"]},
    )
    return "ok" if applied["errors"] == [] else f"refused:{applied['errors'][0]['code']}"


async def step_credit(w: World) -> str:
    """Credit to the customer's balance: a credit note on a paid invoice, or a credit-only
    one-off invoice."""
    owner = w.customer()
    paid = [i for i in await w.invoices(owner) if i["status"] == "PAID" and amount(i["total"]) > 1]
    if paid and w.chance("credit note", 2, 3):
        invoice = w.one_of("invoice", paid)
        value = max(1, amount(invoice["total"]) // w.pick("share", [2, 3, 5]))
        if invoice["tax"] is not None and not invoice["tax"]["inclusive"]:
            value = max(1, value * 100 // 130)  # tax is added at the invoice's rate
        log(f"credit note of {value} to the balance on {invoice['id']}")
        note = await w.mutate(
            w.admin,
            CREDIT_NOTE,
            "creditNoteCreate",
            {
                "invoiceId": invoice["id"],
                "lines": [{"description": "Goodwill", "unitAmount": value}],
                "reason": "GOODWILL",
                "settlement": "BALANCE",
                "idempotencyKey": key(),
            },
        )
        return "ok note" if note["errors"] == [] else f"refused:{note['errors'][0]['code']}"
    value = w.draw(st.integers(1, 4000), label="credit")
    log(f"credit-only invoice of {value} for {owner.id}")
    made = await w.mutate(
        w.admin,
        INVOICE_CREATE,
        "invoiceCreate",
        {
            "customerId": owner.id,
            "currency": w.currency,
            "lines": [{"description": "Goodwill", "unitAmount": -value}],
            "idempotencyKey": key(),
        },
    )
    assert made["errors"] == [], made
    done = await w.mutate(
        w.admin, INVOICE_FINALIZE, "invoiceFinalize", {"invoiceId": made["invoice"]["id"]}
    )
    assert done["errors"] == [], done
    return "ok invoice"


async def step_cancel_at_end(w: World) -> str:
    _, sub = await target(w, changeable)
    log(f"cancel at period end {sub['id']} ({sub['status']})")
    done = await w.mutate(
        w.admin, CANCEL, "subscriptionCancel", {"id": sub["id"], "atPeriodEnd": True}
    )
    return "ok" if done["errors"] == [] else f"refused:{done['errors'][0]['code']}"


async def step_pause_or_resume(w: World) -> str:
    _, sub = await target(w, lambda s: live(s))
    if sub["status"] == "PAUSED" or sub["cancelAtPeriodEnd"]:
        log(f"resume {sub['id']} ({sub['status']})")
        done = await w.mutate(w.admin, RESUME, "subscriptionResume", {"id": sub["id"]})
    else:
        values: dict[str, Any] = {"id": sub["id"]}
        if w.chance("resumes by itself", 1, 2):
            days = w.draw(st.integers(1, 30), label="pause days")
            values["resumesAt"] = (w.now + timedelta(days=days)).isoformat()
        log(f"pause {sub['id']} ({sub['status']}): {values}")
        done = await w.mutate(w.admin, PAUSE, "subscriptionPause", values)
    return "ok" if done["errors"] == [] else f"refused:{done['errors'][0]['code']}"


async def step_advance(w: World) -> str:
    if w.chance("days", 1, 2):
        delta = timedelta(days=w.draw(st.integers(1, 20), label="days"))
    else:
        delta = timedelta(
            hours=w.draw(st.integers(1, 72), label="hours"),
            minutes=w.draw(st.integers(0, 59), label="minutes"),
        )
    log(f"advance {delta} to {(w.now + delta).isoformat()}")
    await w.advance(w.now + delta)
    return "ok"


@dataclass(frozen=True)
class Step:
    run: Callable[[World], Awaitable[str]]
    weight: int = 1
    needs_subscription: bool = False


STEPS: dict[str, Step] = {  # (in the order a sequence goes round them with "next")
    "create": Step(step_create, 3),
    "change": Step(step_change, 6, True),
    "renewal": Step(step_renewal, 4, True),
    "coupon": Step(step_coupon, 1),
    "credit": Step(step_credit, 2),
    "advance clock": Step(step_advance, 2),
    "pause or resume": Step(step_pause_or_resume, 1, True),
    "cancel at period end": Step(step_cancel_at_end, 1, True),
    "cancel now": Step(step_cancel, 2, True),
}


def next_kind(w: World, draw: Callable[..., Any], done: Counter[str]) -> str:
    """The next step's kind by weight; ``next`` is the kind this sequence did least (so
    hypothesis' favourite first choice goes round every kind)."""
    possible = [k for k, s in STEPS.items() if w.subscribed or not s.needs_subscription]
    weighted = [k for k in possible for _ in range(STEPS[k].weight)]
    choice: str = draw(st.sampled_from(["next", *weighted]), label="step")
    if choice == "next":
        choice = min(possible, key=lambda k: done[k])
    return choice


# -- the example's world ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def backend(http: httpx.AsyncClient, settings: Settings, app_services: Any) -> Backend:
    return Backend(http, settings, app_services.db)


async def open_world(backend: Backend, draw: Callable[..., Any]) -> World:
    currency = draw(st.sampled_from(["USD", "USD", "JPY"]), label="currency")
    start = EPOCH + timedelta(
        days=draw(st.integers(0, 60), label="start day"),
        hours=draw(st.integers(0, 23), label="start hour"),
    )
    org = new_org()
    world = World(
        org=org,
        currency=currency,
        admin=GraphQLClient(backend.http, token(backend.settings, org, "admin")),
        draw=draw,
        now=start,
        backend=backend,
    )
    await world.advance(start)
    policy: dict[str, Any] = {
        "customerMaxQuantity": draw(st.sampled_from([1, 3]), label="customer max quantity"),
        "customerProrationBehavior": draw(
            st.sampled_from(["ALWAYS_INVOICE", "CREATE_PRORATIONS"]), label="customer proration"
        ),
    }
    done = await world.mutate(world.admin, SETTINGS_UPDATE, "organizationSettingsUpdate", policy)
    assert done["errors"] == [], done
    for rate in RATES:
        made = await world.mutate(world.admin, TAX_RATE_CREATE, "taxRateCreate", rate)
        assert made["errors"] == [], made
    for n in range(draw(st.integers(2, 3), label="plans")):
        plan_input: dict[str, Any] = {
            "code": f"plan-{n}",
            "name": f"Plan {n}",
            "tier": "PRO",
            "price": {"amount": draw(st.integers(100, 9000), label="price"), "currency": currency},
            "interval": "MONTH",
            "trialDays": draw(st.sampled_from([0, 0, 7]), label="plan trial"),
        }
        made = await world.mutate(world.admin, PLAN_CREATE, "planCreate", plan_input)
        assert made["errors"] == [], made
        world.plans.append(made["plan"])
    addresses = []
    for n in range(draw(st.integers(1, 2), label="customers")):
        address = ADDRESSES[draw(st.integers(0, len(ADDRESSES) - 1), label="address")]
        addresses.append(address)
        values: dict[str, Any] = {"email": f"c{n}@example.com", "name": f"Customer {n}"}
        if address is not None:
            values["address"] = address
        made = await world.mutate(world.admin, CUSTOMER_CREATE, "customerCreate", values)
        assert made["errors"] == [], made
        customer_id = made["customer"]["id"]
        card = await world.mutate(
            world.admin,
            SET_CARD,
            "customerSetDefaultPaymentMethod",
            {"customerId": customer_id, "paymentMethodId": CARD},
        )
        assert card["errors"] == [], card
        client = GraphQLClient(
            backend.http, token(backend.settings, org, "customer", sub=customer_id)
        )
        world.customers.append(Customer(customer_id, client))
    log(
        f"org {org} in {currency} from {start.isoformat()}: policy {policy}, plans "
        f"{world.plans}, addresses {addresses}"
    )
    return world


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not RANDOM,
    phases=list(Phase) if SHRINK else [Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_previews_equal_what_the_mutations_and_the_worker_then_do(
    data: st.DataObject, backend: Backend
) -> None:
    world = await open_world(backend, data.draw)
    steps = data.draw(st.integers(MIN_STEPS, MAX_STEPS), label="steps")
    RUN["sequences"] += 1
    done: Counter[str] = Counter()
    try:
        for _ in range(steps):
            kind = next_kind(world, data.draw, done)
            done[kind] += 1
            result = await STEPS[kind].run(world)
            log(f"  {kind} -> {result}")
            event(f"{kind}: {result.split(' ')[0]}")
            RUN["steps"] += 1
    except Exception:
        RUN["failed"] += 1
        raise


# Kinds the default run must compare at least once.
MUST_COMPARE = [
    "create",
    "change CREATE_PRORATIONS",
    "change ALWAYS_INVOICE",
    "change NONE",
    "cancel prorate",
    "cancel without credit",
    "renewal",
    "next invoice",
]


def test_the_preview_cases_were_compared() -> None:
    """Prints the cases the property test compared, per kind, on one line; fails if a kind
    of MUST_COMPARE never was (skipped when the property test did not run or failed, or ran
    fewer sequences than the default)."""
    if not RUN["sequences"]:
        pytest.skip("the property test did not run")
    if RUN["failed"]:
        pytest.skip("the property test failed")
    total = sum(v for k, v in COMPARED.items() if k != "next invoice")
    listed = ", ".join(f"{k} {v}" for k, v in sorted(COMPARED.items()))
    print(
        f"\npreview property: {RUN['sequences']} sequences, {RUN['steps']} steps, "
        f"{total} cases compared ({listed})"
    )
    if EXAMPLES < 10:
        pytest.skip(f"{EXAMPLES} sequences: coverage is checked on runs of 10 or more")
    missing = [k for k in MUST_COMPARE if not COMPARED[k]]
    assert missing == [], f"never compared: {missing} ({listed})"


# -- the product bugs the property test found, as fixed sequences ---------------------------------


async def _fixed_world(backend: Backend, *prices: int, trial_days: int = 0) -> World:
    """A USD world on 2032-01-01 09:00 (no draws), plans at ``prices``, one untaxed customer."""

    def no_draws(strategy: Any, label: str | None = None) -> Any:
        pytest.fail("a fixed sequence draws nothing")

    org = new_org()
    world = World(
        org=org,
        currency="USD",
        admin=GraphQLClient(backend.http, token(backend.settings, org, "admin")),
        draw=no_draws,
        now=EPOCH,
        backend=backend,
    )
    await world.advance(EPOCH)
    for n, price in enumerate(prices):
        made = await world.mutate(
            world.admin,
            PLAN_CREATE,
            "planCreate",
            {
                "code": f"plan-{n}",
                "name": f"Plan {n}",
                "tier": "PRO",
                "price": {"amount": price, "currency": "USD"},
                "interval": "MONTH",
                "trialDays": trial_days,
            },
        )
        world.plans.append(made["plan"])
    made = await world.mutate(
        world.admin, CUSTOMER_CREATE, "customerCreate", {"email": "c@example.com", "name": "C"}
    )
    customer_id = made["customer"]["id"]
    await world.mutate(
        world.admin,
        SET_CARD,
        "customerSetDefaultPaymentMethod",
        {"customerId": customer_id, "paymentMethodId": CARD},
    )
    world.customers.append(Customer(customer_id, world.admin))
    return world


async def test_the_previewed_subscription_is_its_state_after_the_change(
    backend: Backend,
) -> None:
    """Found by the property test (its first case). ``Previews._described`` computes
    ``nextInvoice`` by renewing the subscription inside the dry run (``_next_renewal``), and
    only then reads the subscription it returns as ``preview.subscription``: the state after
    the *next renewal*, not after the previewed operation. Created on Jan 1 without a trial,
    the preview says period Feb 1 - Mar 1 where the mutation gives Jan 1 - Feb 1; with a
    trial it says ACTIVE where the mutation gives TRIALING; a change previewed on a
    subscription canceling at period end says CANCELED (with ``endedAt``) where the change
    leaves it ACTIVE."""
    w = await _fixed_world(backend, 1000, 3000)
    owner = w.customers[0]
    values = {"customerId": owner.id, "planId": w.plans[0]["id"], "idempotencyKey": key()}
    preview = (await w.admin.data(CREATE_PREVIEW, {"input": values}))["subscriptionCreatePreview"]
    made = await w.mutate(w.admin, CREATE, "subscriptionCreate", values)
    first_period = {
        k: made["subscription"][k] for k in ("status", "currentPeriodStart", "currentPeriodEnd")
    }
    assert first_period == {
        "status": "ACTIVE",
        "currentPeriodStart": "2032-01-01T09:00:00+00:00",
        "currentPeriodEnd": "2032-02-01T09:00:00+00:00",
    }
    previewed = preview["preview"]["subscription"]
    failures = []
    if {k: previewed[k] for k in first_period} != first_period:
        failures.append(f"create: {previewed} != {first_period}")

    # A change of a subscription that cancels at period end: it still ends at period end.
    sub_id = made["subscription"]["id"]
    await w.mutate(w.admin, CANCEL, "subscriptionCancel", {"id": sub_id, "atPeriodEnd": True})
    await w.advance(EPOCH + timedelta(days=10))
    change = {
        "id": sub_id,
        "planId": w.plans[1]["id"],
        "prorationBehavior": "ALWAYS_INVOICE",
        "idempotencyKey": key(),
    }
    preview = (await w.admin.data(CHANGE_PREVIEW, {"input": change}))["subscriptionChangePreview"]
    changed = await w.mutate(w.admin, CHANGE, "subscriptionChangePlan", change)
    assert changed["errors"] == [], changed
    after = state(changed["subscription"])
    assert (after["status"], after["endedAt"]) == ("ACTIVE", None)
    if state(preview["preview"]["subscription"]) != after:
        failures.append(f"change: {state(preview['preview']['subscription'])} != {after}")

    # A creation with a trial: trialing until it ends.
    trial = await _fixed_world(backend, 1000, trial_days=7)
    values = {
        "customerId": trial.customers[0].id,
        "planId": trial.plans[0]["id"],
        "idempotencyKey": key(),
    }
    preview = (await trial.admin.data(CREATE_PREVIEW, {"input": values}))[
        "subscriptionCreatePreview"
    ]
    made = await trial.mutate(trial.admin, CREATE, "subscriptionCreate", values)
    assert made["subscription"]["status"] == "TRIALING"
    if state(preview["preview"]["subscription"]) != state(made["subscription"]):
        failures.append(
            f"trial: {state(preview['preview']['subscription'])} != {state(made['subscription'])}"
        )
    assert failures == [], "\n".join(failures)


async def test_the_upcoming_invoice_of_a_pause_that_ends_before_the_period_end(
    backend: Backend,
) -> None:
    """Found probing what the renewal comparison left out. Subscribed Jan 1 (10.00 a month),
    paused on Jan 11 with ``resumesAt`` Jan 21: ``upcomingInvoice`` answers null (the preview
    returns nothing for a PAUSED subscription), but the worker resumes it on Jan 21 and, on
    Feb 1, issues the Feb 1 - Mar 1 renewal of 10.00, the next invoice the worker issues."""
    w = await _fixed_world(backend, 1000)
    owner = w.customers[0]
    made = await w.mutate(
        w.admin,
        CREATE,
        "subscriptionCreate",
        {"customerId": owner.id, "planId": w.plans[0]["id"], "idempotencyKey": key()},
    )
    sub_id = made["subscription"]["id"]
    await w.advance(EPOCH + timedelta(days=10))
    paused = await w.mutate(
        w.admin,
        PAUSE,
        "subscriptionPause",
        {"id": sub_id, "resumesAt": (EPOCH + timedelta(days=20)).isoformat()},
    )
    assert paused["errors"] == [], paused
    upcoming = await w.upcoming(sub_id)
    before = {i["id"] for i in await w.invoices(owner)}
    await w.advance(EPOCH + timedelta(days=31, hours=1))  # Feb 1 10:00
    (renewal,) = [i for i in await w.invoices(owner) if i["id"] not in before]
    assert renewal["total"] == {"amount": "1000"}
    assert shape(upcoming) == shape(renewal)
