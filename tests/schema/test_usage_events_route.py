"""POST /usage/events: JSON arrays and JSON lines, per-event results, the same idempotency as
usageRecordBatch, who may send, and bodies larger than the GraphQL limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.core.settings import Settings
from tests.schema.test_subscriptions_api import advance, subscribe
from tests.schema.usage_support import CURRENT_USAGE, metric
from tests.support import GraphQLClient, token

JUN_1 = datetime(2027, 6, 1, tzinfo=UTC)


async def _subscription(
    admin: GraphQLClient, plan_factory: Callable[..., Any], customer_factory: Callable[..., Any]
) -> dict[str, Any]:
    await advance(admin, JUN_1)
    await metric(admin, code="tokens", name="Tokens", aggregation="SUM", property="n")
    plan = await plan_factory(
        trialDays=30,
        meteredPrices=[{"metric": "tokens", "model": "PER_UNIT", "unitPrice": "0.0001"}],
    )
    customer = await customer_factory()
    subscription: dict[str, Any] = await subscribe(
        admin, customerId=customer["id"], planId=plan["id"]
    )
    await advance(admin, JUN_1 + timedelta(days=1))
    return subscription


def _events(sub: str, keys: range, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "idempotencyKey": f"k{n}",
            "metric": "tokens",
            "subscriptionId": sub,
            "timestamp": (JUN_1 + timedelta(seconds=n)).isoformat(),
            "properties": {"n": 2, **extra},
        }
        for n in keys
    ]


async def test_arrays_and_json_lines_with_results_per_event(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    sub = await _subscription(admin, plan_factory, customer_factory)
    headers = {"authorization": f"Bearer {token(settings, org, 'service')}"}

    # 2,500 events (one transaction), one malformed, one refused.
    events: list[Any] = _events(sub["id"], range(2500))
    events[7] = "not an object"
    events[8]["properties"] = {"n": "many"}
    response = await http.post("/usage/events", json=events, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["refused"]) == (2498, 0, 2)
    assert len(body["results"]) == 2500
    assert [r["index"] for r in body["results"]] == list(range(2500))
    assert body["results"][7]["error"]["code"] == "INVALID"
    assert body["results"][8]["error"]["field"] == ["properties"]
    assert body["results"][0]["id"].startswith("use_")

    # JSON lines, overlapping the array: the overlap is reported duplicate, counted once.
    lines = "\n".join(json.dumps(e) for e in _events(sub["id"], range(2400, 2600)))
    response = await http.post(
        "/usage/events",
        content=lines.encode(),
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["refused"]) == (100, 100, 0)

    usage = (await admin.data(CURRENT_USAGE, {"id": sub["id"]}))["subscription"]["currentUsage"]
    assert usage[0]["quantity"] == str(2 * 2598)  # a trial: measured, not billed
    assert usage[0]["amount"]["amount"] == "0"


async def test_who_may_send_and_what_is_refused(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    sub = await _subscription(admin, plan_factory, customer_factory)
    one = _events(sub["id"], range(1))
    assert (await http.post("/usage/events", json=one)).status_code == 401
    customer = {"authorization": f"Bearer {token(settings, org, 'customer', sub='cus_x')}"}
    assert (await http.post("/usage/events", json=one, headers=customer)).status_code == 403
    staff = {"authorization": f"Bearer {token(settings, org, 'admin')}"}
    bad = await http.post("/usage/events", content=b"{not json", headers=staff)
    assert (bad.status_code, bad.json()["code"]) == (400, "BAD_REQUEST")
    assert (await http.post("/usage/events", json=[], headers=staff)).status_code == 400
    # Another organization's admin cannot record usage on this subscription.
    stranger = {"authorization": f"Bearer {token(settings, org + 'x', 'admin')}"}
    body = (await http.post("/usage/events", json=one, headers=stranger)).json()
    assert body["refused"] == 1
    assert body["results"][0]["error"]["code"] == "NOT_FOUND"
    assert sub["id"] not in json.dumps(body)
    # A body over the GraphQL limit (256 KiB) is accepted here.
    padded = _events(sub["id"], range(1000), note="x" * 300)
    response = await http.post("/usage/events", json=padded, headers=staff)
    assert len(response.request.content) > settings.max_body_bytes
    assert response.json()["accepted"] == 1000


async def test_strict_json_and_exact_large_integers(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    app_services: Any,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    """The body is strict JSON (what PostgreSQL can store), and integers past 64 bits in
    properties are kept exactly (the fast decoder would read them as floats)."""
    sub = await _subscription(admin, plan_factory, customer_factory)
    headers = {"authorization": f"Bearer {token(settings, org, 'service')}"}
    one = json.dumps(_events(sub["id"], range(1)))
    for body in (
        one.replace('"k0"', '"k\\u0000"'),  # NUL: PostgreSQL text cannot hold it
        one.replace('"k0"', '"k\\ud800"'),  # a lone surrogate
        one.replace('"n": 2', '"n": NaN'),
        one.replace('"n": 2', '"n": Infinity'),
        one.replace('"n": 2', '"n": 1e999'),
        "[" * 5000 + "]" * 5000,
        '{"idempotencyKey": "k0"}\n[1, 2',  # a line that is not JSON
    ):
        response = await http.post("/usage/events", content=body.encode(), headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST"), body[:80]
    # Nothing was stored by the refused bodies.
    usage = (await admin.data(CURRENT_USAGE, {"id": sub["id"]}))["subscription"]["currentUsage"]
    assert usage[0]["quantity"] == "0"

    # 2**64 + 1 and a 30-digit id: stored as written, not as the nearest float. The same body
    # with a 19-digit run elsewhere (a key) also goes through the exact decoder.
    huge = [2**64 + 1, 123456789012345678901234567891]
    events = _events(sub["id"], range(100, 102))
    events[0]["properties"]["account"] = huge[0]
    events[1]["properties"]["account"] = huge[1]
    events[1]["idempotencyKey"] = "k" + "9" * 19
    events[1]["timestamp"] = "2027-06-01T09:08:07.654321+02:00"  # stored to the microsecond
    response = await http.post("/usage/events", content=json.dumps(events), headers=headers)
    assert response.json()["accepted"] == 2, response.text
    stored = await app_services.db.fetch_all(
        "SELECT properties->>'account' AS account, occurred_at FROM usage_events "
        "WHERE organization_id = :org ORDER BY idempotency_key",
        {"org": org},
    )
    assert sorted(r["account"] for r in stored) == sorted(str(n) for n in huge)
    assert datetime(2027, 6, 1, 7, 8, 7, 654321, tzinfo=UTC) in [r["occurred_at"] for r in stored]
