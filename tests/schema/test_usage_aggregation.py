"""Usage aggregation through the GraphQL API, against hand-computed values: each aggregation
over windows that cut hours (events at :10 and :50, windows from :30, so the whole hours come
from the hourly pre-aggregates and the edge hours from the raw events), filters, unique counts
across hours, LATEST ties, negative SUM corrections, ``usage(groupBy:)`` buckets and totals,
``currentUsage``, and the per-event refusals of a mixed batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    CHANGE,
    advance,
    paying_customer,
    subscribe,
)
from tests.schema.usage_support import (
    CURRENT_USAGE,
    USAGE,
    event,
    metric,
    record_batch,
)
from tests.support import GraphQLClient

ARCHIVE = """mutation($id: ID!) {
  billableMetricArchive(input: {id: $id}) { billableMetric { active } errors { code } }
}"""
T0 = datetime(2027, 6, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)  # the clock while events are recorded (same monthly period)


def at(hours: int, minutes: int = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes)


async def metered_subscription(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
    metrics: list[dict[str, Any]],
    *,
    unit_price: str = "0.01",
) -> str:
    """Metrics, a plan pricing each PER_UNIT at ``unit_price`` USD, a subscription created
    at T0; the clock then at NOW. Returns the subscription id."""
    await advance(admin, T0)
    for values in metrics:
        await metric(admin, name=values["code"], **values)
    plan = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        creditsIncluded=0,
        meteredPrices=[
            {"metric": m["code"], "model": "PER_UNIT", "unitPrice": unit_price} for m in metrics
        ],
    )
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"])
    assert sub["status"] == "ACTIVE"
    await advance(admin, NOW)
    sub_id: str = sub["id"]
    return sub_id


async def accept(admin: GraphQLClient, events: list[dict[str, Any]]) -> None:
    done = await record_batch(admin, events)
    assert done["errors"] == [], done
    assert done["acceptedCount"] == len(events), done["results"]


async def series(
    admin: GraphQLClient,
    sub: str,
    metric_code: str,
    start: datetime,
    end: datetime,
    group_by: str = "HOUR",
) -> tuple[str, list[tuple[str, str, int | None]]]:
    """(total, [(bucket start, quantity, events)]) of ``usage``."""
    found = (
        await admin.data(
            USAGE,
            {
                "sub": sub,
                "metric": metric_code,
                "from": start.isoformat(),
                "to": end.isoformat(),
                "groupBy": group_by,
            },
        )
    )["usage"]
    assert found["metric"]["code"] == metric_code
    buckets = [(b["start"], b["quantity"], b["events"]) for b in found["buckets"]]
    return found["total"], buckets


async def total(admin: GraphQLClient, sub: str, code: str, start: datetime, end: datetime) -> str:
    return (await series(admin, sub, code, start, end))[0]


async def current_usage(admin: GraphQLClient, sub: str) -> dict[str, dict[str, Any]]:
    usage = (await admin.data(CURRENT_USAGE, {"id": sub}))["subscription"]["currentUsage"]
    return {u["metric"]["code"]: u for u in usage}


def hour(h: int) -> str:
    return at(h).isoformat()


async def test_count_over_windows_that_cut_hours(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin, plan_factory, paying_customer, [{"code": "calls", "aggregation": "COUNT"}]
    )
    times = [(1, 10), (1, 50), (2, 10), (2, 20), (2, 50), (3, 0), (3, 10), (3, 50), (4, 10)]
    await accept(admin, [event(f"c{h}-{m}", "calls", sub, at(h, m)) for h, m in times])

    # 01:30-03:30: 01:50 (edge), 02:10 02:20 02:50 (whole hour 2), 03:00 03:10 (edge).
    assert await series(admin, sub, "calls", at(1, 30), at(3, 30)) == (
        "6",
        [(hour(1), "1", 1), (hour(2), "3", 3), (hour(3), "2", 2)],
    )
    assert await total(admin, sub, "calls", at(1), at(4)) == "8"  # whole hours 1-3
    # No whole hour: every event from the raw events, still in hourly buckets.
    assert await series(admin, sub, "calls", at(1, 30), at(2, 30)) == (
        "3",
        [(hour(1), "1", 1), (hour(2), "2", 2)],
    )
    assert await total(admin, sub, "calls", at(1, 10), at(1, 50)) == "1"  # [from, to)
    assert await total(admin, sub, "calls", at(2), at(3)) == "3"
    assert await total(admin, sub, "calls", at(1, 30), at(3)) == "4"  # 03:00 is out
    assert await total(admin, sub, "calls", at(3), at(3, 5)) == "1"  # 03:00 is in
    assert await total(admin, sub, "calls", at(2, 10), at(4, 10)) == "6"
    assert await total(admin, sub, "calls", at(5), at(6)) == "0"
    assert await series(admin, sub, "calls", at(0, 30), at(4, 30), "DAY") == (
        "9",
        [(T0.isoformat(), "9", 9)],
    )
    usage = (await current_usage(admin, sub))["calls"]
    assert (usage["quantity"], usage["amount"]["amount"]) == ("9", "9")


async def test_sum_with_negative_corrections(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin,
        plan_factory,
        paying_customer,
        [{"code": "gb", "aggregation": "SUM"}],
        unit_price="0.02",  # 2 minor units per unit
    )
    values = [((1, 10), "10"), ((1, 50), "5.5"), ((2, 10), "-3"), ((2, 50), "7")]
    values += [((3, 10), "-20"), ((3, 50), "1")]
    await accept(admin, [event(f"g{h}-{m}", "gb", sub, at(h, m), value=v) for (h, m), v in values])
    # A later batch adds to the same hour's pre-aggregate.
    await accept(admin, [event("g-late", "gb", sub, at(2, 30), value="0.75")])
    assert await series(admin, sub, "gb", at(1, 30), at(3, 30)) == (
        "-9.75",
        [(hour(1), "5.5", 1), (hour(2), "4.75", 3), (hour(3), "-20", 1)],
    )
    assert await total(admin, sub, "gb", at(1), at(4)) == "1.25"
    assert await total(admin, sub, "gb", at(2), at(3)) == "4.75"
    usage = (await current_usage(admin, sub))["gb"]
    assert (usage["quantity"], usage["amount"]["amount"]) == ("1.25", "2")  # 2.5 -> 2
    # A correction that takes the period below zero: it bills nothing.
    await accept(admin, [event("g-fix", "gb", sub, at(4, 10), value="-4")])
    usage = (await current_usage(admin, sub))["gb"]
    assert (usage["quantity"], usage["amount"]["amount"]) == ("-2.75", "0")
    assert await total(admin, sub, "gb", at(3, 30), at(4, 30)) == "-3"


async def test_max_reads_only_the_window_of_the_edge_hours(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin, plan_factory, paying_customer, [{"code": "peak", "aggregation": "MAX"}]
    )
    values = [((1, 10), "50"), ((1, 50), "7"), ((2, 10), "9"), ((2, 50), "12.25")]
    values += [((3, 10), "30"), ((3, 50), "100")]
    await accept(
        admin, [event(f"p{h}-{m}", "peak", sub, at(h, m), value=v) for (h, m), v in values]
    )
    # A later, smaller value in hour 2 leaves its maximum.
    await accept(admin, [event("p-late", "peak", sub, at(2, 30), value="11")])
    # 50 (01:10) and 100 (03:50) are in the edge hours but outside the window.
    assert await series(admin, sub, "peak", at(1, 30), at(3, 30)) == (
        "30",
        [(hour(1), "7", 1), (hour(2), "12.25", 3), (hour(3), "30", 1)],
    )
    assert await total(admin, sub, "peak", at(2), at(3)) == "12.25"
    assert await total(admin, sub, "peak", at(1, 30), at(2, 30)) == "9"
    assert await total(admin, sub, "peak", at(1), at(4)) == "100"
    assert await series(admin, sub, "peak", at(5), at(6)) == ("0", [])  # no events: 0
    assert (await current_usage(admin, sub))["peak"]["quantity"] == "100"


async def test_latest_with_ties_in_one_batch_and_across_batches(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin,
        plan_factory,
        paying_customer,
        [{"code": "level", "aggregation": "LATEST", "property": "level"}],
    )

    def level(key: str, when: datetime, value: Any) -> dict[str, Any]:
        return event(key, "level", sub, when, properties={"level": value})

    await accept(
        admin,
        [
            level("a", at(1, 10), 5),
            level("b", at(1, 50), 8),
            level("c", at(2, 10), 3),
            level("d", at(2, 50), 6),  # tie at 02:50 with "e", a later batch: 6 wins
            level("f", at(3, 10), 2),  # tie at 03:10 in one batch: 2 wins
            level("g", at(3, 10), 1),
            level("h", at(3, 50), 9),
            level("i", at(4, 20), 7),  # tie at 04:20 in one batch, whole hour: 11
            level("j", at(4, 20), "11"),
            level("k", at(5, 30), 3),  # tie at 05:30 with "l", a later batch: 10 wins
        ],
    )
    # A later batch: a tie at 02:50 (smaller: 6 stays), an earlier time in hour 2 (a larger
    # value, but not the latest), a tie at 05:30 (larger: 10 wins).
    await accept(
        admin,
        [level("e", at(2, 50), 4), level("m", at(2, 30), 100), level("l", at(5, 30), "10")],
    )

    assert await series(admin, sub, "level", at(1, 30), at(3, 30)) == (
        "2",
        [(hour(1), "8", 1), (hour(2), "6", 4), (hour(3), "2", 2)],
    )
    assert await total(admin, sub, "level", at(1, 30), at(3)) == "6"  # whole hour 2
    assert await total(admin, sub, "level", at(2), at(3)) == "6"
    assert await total(admin, sub, "level", at(1), at(2)) == "8"
    assert await total(admin, sub, "level", at(0), at(1, 30)) == "5"
    assert await total(admin, sub, "level", at(3), at(4)) == "9"
    assert await total(admin, sub, "level", at(4), at(5)) == "11"
    assert await total(admin, sub, "level", at(5), at(6)) == "10"
    assert await total(admin, sub, "level", at(4), at(6)) == "10"
    assert (await current_usage(admin, sub))["level"]["quantity"] == "10"


async def test_unique_count_across_hours(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin,
        plan_factory,
        paying_customer,
        [{"code": "users", "aggregation": "UNIQUE_COUNT", "property": "user"}],
    )
    users: list[tuple[tuple[int, int], Any]] = [
        ((1, 10), "ana"),
        ((1, 50), "bo"),
        ((2, 10), "ana"),
        ((2, 50), "cy"),
    ]
    users += [((3, 10), "bo"), ((3, 50), "dan"), ((4, 10), "ana"), ((5, 10), 7), ((5, 20), "7")]
    await accept(
        admin,
        [event(f"u{h}-{m}", "users", sub, at(h, m), properties={"user": u}) for (h, m), u in users],
    )
    # Whole hours 1-3: ana (twice, in two hours), bo (twice), cy, dan.
    assert await series(admin, sub, "users", at(1), at(4)) == (
        "4",
        [(hour(1), "2", None), (hour(2), "2", None), (hour(3), "2", None)],
    )
    # 01:30-03:30: bo (01:50 and 03:10), ana, cy.
    assert await total(admin, sub, "users", at(1, 30), at(3, 30)) == "3"
    assert await total(admin, sub, "users", at(2), at(4, 30)) == "4"  # ana cy bo dan
    # 7 and "7" are one value.
    assert await total(admin, sub, "users", at(5), at(6)) == "1"
    assert await series(admin, sub, "users", at(0, 30), at(6), "DAY") == (
        "5",
        [(T0.isoformat(), "5", None)],
    )
    usage = (await current_usage(admin, sub))["users"]
    assert (usage["quantity"], usage["amount"]["amount"]) == ("5", "5")


async def test_filters_store_but_do_not_count_other_events(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin,
        plan_factory,
        paying_customer,
        [
            {
                "code": "eu_calls",
                "aggregation": "COUNT",
                "filters": [
                    {"property": "region", "values": ["eu", "us"]},
                    {"property": "tier", "values": ["1"]},
                ],
            }
        ],
    )
    props: list[dict[str, Any]] = [
        {"region": "eu", "tier": "1"},  # counted
        {"region": "us", "tier": 1},  # counted: 1 is "1"
        {"region": "apac", "tier": "1"},
        {"tier": "1"},
        {"region": "eu", "tier": "2"},
        {"region": "eu"},
        {"region": None, "tier": "1"},
        {"region": "EU", "tier": "1"},
        {"region": "eu", "tier": "1", "extra": True},  # counted
    ]
    events = [
        event(f"f{n}", "eu_calls", sub, at(1, 10 + n), properties=p) for n, p in enumerate(props)
    ]
    await accept(admin, events)  # every one is stored
    assert await series(admin, sub, "eu_calls", at(1), at(2)) == ("3", [(hour(1), "3", 3)])
    assert await total(admin, sub, "eu_calls", at(1, 12), at(1, 30)) == "1"  # edge: only f8
    replay = await record_batch(admin, events)
    assert (replay["acceptedCount"], replay["duplicateCount"]) == (0, len(events))
    assert (await current_usage(admin, sub))["eu_calls"]["quantity"] == "3"


async def test_group_by_hour_and_day_across_midnight(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin, plan_factory, paying_customer, [{"code": "calls", "aggregation": "COUNT"}]
    )
    times = [(22, 10), (22, 50), (23, 50), (24, 10), (25, 30), (25, 40), (47, 59)]
    await accept(admin, [event(f"c{h}-{m}", "calls", sub, at(h, m)) for h, m in times])
    start, end = at(22, 30), at(25, 35)
    assert await series(admin, sub, "calls", start, end, "HOUR") == (
        "4",
        [(hour(22), "1", 1), (hour(23), "1", 1), (hour(24), "1", 1), (hour(25), "1", 1)],
    )
    assert await series(admin, sub, "calls", start, end, "DAY") == (
        "4",
        [(T0.isoformat(), "2", 2), ((T0 + timedelta(days=1)).isoformat(), "2", 2)],
    )
    assert await series(admin, sub, "calls", T0, NOW, "DAY") == (
        "7",
        [(T0.isoformat(), "3", 3), ((T0 + timedelta(days=1)).isoformat(), "4", 4)],
    )
    # The same window given in another time zone (+05:30): the same UTC hours.
    found = (
        await admin.data(
            USAGE,
            {
                "sub": sub,
                "metric": "calls",
                "from": "2027-06-02T04:00:00+05:30",  # 22:30 UTC on June 1
                "to": "2027-06-02T07:05:00+05:30",  # 01:35 UTC on June 2
                "groupBy": "HOUR",
            },
        )
    )["usage"]
    assert found["total"] == "4"
    assert [(b["start"], b["quantity"]) for b in found["buckets"]] == [
        (hour(22), "1"),
        (hour(23), "1"),
        (hour(24), "1"),
        (hour(25), "1"),
    ]


async def test_a_mixed_batch_is_refused_event_by_event(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    await advance(admin, T0)
    await metric(admin, code="calls", name="Calls", aggregation="COUNT")
    await metric(admin, code="gb", name="GB", aggregation="SUM")
    await metric(admin, code="other", name="Other", aggregation="COUNT")
    await metric(admin, code="seats", name="Seats", aggregation="UNIQUE_COUNT", property="user")
    old = await metric(admin, code="old", name="Old", aggregation="COUNT")
    plan_a = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        meteredPrices=[
            {"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"},
            {"metric": "gb", "model": "PER_UNIT", "unitPrice": "0.01"},
            {"metric": "seats", "model": "PER_UNIT", "unitPrice": "0.01"},
            {"metric": "old", "model": "PER_UNIT", "unitPrice": "0.01"},
        ],
    )
    archived = (await admin.data(ARCHIVE, {"id": old["id"]}))["billableMetricArchive"]
    assert archived["errors"] == []
    plan_b = await plan_factory(
        price={"amount": 500, "currency": "USD"},
        meteredPrices=[{"metric": "other", "model": "PER_UNIT", "unitPrice": "0.01"}],
    )
    plan_c = await plan_factory(
        price={"amount": 700, "currency": "USD"},
        meteredPrices=[
            {"metric": "calls", "model": "PACKAGE", "unitPrice": "1", "packageSize": 10}
        ],
    )
    one, two = await paying_customer(), await paying_customer()
    await advance(admin, T0 + timedelta(hours=1))
    sub = (await subscribe(admin, customerId=one["id"], planId=plan_a["id"]))["id"]
    sub_b = (await subscribe(admin, customerId=one["id"], planId=plan_b["id"]))["id"]
    # Customer two has two subscriptions pricing "calls".
    await subscribe(admin, customerId=two["id"], planId=plan_a["id"])
    await subscribe(admin, customerId=two["id"], planId=plan_c["id"])
    await advance(admin, NOW)

    when = at(5)
    batch: list[dict[str, Any]] = [
        event("ok", "calls", sub, when),  # 0
        event("bad-value", "gb", sub, when, value="abc"),  # 1
        event("unknown", "nope", sub, when),  # 2
        event("future", "calls", sub, NOW + timedelta(minutes=6)),  # 3
        event("leeway", "calls", sub, NOW + timedelta(minutes=4)),  # 4
        {**event("both", "calls", sub, when), "customerId": one["id"]},  # 5
        {
            "idempotencyKey": "by-customer",
            "metric": "calls",
            "customerId": one["id"],
            "timestamp": when.isoformat(),
        },  # 6
        {
            "idempotencyKey": "ambiguous",
            "metric": "calls",
            "customerId": two["id"],
            "timestamp": when.isoformat(),
        },  # 7
        event("no-value", "gb", sub, when),  # 8
        event("too-early", "calls", sub, datetime(1999, 12, 31, tzinfo=UTC)),  # 9
        event("ok", "calls", sub, when),  # 10: the key of 0 again
        event("correction", "gb", sub, when, value="-2"),  # 11
        {
            "idempotencyKey": "other",
            "metric": "other",
            "customerId": one["id"],
            "timestamp": when.isoformat(),
        },  # 12
        event("unpriced", "calls", sub_b, when),  # 13
        event("max-negative", "nope", sub, when, value="-1"),  # 14
        event("nan", "gb", sub, when, value="NaN"),  # 15
        event("no-user", "seats", sub, when, properties={"name": "x"}),  # 16
        event("list", "calls", sub, when, properties=[1, 2]),  # 17
        event("archived", "old", sub, when),  # 18
    ]
    done = await record_batch(admin, batch)
    assert done["errors"] == []
    results = done["results"]
    assert [r["index"] for r in results] == list(range(len(batch)))
    assert [r["idempotencyKey"] for r in results] == [e["idempotencyKey"] for e in batch]
    outcome = [
        (r["status"], [(e["code"], e["field"]) for e in r["errors"]], r["subscriptionId"])
        for r in results
    ]
    assert outcome == [
        ("ACCEPTED", [], sub),
        ("REFUSED", [("INVALID", ["value"])], None),
        ("REFUSED", [("NOT_FOUND", ["metric"])], None),
        ("REFUSED", [("INVALID", ["timestamp"])], None),
        ("ACCEPTED", [], sub),
        ("REFUSED", [("INVALID", ["customerId"])], None),
        ("ACCEPTED", [], sub),  # the one subscription of customer one that prices "calls"
        ("REFUSED", [("INVALID", ["customerId"])], None),
        ("REFUSED", [("REQUIRED", ["value"])], None),
        ("REFUSED", [("INVALID", ["timestamp"])], None),
        ("DUPLICATE", [], sub),
        ("ACCEPTED", [], sub),
        ("ACCEPTED", [], sub_b),
        ("REFUSED", [("INVALID", ["metric"])], None),
        ("REFUSED", [("NOT_FOUND", ["metric"])], None),
        ("REFUSED", [("INVALID", ["value"])], None),
        ("REFUSED", [("INVALID", ["properties"])], None),
        ("REFUSED", [("INVALID", ["properties"])], None),
        ("REFUSED", [("INVALID_STATE", ["metric"])], None),
    ]
    assert "2 subscriptions" in results[7]["errors"][0]["message"]
    assert all(r["eventId"] for r in results if r["status"] == "ACCEPTED")
    assert not any(r["eventId"] for r in results if r["status"] != "ACCEPTED")
    assert (done["acceptedCount"], done["duplicateCount"], done["refusedCount"]) == (5, 1, 13)

    # What was accepted is counted, nothing else.
    window = (T0, NOW + timedelta(hours=1))
    assert await total(admin, sub, "calls", *window) == "3"  # ok, leeway, by-customer
    assert await total(admin, sub, "gb", *window) == "-2"
    assert await total(admin, sub_b, "other", *window) == "1"
    # The refused keys were not taken: fixed, they are accepted.
    fixed = await record_batch(
        admin,
        [
            event("bad-value", "gb", sub, when, value="1.5"),
            event("future", "calls", sub, NOW),
            event("ambiguous", "calls", sub, when),
        ],
    )
    assert [r["status"] for r in fixed["results"]] == ["ACCEPTED"] * 3


async def test_a_batch_over_1000_events_is_refused_whole(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    sub = await metered_subscription(
        admin, plan_factory, paying_customer, [{"code": "calls", "aggregation": "COUNT"}]
    )
    events = [event(f"k{n}", "calls", sub, at(1, n % 60)) for n in range(1001)]
    done = await record_batch(admin, events)
    assert [(e["code"], e["field"]) for e in done["errors"]] == [("INVALID", ["input", "events"])]
    assert done["results"] == []
    assert (done["acceptedCount"], done["duplicateCount"], done["refusedCount"]) == (0, 0, 0)
    assert await total(admin, sub, "calls", T0, NOW) == "0"
    # Nothing of it was stored: its first thousand are new.
    again = await record_batch(admin, events[:1000])
    assert again["acceptedCount"] == 1000
    assert await total(admin, sub, "calls", T0, NOW) == "1000"


async def test_a_test_clock_in_the_past_takes_usage_at_its_time(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    """A fresh organization's test clock may be set to any time, also before the wall clock;
    a subscription created then takes events from its creation (by the organization's clock)
    on, and refuses earlier ones as before it started."""
    start = datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert start < datetime.now(UTC)
    await advance(admin, start)
    await metric(admin, code="calls", name="Calls", aggregation="COUNT")
    plan = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        meteredPrices=[{"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"}],
    )
    customer = await paying_customer()
    sub = (await subscribe(admin, customerId=customer["id"], planId=plan["id"]))["id"]
    await advance(admin, start + timedelta(days=1))
    done = await record_batch(
        admin,
        [
            event("in-period", "calls", sub, start + timedelta(hours=2)),
            event("before", "calls", sub, start - timedelta(hours=2)),
        ],
    )
    outcome = [
        (r["status"], [(e["code"], e["field"]) for e in r["errors"]]) for r in done["results"]
    ]
    assert outcome == [
        ("ACCEPTED", []),
        ("REFUSED", [("INVALID", ["timestamp"])]),
    ]
    assert await total(admin, sub, "calls", start, start + timedelta(days=1)) == "1"


async def test_a_refused_event_repeated_in_its_batch_is_not_reported_duplicate(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    """An event of the trial (before the current period, never billed for usage) is refused;
    the same event again in the batch was not recorded either: it cannot be DUPLICATE."""
    await advance(admin, T0)
    await metric(admin, code="calls", name="Calls", aggregation="COUNT")
    plan = await plan_factory(
        price={"amount": 1000, "currency": "USD"},
        trialDays=7,
        meteredPrices=[{"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"}],
    )
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"])
    assert sub["status"] == "TRIALING"
    await advance(admin, T0 + timedelta(days=8))  # the trial has converted
    in_trial = event("in-trial", "calls", sub["id"], T0 + timedelta(days=1))
    done = await record_batch(admin, [in_trial, in_trial])
    first, second = done["results"]
    assert (first["status"], [e["code"] for e in first["errors"]]) == (
        "REFUSED",
        ["USAGE_PERIOD_CLOSED"],
    )
    assert second["status"] == "REFUSED", second
    assert (done["acceptedCount"], done["duplicateCount"], done["refusedCount"]) == (0, 0, 2)


async def test_usage_total_of_a_metric_the_plan_no_longer_prices(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
) -> None:
    """After a change to a plan without the metric, ``usage`` still reports what was recorded:
    its total is the metric's aggregate (a max of maxima for MAX, not a sum)."""
    sub = await metered_subscription(
        admin, plan_factory, paying_customer, [{"code": "peak", "aggregation": "MAX"}]
    )
    await accept(
        admin,
        [
            event("p1", "peak", sub, at(1, 10), value="5"),
            event("p2", "peak", sub, at(2, 10), value="7"),
        ],
    )
    assert await series(admin, sub, "peak", at(0), at(3)) == (
        "7",
        [(hour(1), "5", 1), (hour(2), "7", 1)],
    )
    flat = await plan_factory(price={"amount": 1000, "currency": "USD"})
    changed = (
        await admin.data(
            CHANGE,
            {
                "input": {
                    "id": sub,
                    "planId": flat["id"],
                    "prorationBehavior": "NONE",
                    "idempotencyKey": "change-1",
                }
            },
        )
    )["subscriptionChangePlan"]
    assert changed["errors"] == []
    assert await series(admin, sub, "peak", at(0), at(3)) == (
        "7",
        [(hour(1), "5", 1), (hour(2), "7", 1)],
    )
