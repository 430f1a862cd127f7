"""The `Live` subscriptions across real processes.

Two `billing serve` processes share the test database and Stripe emulator: changes are made
through A (HTTP) and watched on B (graphql-transport-ws). B runs with a cap of 3 subscriptions
per connection.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from app.core.pubsub import Event, listener_name, publish
from app.core.settings import Settings
from db.connection import Database
from tests.conftest import CONFIRM_PAYMENT, CREATE_CUSTOMER, CREATE_PAYMENT
from tests.live_support import LiveClient, Server, serving
from tests.support import GraphQLClient, new_org, token

pytestmark = pytest.mark.slow

CAP = 3

REVENUE = """subscription($currency: String) {
  revenue(currency: $currency) {
    at
    currencies { currency today { amount } thisMonth { amount } netTotal { amount }
                 paymentsToday days { day net { amount } } }
  }
}"""
PAYMENT_EVENTS = """subscription($customerId: ID) {
  paymentEvents(customerId: $customerId) {
    kind status occurredAt customerId
    payment { id status customerId amount { amount currency } customer { id } }
    refund { id status }
  }
}"""
HEARTBEAT = "subscription { heartbeat(intervalSeconds: 60) }"


@pytest.fixture(scope="module")
def servers(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    home = tmp_path_factory.mktemp("live")
    with serving(settings, home, {}, {"WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": str(CAP)}) as both:
        yield both


@pytest.fixture
async def through_a(servers: list[Server]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=servers[0].url, timeout=30) as http:
        yield http


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url or "", min_size=1, max_size=2)
    await database.connect()
    yield database
    await database.disconnect()


class Org:
    """An organization with an admin acting through process A."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.id = new_org()
        self.settings = settings
        self.admin_token = token(settings, self.id, "admin")
        self.api = GraphQLClient(http, self.admin_token)

    def customer_token(self, customer: dict[str, Any]) -> str:
        return token(self.settings, self.id, "customer", sub=customer["id"])

    async def customer(self) -> dict[str, Any]:
        variables = {"input": {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Live"}}
        made = (await self.api.data(CREATE_CUSTOMER, variables))["customerCreate"]
        assert made["errors"] == [], made
        customer: dict[str, Any] = made["customer"]
        return customer

    async def payment(
        self, customer: dict[str, Any], amount: int = 10000, currency: str = "USD"
    ) -> dict[str, Any]:
        variables = {
            "input": {
                "customerId": customer["id"],
                "amount": {"amount": amount, "currency": currency},
                "paymentMethodId": "pm_card_visa",
                "idempotencyKey": str(uuid.uuid4()),
            }
        }
        made = (await self.api.data(CREATE_PAYMENT, variables))["paymentIntentCreate"]
        assert made["errors"] == [], made
        payment: dict[str, Any] = made["payment"]
        return payment

    async def confirm(self, payment: dict[str, Any]) -> dict[str, Any]:
        variables = {"input": {"paymentId": payment["id"], "idempotencyKey": str(uuid.uuid4())}}
        done = (await self.api.data(CONFIRM_PAYMENT, variables))["paymentIntentConfirm"]
        assert done["errors"] == [], done
        assert done["payment"]["status"] == "SUCCEEDED"
        confirmed: dict[str, Any] = done["payment"]
        return confirmed


def errors_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors of an `error` message, or of a `next` message that carries errors."""
    errors: list[dict[str, Any]] = (
        message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    )
    return errors


def usd(data: dict[str, Any]) -> dict[str, Any] | None:
    found = [c for c in data["revenue"]["currencies"] if c["currency"] == "USD"]
    return found[0] if found else None


def net_total(amount: int) -> Any:
    def accept(data: dict[str, Any]) -> bool:
        figures = usd(data)
        return figures is not None and figures["netTotal"]["amount"] == str(amount)

    return accept


async def watch(live: LiveClient, customer_id: str | None = None) -> dict[str, Any]:
    """Subscribe to paymentEvents, then revenue, and return revenue's first snapshot; once it
    is there, the earlier paymentEvents subscription is running too."""
    await live.subscribe("pay", PAYMENT_EVENTS, {"customerId": customer_id})
    await live.subscribe("rev", REVENUE)
    return await live.data("rev")


async def test_a_payment_through_process_a_reaches_subscribers_on_process_b(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    customer = await org.customer()
    async with LiveClient.connect(servers[1].ws_url, org.admin_token) as live:
        first = await watch(live)
        assert first["revenue"]["currencies"] == []

        payment = await org.payment(customer)
        created = (await live.data("pay"))["paymentEvents"]
        assert created["kind"] == "PAYMENT"
        assert created["status"] == "REQUIRES_CONFIRMATION"
        assert created["payment"]["id"] == payment["id"]

        await org.confirm(payment)
        succeeded = (await live.data("pay"))["paymentEvents"]
        assert succeeded["status"] == "SUCCEEDED"
        assert succeeded["payment"]["status"] == "SUCCEEDED"
        assert succeeded["customerId"] == succeeded["payment"]["customer"]["id"] == customer["id"]
        assert succeeded["occurredAt"] >= created["occurredAt"]

        latest = await live.until("rev", net_total(10000))
        figures = usd(latest)
        assert figures is not None
        assert figures["today"]["amount"] == figures["thisMonth"]["amount"] == "10000"
        assert figures["paymentsToday"] == 1
        assert len(figures["days"]) == 30
        assert figures["days"][-1]["net"]["amount"] == "10000"


async def test_a_refund_is_a_payment_event_and_lowers_the_total(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    payment = await org.confirm(await org.payment(await org.customer()))
    async with LiveClient.connect(servers[1].ws_url, org.admin_token) as live:
        assert net_total(10000)(await watch(live))
        variables = {
            "input": {
                "paymentId": payment["id"],
                "amount": {"amount": 2500, "currency": "USD"},
                "reason": "REQUESTED_BY_CUSTOMER",
                "idempotencyKey": str(uuid.uuid4()),
            }
        }
        made = await org.api.data(
            "mutation($input: RefundCreateInput!) { refundCreate(input: $input) "
            "{ refund { id status } errors { code } } }",
            variables,
        )
        refund = made["refundCreate"]["refund"]
        events = [(await live.data("pay"))["paymentEvents"]]
        while events[-1]["status"] != "SUCCEEDED":
            events.append((await live.data("pay"))["paymentEvents"])
        assert {e["kind"] for e in events} == {"REFUND"}
        assert events[-1]["refund"]["id"] == refund["id"]
        assert events[-1]["payment"]["id"] == payment["id"]
        await live.until("rev", net_total(7500))


async def test_no_event_from_a_rolled_back_transaction(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    org = Org(through_a, settings)
    customer = await org.customer()
    rolled_back, committed = await org.payment(customer), await org.payment(customer)
    async with LiveClient.connect(servers[1].ws_url, org.admin_token) as live:
        await watch(live)

        def event(payment: dict[str, Any]) -> Event:
            data = {"status": "succeeded", "customer_id": customer["id"]}
            return Event(org.id, "payment", payment["id"], data)

        async def publish_then_fail() -> None:
            async with db.transaction():
                await publish(db, event(rolled_back))
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            await publish_then_fail()
        await publish(db, event(committed))

        assert (await live.data("pay"))["paymentEvents"]["payment"]["id"] == committed["id"]
        await live.data("rev")  # one snapshot, for the committed event only
        await live.nothing("pay", 0.5)
        await live.nothing("rev", 0.1)


async def test_a_dropped_listener_sends_a_fresh_snapshot(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    customer = await org.customer()
    b = servers[1]
    async with LiveClient.connect(b.ws_url, org.admin_token) as live:
        first = await watch(live)
        await live.nothing("rev", 0.3)
        admin = await asyncpg.connect(settings.database_url)
        try:
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                listener_name(b.process.pid),
            )
        finally:
            await admin.close()
        assert terminated == 1
        fresh = await live.data("rev", seconds=30)  # no change was made: this is the resync
        assert fresh["revenue"]["at"] >= first["revenue"]["at"]

        await org.confirm(await org.payment(customer))  # the new listener delivers again
        await live.until("rev", net_total(10000))


async def test_connection_init_without_a_valid_token_is_refused(servers: list[Server]) -> None:
    for payload in ({}, {"authorization": "Bearer not-a-token"}):
        async with websockets.connect(
            servers[1].ws_url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403


async def test_revenue_is_for_admins_only(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    customer = await org.customer()
    for bearer in (token(settings, org.id, "service"), org.customer_token(customer)):
        async with LiveClient.connect(servers[1].ws_url, bearer) as live:
            await live.subscribe("rev", REVENUE)
            message = await live.message("rev")
            errors = errors_of(message)
            assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]


async def test_subscriptions_per_connection_are_capped(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    async with LiveClient.connect(servers[1].ws_url, org.admin_token) as live:
        for n in range(CAP):
            await live.subscribe(f"beat{n}", HEARTBEAT)
            assert (await live.data(f"beat{n}"))["heartbeat"]
        await live.subscribe("over", HEARTBEAT)
        refused = await live.message("over")
        assert refused["type"] == "error"
        (error,) = refused["payload"]
        assert error["extensions"] == {"code": "SUBSCRIPTION_LIMIT", "limit": CAP}
        assert f"already runs {CAP} subscriptions" in error["message"]
        assert "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION" in error["message"]

        await live.complete("beat0")
        await asyncio.sleep(0.2)
        await live.subscribe("again", HEARTBEAT)
        assert (await live.data("again"))["heartbeat"]


async def test_a_customer_watches_its_own_payments_only(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    mine, theirs = await org.customer(), await org.customer()
    async with LiveClient.connect(servers[1].ws_url, org.customer_token(mine)) as live:
        await live.subscribe("spy", PAYMENT_EVENTS, {"customerId": theirs["id"]})
        refused = await live.message("spy")
        errors = errors_of(refused)
        assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]
        assert theirs["id"] not in json.dumps(refused)

        await live.subscribe("pay", PAYMENT_EVENTS)  # no customerId: forced to its own
        await live.subscribe("beat", HEARTBEAT)
        await live.data("beat")  # the subscriptions before it are running
        await org.confirm(await org.payment(theirs))
        await org.confirm(await org.payment(mine))
        seen = [(await live.data("pay"))["paymentEvents"] for _ in range(2)]
        assert [e["status"] for e in seen] == ["REQUIRES_CONFIRMATION", "SUCCEEDED"]
        assert {e["customerId"] for e in seen} == {mine["id"]}
        assert {e["payment"]["customerId"] for e in seen} == {mine["id"]}
        await live.nothing("pay", 0.5)


async def test_other_organizations_events_never_arrive(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    ours, theirs = Org(through_a, settings), Org(through_a, settings)
    our_customer, their_customer = await ours.customer(), await theirs.customer()
    async with LiveClient.connect(servers[1].ws_url, ours.admin_token) as live:
        await watch(live)
        their_payment = await theirs.confirm(await theirs.payment(their_customer))
        await live.nothing("pay", 1.0)
        await live.nothing("rev", 0.1)

        our_payment = await ours.confirm(await ours.payment(our_customer, amount=700))
        events = [(await live.data("pay"))["paymentEvents"] for _ in range(2)]
        assert {e["payment"]["id"] for e in events} == {our_payment["id"]}
        latest = await live.until("rev", net_total(700))
        assert their_payment["id"] not in json.dumps(latest)

        # An admin of our organization asking for their customer gets nothing of theirs.
        await live.subscribe("theirs", PAYMENT_EVENTS, {"customerId": their_customer["id"]})
        refused = await live.message("theirs")
        errors = errors_of(refused)
        assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"]


async def test_an_unknown_currency_is_a_clear_error(
    servers: list[Server], through_a: httpx.AsyncClient, settings: Settings
) -> None:
    org = Org(through_a, settings)
    async with LiveClient.connect(servers[1].ws_url, org.admin_token) as live:
        await live.subscribe("rev", REVENUE, {"currency": "XYZ"})
        message = await live.message("rev")
        errors = errors_of(message)
        assert "Unknown or unsupported currency" in errors[0]["message"]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
