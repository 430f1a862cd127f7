"""`Live` subscriptions in-process (through `schema.subscribe`, as graphql-transport-ws runs
them): figures per currency, the currency argument, and errors that never leak internals."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.context import Context
from app.core.auth import Principal, Role
from app.core.pubsub import Event, publish
from schema import schema

REVENUE = """subscription($currency: String) {
  revenue(currency: $currency) {
    currencies { currency today { amount currency } netTotal { amount } paymentsToday
                 days { day net { amount } } }
  }
}"""


@pytest.fixture
def subscribe(app_services: Any, org: str) -> Callable[..., Any]:
    """Starts a subscription as the organization's admin; yields its results as dicts."""

    async def results(document: str, **variables: Any) -> AsyncIterator[dict[str, Any]]:
        context = Context(app_services, principal=Principal("test-admin", org, Role.ADMIN))
        stream = await schema.subscribe(document, variable_values=variables, context_value=context)
        async for result in stream:  # type: ignore[union-attr]
            body: dict[str, Any] = {"data": result.data}
            if result.errors:
                body["errors"] = [
                    {"message": e.message, "extensions": e.extensions or {}} for e in result.errors
                ]
            yield body

    return results


async def next_of(stream: Any) -> dict[str, Any]:
    body: dict[str, Any] = await asyncio.wait_for(anext(stream), 20)
    return body


async def test_revenue_is_per_currency_and_follows_payments(
    subscribe: Callable[..., Any],
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    await payment_factory(confirm=True, customer=customer)  # 100.00 USD
    await payment_factory(
        confirm=True, customer=customer, amount={"amount": 5000, "currency": "JPY"}
    )
    stream = subscribe(REVENUE)
    first = (await next_of(stream))["data"]["revenue"]["currencies"]
    assert [(c["currency"], c["netTotal"]["amount"]) for c in first] == [
        ("JPY", "5000"),
        ("USD", "10000"),
    ]
    assert {c["today"]["currency"] for c in first} == {"JPY", "USD"}
    assert all(len(c["days"]) == 30 for c in first)

    await payment_factory(confirm=True, customer=customer)
    latest = first
    while latest[1]["netTotal"]["amount"] != "20000":
        latest = (await next_of(stream))["data"]["revenue"]["currencies"]
    assert latest[0]["netTotal"]["amount"] == "5000"  # JPY is never mixed in
    assert latest[1]["paymentsToday"] == 2
    await stream.aclose()


async def test_revenue_of_one_currency(
    subscribe: Callable[..., Any], payment_factory: Callable[..., Any]
) -> None:
    await payment_factory(confirm=True)
    stream = subscribe(REVENUE, currency=" eur ")
    (only,) = (await next_of(stream))["data"]["revenue"]["currencies"]
    assert (only["currency"], only["netTotal"]["amount"]) == ("EUR", "0")
    await stream.aclose()


async def test_an_unexpected_failure_is_masked(
    subscribe: Callable[..., Any], app_services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("password=hunter2 in SELECT * FROM secrets")

    monkeypatch.setattr(app_services.statistics, "snapshot", broken)
    stream = subscribe(REVENUE)
    body = await next_of(stream)
    assert body["errors"] == [
        {
            "message": "Unexpected error; subscribe again.",
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    assert "hunter2" not in str(body)
    await stream.aclose()


async def test_payment_events_load_what_the_event_names(
    subscribe: Callable[..., Any], app_services: Any, org: str, payment_factory: Callable[..., Any]
) -> None:
    payment = await payment_factory(confirm=True)
    stream = subscribe(
        "subscription { paymentEvents { kind status payment { id amountRefunded { amount } } "
        "refund { id } } }"
    )
    first = asyncio.ensure_future(next_of(stream))
    await asyncio.sleep(0.2)  # subscribed
    data = {"status": "succeeded", "customer_id": payment["customerId"]}
    await publish(app_services.db, Event(org, "payment", "pay_gone", data))  # skipped: no row
    await publish(app_services.db, Event(org, "payment", payment["id"], data))
    event = (await first)["data"]["paymentEvents"]
    assert event == {
        "kind": "PAYMENT",
        "status": "SUCCEEDED",
        "payment": {"id": payment["id"], "amountRefunded": {"amount": "0"}},
        "refund": None,
    }
    await stream.aclose()


def _graphql_memo_objects() -> int:
    gc.collect()
    return sum(type(o).__name__ in {"CollectedFields", "FieldDetails"} for o in gc.get_objects())


async def test_a_long_subscription_does_not_accumulate_per_event_memory(
    subscribe: Callable[..., Any], app_services: Any, org: str, payment_factory: Callable[..., Any]
) -> None:
    await payment_factory(confirm=True)
    stream = subscribe(REVENUE)
    await next_of(stream)

    async def events(count: int) -> None:
        for n in range(count):
            await publish(app_services.db, Event(org, "refund", f"re_{n}"))
            await next_of(stream)

    await events(5)
    before = _graphql_memo_objects()
    await events(40)
    # graphql-core's shared per-subscription memo grew by ~90 objects per event here.
    assert _graphql_memo_objects() - before < 20
    await stream.aclose()


async def test_a_stream_stops_when_its_token_expires(
    app_services: Any, org: str, payment_factory: Callable[..., Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    expires = datetime.now(UTC) + timedelta(seconds=2)
    principal = Principal("test-admin", org, Role.ADMIN, expires_at=expires)
    context = Context(app_services, principal=principal)
    stream = await schema.subscribe(REVENUE, context_value=context)
    first = await asyncio.wait_for(anext(stream), 20)  # type: ignore[arg-type]
    assert first.errors is None
    await asyncio.sleep(2.1)
    await payment_factory(confirm=True)
    ended = await asyncio.wait_for(anext(stream), 20)  # type: ignore[arg-type]
    assert ended.errors is not None
    assert ended.errors[0].message == "Token has expired; reconnect with a new one."
    assert (ended.errors[0].extensions or {}).get("code") == "UNAUTHENTICATED"
    await stream.aclose()  # type: ignore[union-attr]
