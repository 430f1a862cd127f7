"""Money under concurrency and crashes: one charge per idempotency key, refunds that never
exceed the payment across two server processes, and recovery after a crash between Stripe's
answer and our commit (localstripe ignores idempotency keys, so only our database and reading
Stripe's state before acting again can make these hold)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.auth import Principal, Role
from app.core.idempotency import IdempotencyKeys
from app.core.settings import Settings
from app.organizations.service import OrganizationService
from app.payments.refunds import RefundReason, RefundService
from app.payments.service import PaymentService
from app.stripe.emulator import free_port
from tests.conftest import CONFIRM_PAYMENT
from tests.schema.test_payments_api import charges_of, row_of
from tests.schema.test_plans_api import stripe_get
from tests.schema.test_refunds_api import CREATE as CREATE_REFUND
from tests.schema.test_refunds_api import stripe_refunds
from tests.support import GraphQLClient, token

PAYMENT = """query($id: ID!) { payment(id: $id) {
  status amountCaptured { amount } amountRefunded { amount } refunds { id status amount { amount } }
} }"""


class SimulatedCrash(RuntimeError):
    """Raised by a gateway wrapper where the process would have died."""


class Faulty:
    """The real Stripe gateway, dying right before or right after one method reaches Stripe."""

    def __init__(self, inner: Any, method: str, *, after: bool) -> None:
        self._inner = inner
        self._method = method
        self._after = after
        self.keys: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._inner, name)
        if name != self._method:
            return real

        async def dying(*args: Any, **kwargs: Any) -> Any:
            self.keys.append(kwargs["idempotency_key"])
            if not self._after:
                raise SimulatedCrash(f"died before {name}")
            await real(*args, **kwargs)
            raise SimulatedCrash(f"died after {name} reached Stripe")

        return dying


class Counting:
    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._method = method
        self.calls = 0
        self.keys: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._inner, name)
        if name != self._method:
            return real

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.keys.append(kwargs["idempotency_key"])
            return await real(*args, **kwargs)

        return counted


# Long enough for the checks made while the crashed request still holds it, even on a busy
# machine (CI runs two suites at once); the tests then wait it out.
LEASE = timedelta(seconds=3)


def crashing_payments(app_services: Any, gateway: Faulty) -> PaymentService:
    db = app_services.db
    return PaymentService(db, gateway, IdempotencyKeys(db, lease=LEASE), lease=LEASE)  # type: ignore[arg-type]


def crashing_refunds(app_services: Any, method: str, *, after: bool) -> RefundService:
    db = app_services.db
    gateway = Faulty(app_services.stripe, method, after=after)
    return RefundService(
        db,
        gateway,  # type: ignore[arg-type]
        IdempotencyKeys(db, lease=LEASE),
        OrganizationService(db),
        lease=LEASE,
    )


async def confirm_with(client: GraphQLClient, payment_id: str, key: str) -> dict[str, Any]:
    data = await client.data(
        CONFIRM_PAYMENT, {"input": {"paymentId": payment_id, "idempotencyKey": key}}
    )
    payload: dict[str, Any] = data["paymentIntentConfirm"]
    return payload


async def test_fifty_concurrent_confirms_with_one_key_charge_once(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payment = await payment_factory()
    counting = Counting(app_services.stripe, "confirm_payment_intent")
    monkeypatch.setattr(app_services.payments, "_stripe", counting)
    key = f"confirm-{uuid.uuid4()}"

    results = await asyncio.gather(*(confirm_with(admin, payment["id"], key) for _ in range(50)))

    succeeded = [r for r in results if r["errors"] == []]
    busy = [r for r in results if r["errors"]]
    assert len(succeeded) + len(busy) == 50
    assert succeeded, "someone got the result"
    assert {r["payment"]["id"] for r in succeeded} == {payment["id"]}
    assert {r["payment"]["status"] for r in succeeded} == {"SUCCEEDED"}
    assert {e["code"] for r in busy for e in r["errors"]} <= {"IDEMPOTENCY_KEY_IN_USE"}
    assert counting.calls == 1, "Stripe was asked to confirm once"
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    charges = await charges_of(settings, intent)
    assert [c["amount"] for c in charges] == [10000], "exactly one charge at Stripe"
    row = await row_of(app_services, payment["id"])
    assert (row["status"], row["amount_captured"], row["operation"]) == ("succeeded", 10000, None)
    print(
        f"\n50 concurrent confirms, one key: {len(succeeded)} answered with the payment, "
        f"{len(busy)} IDEMPOTENCY_KEY_IN_USE, {counting.calls} Stripe confirm, "
        f"{len(charges)} charge"
    )
    late = await confirm_with(admin, payment["id"], key)
    assert late["errors"] == []
    assert late["payment"]["status"] == "SUCCEEDED"


async def test_concurrent_confirms_with_different_keys_charge_once(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    payment = await payment_factory()
    results = await asyncio.gather(
        *(confirm_with(admin, payment["id"], str(uuid.uuid4())) for _ in range(20))
    )
    codes = [tuple(e["code"] for e in r["errors"]) for r in results]
    assert codes.count(()) == 1, codes
    assert set(codes) <= {(), ("INVALID_STATE",), ("OPERATION_IN_PROGRESS",)}
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert len(await charges_of(settings, intent)) == 1


@pytest.mark.parametrize("after", [True, False], ids=["after-stripe", "before-stripe"])
async def test_crash_around_the_confirm_then_retry_with_the_same_key_charges_once(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    settings: Settings,
    org: str,
    after: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payment = await payment_factory()
    key = f"confirm-{uuid.uuid4()}"
    faulty = Faulty(app_services.stripe, "confirm_payment_intent", after=after)
    crashing = crashing_payments(app_services, faulty)
    actor = Principal("test-admin", org, Role.ADMIN)
    with pytest.raises(SimulatedCrash):
        await crashing.confirm(
            org, actor, payment["id"], payment_method_id=None, idempotency_key=key
        )

    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert intent["status"] == ("succeeded" if after else "requires_confirmation")
    row = await row_of(app_services, payment["id"])
    assert (row["status"], row["operation"]) == ("requires_confirmation", "confirm"), (
        "nothing is recorded as succeeded that our process did not see"
    )
    busy = await confirm_with(admin, payment["id"], key)
    assert [e["code"] for e in busy["errors"]] == ["IDEMPOTENCY_KEY_IN_USE"]
    other_key = await confirm_with(admin, payment["id"], str(uuid.uuid4()))
    assert [e["code"] for e in other_key["errors"]] == ["OPERATION_IN_PROGRESS"]

    await asyncio.sleep(LEASE.total_seconds() + 0.2)
    counting = Counting(app_services.stripe, "confirm_payment_intent")
    monkeypatch.setattr(app_services.payments, "_stripe", counting)
    retried = await confirm_with(admin, payment["id"], key)
    assert retried["errors"] == []
    if after:
        assert counting.calls == 0, "Stripe's state was read instead of confirming again"
    else:
        assert counting.keys == faulty.keys, "the retry forwards the same Stripe key"
    assert retried["payment"]["status"] == "SUCCEEDED"
    assert retried["payment"]["amountCaptured"] == {"amount": "10000"}
    assert [c["amount"] for c in await charges_of(settings, intent)] == [10000]
    again = await confirm_with(admin, payment["id"], key)
    assert again == retried, "the key now returns the stored result"
    row = await row_of(app_services, payment["id"])
    assert (row["status"], row["operation"], row["lease_token"]) == ("succeeded", None, None)


async def test_after_a_crash_any_caller_reads_stripe_before_acting(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    settings: Settings,
    org: str,
) -> None:
    payment = await payment_factory()
    crashing = crashing_payments(
        app_services, Faulty(app_services.stripe, "confirm_payment_intent", after=True)
    )
    actor = Principal("test-admin", org, Role.ADMIN)
    with pytest.raises(SimulatedCrash):
        await crashing.confirm(
            org, actor, payment["id"], payment_method_id=None, idempotency_key="lost-key"
        )
    await asyncio.sleep(LEASE.total_seconds() + 0.2)
    refreshed = (
        await admin.data(
            "mutation($id: ID!) { paymentRefresh(input: {paymentId: $id}) "
            "{ payment { status amountCaptured { amount } } errors { code } } }",
            {"id": payment["id"]},
        )
    )["paymentRefresh"]
    assert refreshed == {
        "payment": {"status": "SUCCEEDED", "amountCaptured": {"amount": "10000"}},
        "errors": [],
    }
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert len(await charges_of(settings, intent)) == 1


@pytest.mark.parametrize("after", [True, False], ids=["after-stripe", "before-stripe"])
async def test_crash_around_a_refund_then_retry_with_the_same_key_refunds_once(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    settings: Settings,
    org: str,
    after: bool,
) -> None:
    payment = await payment_factory(confirm=True)
    key = f"refund-{uuid.uuid4()}"
    crashing = crashing_refunds(app_services, "create_refund", after=after)
    actor = Principal("test-admin", org, Role.ADMIN)
    with pytest.raises(SimulatedCrash):
        await crashing.create(
            org,
            actor,
            payment["id"],
            amount=4000,
            currency="USD",
            reason=RefundReason.DUPLICATE,
            note="",
            idempotency_key=key,
        )
    assert len(await stripe_refunds(settings, payment)) == (1 if after else 0)
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert [r["status"] for r in state["refunds"]] == ["PENDING"], "reserved, not succeeded"
    assert state["amountRefunded"] == {"amount": "0"}

    await asyncio.sleep(LEASE.total_seconds() + 0.2)
    retry = (
        await admin.data(
            CREATE_REFUND,
            {
                "input": {
                    "paymentId": payment["id"],
                    "amount": {"amount": 4000, "currency": "USD"},
                    "reason": "DUPLICATE",
                    "idempotencyKey": key,
                }
            },
        )
    )["refundCreate"]
    assert retry["errors"] == []
    assert retry["refund"]["status"] == "SUCCEEDED"
    assert retry["refund"]["id"] == state["refunds"][0]["id"]
    at_stripe = await stripe_refunds(settings, payment)
    assert [(r["amount"], r["metadata"]["refund_id"]) for r in at_stripe] == [
        (4000, retry["refund"]["id"])
    ]
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefunded"] == {"amount": "4000"}


async def test_an_abandoned_refund_is_completed_by_a_refresh_without_duplicating_it(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    settings: Settings,
    org: str,
) -> None:
    payment = await payment_factory(confirm=True)
    crashing = crashing_refunds(app_services, "create_refund", after=True)
    actor = Principal("test-admin", org, Role.ADMIN)
    with pytest.raises(SimulatedCrash):
        await crashing.create(
            org,
            actor,
            payment["id"],
            amount=None,
            currency=None,
            reason=RefundReason.OTHER,
            note="",
            idempotency_key="forgotten",
        )
    refund_id = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]["refunds"][0]["id"]
    refresh = (
        "mutation($id: ID!) { refundRefresh(input: {refundId: $id}) "
        "{ refund { status } errors { code } } }"
    )
    early = (await admin.data(refresh, {"id": refund_id}))["refundRefresh"]
    assert [e["code"] for e in early["errors"]] == ["OPERATION_IN_PROGRESS"]
    await asyncio.sleep(LEASE.total_seconds() + 0.2)
    done = (await admin.data(refresh, {"id": refund_id}))["refundRefresh"]
    assert done == {"refund": {"status": "SUCCEEDED"}, "errors": []}
    assert len(await stripe_refunds(settings, payment)) == 1


@pytest.fixture
def two_servers(settings: Settings, tmp_path: Path) -> Iterator[list[str]]:
    """Two `billing serve` processes on the test database and emulator."""
    env = {
        **os.environ,
        "BILLING_ENV": "test",
        "BILLING_HOME": str(tmp_path),
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "JWT_SECRET": settings.jwt_secret or "",
        "RATE_LIMIT_RESTORE_RATE": "0",
        "RATE_LIMIT_ANONYMOUS_RESTORE_RATE": "0",
    }
    processes, urls = [], []
    for n in range(2):
        port = free_port()
        with (tmp_path / f"server-{n}.log").open("w") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for n, url in enumerate(urls):
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if processes[n].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"server {n} did not start:\n{(tmp_path / f'server-{n}.log').read_text()}"
                    )
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.mark.slow
async def test_fifty_concurrent_refunds_across_two_processes_never_exceed_the_payment(
    two_servers: list[str],
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    settings: Settings,
    org: str,
) -> None:
    payment = await payment_factory(confirm=True)
    headers = {"authorization": f"Bearer {token(settings, org, 'admin')}"}

    async def ask(client: httpx.AsyncClient) -> dict[str, Any]:
        variables = {
            "input": {
                "paymentId": payment["id"],
                "amount": {"amount": 1000, "currency": "USD"},
                "reason": "REQUESTED_BY_CUSTOMER",
                "idempotencyKey": str(uuid.uuid4()),
            }
        }
        response = await client.post(
            "/graphql", json={"query": CREATE_REFUND, "variables": variables}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]["refundCreate"]
        return result

    async with (
        httpx.AsyncClient(base_url=two_servers[0], timeout=60) as one,
        httpx.AsyncClient(base_url=two_servers[1], timeout=60) as two,
    ):
        results = await asyncio.gather(*(ask(one if n % 2 else two) for n in range(50)))

    succeeded = [r for r in results if r["errors"] == []]
    refused = [r for r in results if r["errors"]]
    assert len(succeeded) == 10
    assert {r["refund"]["status"] for r in succeeded} == {"SUCCEEDED"}
    assert len(refused) == 40
    assert {e["code"] for r in refused for e in r["errors"]} == {"AMOUNT_EXCEEDS_REFUNDABLE"}
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefunded"] == {"amount": "10000"}
    assert len(state["refunds"]) == 10
    at_stripe = await stripe_refunds(settings, payment)
    assert sum(r["amount"] for r in at_stripe) == 10000
    assert len(at_stripe) == 10
    print(
        f"\n50 concurrent refunds of 10.00 on 100.00 via 2 processes: {len(succeeded)} succeeded, "
        f"{len(refused)} refused, refunded total {state['amountRefunded']['amount']} cents"
    )
