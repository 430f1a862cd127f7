"""Support for tests/test_fault_processes.py: real `billing serve` / `billing worker` processes
that can be SIGKILLed and restarted on the same port, an HTTP client that spreads requests over
the API processes and retries on the other one when a process dies, and live subscribers that
reconnect and record every message."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import websockets

from app.core.settings import Settings
from app.stripe.emulator import free_port

BILLING = [sys.executable, "-m", "app.cli"]

# Short leases, so what a killed process held (idempotency keys, subscriptions being billed) is
# taken over within the run; the design keeps a takeover safe even of a request still alive.
LEASE_SECONDS = 6


def fault_env(settings: Settings, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BILLING_ENV": "test",
        "BILLING_HOME": str(home),
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "JWT_SECRET": settings.jwt_secret or "",
        "RATE_LIMIT_RESTORE_RATE": "0",
        "RATE_LIMIT_ANONYMOUS_RESTORE_RATE": "0",
        "LOG_LEVEL": "warning",
        "WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
        "IDEMPOTENCY_LEASE_SECONDS": str(LEASE_SECONDS),
        "WORKER_IDLE_SECONDS": "1",
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "6",
    }


@dataclass
class Proc:
    """One `billing serve --no-worker --no-migrate` (with ``port``) or `billing worker`."""

    name: str
    env: dict[str, str]
    log: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    killed: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        if self.port is None:
            args = ["worker"]
        else:
            args = ["serve", "--no-worker", "--no-migrate", "--host", "127.0.0.1"]
            args += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            out.write(f"\n== start {self.starts + 1} of {self.name}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [*BILLING, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def ready(self, seconds: float = 180) -> None:
        """Wait for `/ready` (an API) or a few seconds of life (a worker)."""
        deadline = time.monotonic() + seconds
        if self.port is None:
            await asyncio.sleep(1)
            if not self.alive():
                raise AssertionError(f"{self.name} exited at start:\n{self.tail()}")
            return
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                if not self.alive() or time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} did not become ready:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.2)

    async def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        assert self.process is not None
        assert self.alive()
        os.kill(self.process.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, 30)
        self.killed += 1

    async def terminate(self, seconds: float = 60) -> int | None:
        """SIGTERM and the exit status (None: it had to be killed after ``seconds``)."""
        if self.process is None:
            return None
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, seconds)
        except subprocess.TimeoutExpired:
            self.force_stop()
            return None

    def force_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Cluster:
    apis: list[Proc]
    workers: list[Proc]

    @property
    def all(self) -> list[Proc]:
        return [*self.apis, *self.workers]


@contextlib.asynccontextmanager
async def cluster(settings: Settings, home: Path) -> AsyncIterator[Cluster]:
    """Two API processes and two workers on the test database and emulator, ready; whatever
    is still running on exit is killed (the test stops them gracefully first)."""
    env = fault_env(settings, home)
    apis = [Proc(f"api{n}", env, home / f"api{n}.log", port=free_port()) for n in range(2)]
    workers = [Proc(f"worker{n}", env, home / f"worker{n}.log") for n in range(2)]
    made = Cluster(apis, workers)
    try:
        for proc in made.all:
            proc.start()
        await asyncio.gather(*(proc.ready() for proc in made.all))
        yield made
    finally:
        for proc in made.all:
            proc.force_stop()


class ServerError(AssertionError):
    """An answer that no retry should fix: a 5xx or a top-level GraphQL error."""


@dataclass
class CallStats:
    ok: Counter[int] = field(default_factory=Counter)  # answered requests per API index
    transport_failures: Counter[int] = field(default_factory=Counter)  # per API index
    in_flight_failures: Counter[int] = field(default_factory=Counter)  # connection lost mid-way
    failed_on: Counter[tuple[int, str]] = field(default_factory=Counter)  # (API, operation)
    retried_elsewhere: int = 0
    in_use_waits: Counter[str] = field(default_factory=Counter)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, code)
    samples: dict[tuple[str, str], str] = field(default_factory=dict)  # a message of each
    # Customers whose subscriptionCreate, retried with its key on the other process after the
    # first one died, was refused as DUPLICATE (the product bug in the report of this test).
    retried_create_refused: list[str] = field(default_factory=list)
    operations: Counter[str] = field(default_factory=Counter)


RETRY_CODES = frozenset({"IDEMPOTENCY_KEY_IN_USE", "OPERATION_IN_PROGRESS"})


class Apis:
    """Spreads GraphQL requests over the API processes (round robin). A request whose
    connection fails (the process is dead or died with it in flight) is sent again, unchanged
    (same idempotency key), to the other process; one that finds its key still held by a dead
    request waits for the lease to end."""

    def __init__(self, urls: list[str], *, timeout: float = 240) -> None:
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=20)
        self.clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for url in urls]
        self.timeout = timeout
        self.stats = CallStats()
        self._turn = 0

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    def next_index(self) -> int:
        self._turn += 1
        return self._turn % len(self.clients)

    async def call(
        self,
        bearer: str,
        query: str,
        variables: dict[str, Any],
        *,
        name: str,
        prefer: int | None = None,
    ) -> dict[str, Any]:
        """The payload of mutation/query field ``name`` (its ``errors`` tallied by code)."""
        index = self.next_index() if prefer is None else prefer
        deadline = time.monotonic() + self.timeout
        body = {"query": query, "variables": variables}
        headers = {"authorization": f"Bearer {bearer}"}
        moved = False
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} got no answer within {self.timeout}s")
            try:
                response = await self.clients[index].post("/graphql", json=body, headers=headers)
            except httpx.TransportError as exc:
                self.stats.transport_failures[index] += 1
                if not isinstance(exc, httpx.ConnectError):
                    self.stats.in_flight_failures[index] += 1
                self.stats.failed_on[(index, name)] += 1
                if not moved:
                    self.stats.retried_elsewhere += 1
                    moved = True
                index = (index + 1) % len(self.clients)
                await asyncio.sleep(0.2)
                continue
            if response.status_code != 200:
                raise ServerError(f"{name}: HTTP {response.status_code}: {response.text[:2000]}")
            answer: dict[str, Any] = response.json()
            if answer.get("errors"):
                raise ServerError(f"{name}: {answer['errors']}")
            self.stats.ok[index] += 1
            payload: dict[str, Any] = answer["data"][name]
            codes = {e["code"] for e in payload.get("errors") or []}
            if codes and codes <= RETRY_CODES:
                self.stats.in_use_waits[name] += 1
                await asyncio.sleep(0.5)
                index = (index + 1) % len(self.clients)
                continue
            self.stats.operations[name] += 1
            if name == "subscriptionCreate" and moved and codes == {"DUPLICATE"}:
                self.stats.retried_create_refused.append(variables["input"]["customerId"])
                return payload
            for error in payload.get("errors") or []:
                self.stats.codes[(name, error["code"])] += 1
                self.stats.samples.setdefault(
                    (name, error["code"]),
                    f"{error.get('message')} (moved: {moved}, variables: {variables})",
                )
            return payload


# -- live subscribers -----------------------------------------------------------------------

REVENUE = """subscription {
  revenue { at currencies { currency netTotal { amount } } }
}"""
PAYMENT_EVENTS = """subscription {
  paymentEvents { kind status payment { id } refund { id } }
}"""


@dataclass
class Watcher:
    """One WebSocket to one API process running `Live.revenue` and `Live.paymentEvents` for
    one organization, for the whole run: when the connection ends it reconnects (to the same
    process, once restarted) and subscribes again, recording every message per connection."""

    name: str
    api: int
    url: str
    bearer: str
    org: str
    connections: int = 0  # acknowledged connections
    drops: int = 0  # connections that ended while the test still watched
    snapshots: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # (conn, net)
    events: list[tuple[int, str, str, str]] = field(default_factory=list)  # (conn, kind, ...)
    errors: list[dict[str, Any]] = field(default_factory=list)
    first_of_connection: dict[int, str] = field(default_factory=dict)  # conn -> op of 1st msg

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 0.2
            except (OSError, websockets.WebSocketException, TimeoutError):
                pass
            if not stop.is_set():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _session(self, stop: asyncio.Event) -> None:
        async with websockets.connect(
            self.url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            max_size=None,
            open_timeout=15,
        ) as ws:
            init = {
                "type": "connection_init",
                "payload": {"authorization": f"Bearer {self.bearer}"},
            }
            await ws.send(json.dumps(init))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if ack.get("type") != "connection_ack":
                self.errors.append(ack)
                return
            self.connections += 1
            conn = self.connections
            for op, query in (("rev", REVENUE), ("pay", PAYMENT_EVENTS)):
                message = {"id": op, "type": "subscribe", "payload": {"query": query}}
                await ws.send(json.dumps(message))
            stopped = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    received = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait(
                        {received, stopped}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if received not in done:
                        received.cancel()
                        with contextlib.suppress(BaseException):
                            await received
                        return
                    try:
                        raw = received.result()
                    except websockets.ConnectionClosed:
                        self.drops += 1
                        return
                    self._record(conn, json.loads(raw))
                    if json.loads(raw).get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
            finally:
                stopped.cancel()

    def _record(self, conn: int, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in {"ping", "pong"}:
            return
        if kind != "next" or message["payload"].get("errors"):
            self.errors.append(message)
            return
        op = message["id"]
        self.first_of_connection.setdefault(conn, op)
        data = message["payload"]["data"]
        if op == "rev":
            net = {
                c["currency"]: int(c["netTotal"]["amount"]) for c in data["revenue"]["currencies"]
            }
            self.snapshots.append((conn, net))
        else:
            event = data["paymentEvents"]
            ident = (event.get("refund") or {}).get("id") or event["payment"]["id"]
            self.events.append((conn, event["kind"], event["status"], ident))

    def last_net(self) -> dict[str, int] | None:
        return self.snapshots[-1][1] if self.snapshots else None

    def snapshots_of(self, conn: int) -> int:
        return sum(1 for c, _ in self.snapshots if c == conn)


# -- the workload -------------------------------------------------------------------------

START = datetime(2028, 1, 1, tzinfo=UTC)

PLAN = """mutation($input: PlanCreateInput!) {
  planCreate(input: $input) { plan { id price { amount currency } } errors { code message } }
}"""
CUSTOMER = """mutation($input: CustomerCreateInput!) {
  customerCreate(input: $input) { customer { id } errors { code message } }
}"""
SET_CARD = """mutation($input: CustomerSetDefaultPaymentMethodInput!) {
  customerSetDefaultPaymentMethod(input: $input) { customer { id } errors { code message } }
}"""
SUBSCRIBE = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id status } errors { code message } }
}"""
CANCEL = """mutation($input: SubscriptionCancelInput!) {
  subscriptionCancel(input: $input) { subscription { id status } errors { code message } }
}"""
PAYMENT = """mutation($input: PaymentIntentCreateInput!) {
  paymentIntentCreate(input: $input) {
    payment { id status amount { amount } } errors { code message }
  }
}"""
CONFIRM = """mutation($input: PaymentIntentConfirmInput!) {
  paymentIntentConfirm(input: $input) {
    payment { id status amountCaptured { amount } } errors { code message }
  }
}"""
REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id status amount { amount } } errors { code message } }
}"""
INVOICE = """mutation($input: InvoiceCreateInput!) {
  invoiceCreate(input: $input) { invoice { id status } errors { code message } }
}"""
FINALIZE = """mutation($input: InvoiceFinalizeInput!) {
  invoiceFinalize(input: $input) { invoice { id status number } errors { code message } }
}"""
PAY = """mutation($input: InvoicePayInput!) {
  invoicePay(input: $input) { invoice { id status } errors { code message } }
}"""
CREDIT_NOTE = """mutation($input: CreditNoteCreateInput!) {
  creditNoteCreate(input: $input) { creditNote { id number } errors { code message } }
}"""
ADVANCE = """mutation($to: DateTime!) {
  testClockAdvance(input: {to: $to}) { now steps errors { code message } }
}"""

# What a payload may answer in this workload without anything being wrong: a card that
# declines (the dunning cards), a refund or credit note beyond what is left (the concurrent
# pairs race for it on purpose), and states that moved on (a cancellation of an ended
# subscription, a finalization retried after the process that did it died).
EXPECTED_CODES = frozenset(
    {"CARD_DECLINED", "AMOUNT_EXCEEDS_REFUNDABLE", "AMOUNT_EXCEEDS_CREDITABLE", "INVALID_STATE"}
)


def key() -> str:
    return str(uuid.uuid4())


@dataclass
class Org:
    id: str
    admin: str  # bearer
    currency: str
    plans: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    clock: datetime = START
    clock_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Workload:
    """Mixed traffic over both API processes until ``stop`` is set, from ``lanes`` concurrent
    drivers per organization (seeded, so the mix is reproducible; the timing is not)."""

    def __init__(self, apis: Apis, orgs: list[Org], *, seed: int = 7) -> None:
        self.apis = apis
        self.orgs = orgs
        self.random = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
        self.clock_steps = 0
        self.concurrent_refund_pairs = 0

    async def call(self, org: Org, query: str, name: str, **variables: Any) -> dict[str, Any]:
        return await self.apis.call(org.admin, query, variables, name=name)

    async def setup(self, org: Org) -> None:
        await self.advance(org, START)
        amounts = [1999, 4900, 900]
        for n, amount in enumerate(amounts):
            made = await self.call(
                org,
                PLAN,
                "planCreate",
                input={
                    "code": f"fault-{n}",
                    "name": f"Fault {n}",
                    "tier": "PRO",
                    "interval": "MONTH",
                    "price": {"amount": amount, "currency": org.currency},
                    "trialDays": 7 if n == 2 else 0,
                },
            )
            assert made["errors"] == [], made
            org.plans.append(made["plan"]["id"])
        for _ in range(4):
            await self.new_customer(org, "pm_card_visa")

    async def new_customer(self, org: Org, card: str) -> str:
        made = await self.call(
            org,
            CUSTOMER,
            "customerCreate",
            input={"email": f"{uuid.uuid4().hex[:10]}@example.com", "name": "Fault"},
        )
        assert made["errors"] == [], made
        customer_id: str = made["customer"]["id"]
        done = await self.call(
            org,
            SET_CARD,
            "customerSetDefaultPaymentMethod",
            input={"customerId": customer_id, "paymentMethodId": card},
        )
        assert done["errors"] == [], done
        if card == "pm_card_visa":
            org.customers.append(customer_id)
        return customer_id

    async def subscribe(self, org: Org) -> None:
        card = "pm_card_chargeCustomerFail" if self.random.random() < 0.2 else "pm_card_visa"
        customer_id = await self.new_customer(org, card)
        trial = self.random.choice([None, 0, 0, 3, 14])
        made = await self.call(
            org,
            SUBSCRIBE,
            "subscriptionCreate",
            input={
                "customerId": customer_id,
                "planId": self.random.choice(org.plans),
                "trialDays": trial,
                "idempotencyKey": key(),
            },
        )
        if made["subscription"] is not None:
            org.subscriptions.append(made["subscription"]["id"])

    async def cancel(self, org: Org) -> None:
        if not org.subscriptions:
            return
        await self.call(
            org,
            CANCEL,
            "subscriptionCancel",
            input={
                "id": self.random.choice(org.subscriptions),
                "atPeriodEnd": self.random.random() < 0.5,
            },
        )

    async def payment(self, org: Org, amount: int) -> str | None:
        made = await self.call(
            org,
            PAYMENT,
            "paymentIntentCreate",
            input={
                "customerId": self.random.choice(org.customers),
                "amount": {"amount": amount, "currency": org.currency},
                "paymentMethodId": "pm_card_visa",
                "idempotencyKey": key(),
            },
        )
        assert made["errors"] == [], made
        confirmed = await self.call(
            org,
            CONFIRM,
            "paymentIntentConfirm",
            input={"paymentId": made["payment"]["id"], "idempotencyKey": key()},
        )
        assert confirmed["errors"] == [], confirmed
        assert confirmed["payment"]["status"] == "SUCCEEDED", confirmed
        payment_id: str = confirmed["payment"]["id"]
        return payment_id

    async def refund(
        self, org: Org, payment_id: str, amount: int | None, prefer: int | None
    ) -> None:
        money = None if amount is None else {"amount": amount, "currency": org.currency}
        await self.apis.call(
            org.admin,
            REFUND,
            {
                "input": {
                    "paymentId": payment_id,
                    "amount": money,
                    "reason": "REQUESTED_BY_CUSTOMER",
                    "idempotencyKey": key(),
                }
            },
            name="refundCreate",
            prefer=prefer,
        )

    async def pay_and_refund(self, org: Org) -> None:
        amount = self.random.choice([1000, 2500, 9999])
        payment_id = await self.payment(org, amount)
        assert payment_id is not None
        roll = self.random.random()
        if roll < 0.35:
            # Two refunds of 60 % at once, one through each API process: one must lose.
            self.concurrent_refund_pairs += 1
            part = amount * 6 // 10
            await asyncio.gather(
                self.refund(org, payment_id, part, 0), self.refund(org, payment_id, part, 1)
            )
        elif roll < 0.6:
            await self.refund(org, payment_id, amount // 3, None)
            await self.refund(org, payment_id, None, None)  # the rest
        elif roll < 0.8:
            await self.refund(org, payment_id, None, None)

    async def invoice(self, org: Org) -> None:
        made = await self.call(
            org,
            INVOICE,
            "invoiceCreate",
            input={
                "customerId": self.random.choice(org.customers),
                "currency": org.currency,
                "lines": [
                    {"description": "Consulting", "unitAmount": 1500},
                    {"description": "Setup", "unitAmount": 500},
                ],
                "idempotencyKey": key(),
            },
        )
        assert made["errors"] == [], made
        invoice_id = made["invoice"]["id"]
        done = await self.call(org, FINALIZE, "invoiceFinalize", input={"invoiceId": invoice_id})
        assert done["errors"] == [] or done["errors"][0]["code"] == "INVALID_STATE", done
        paid = await self.call(
            org,
            PAY,
            "invoicePay",
            input={
                "invoiceId": invoice_id,
                "paymentMethodId": "pm_card_visa",
                "idempotencyKey": key(),
            },
        )
        if paid["errors"] or self.random.random() < 0.5:
            return
        lines = [{"description": "Goodwill", "unitAmount": self.random.choice([300, 800, 2000])}]
        settlements = ["REFUND", "BALANCE"]
        await asyncio.gather(
            *(
                self.apis.call(
                    org.admin,
                    CREDIT_NOTE,
                    {
                        "input": {
                            "invoiceId": invoice_id,
                            "lines": lines,
                            "reason": "GOODWILL",
                            "settlement": settlement,
                            "idempotencyKey": key(),
                        }
                    },
                    name="creditNoteCreate",
                    prefer=n,
                )
                for n, settlement in enumerate(settlements)
            )
        )

    async def advance(self, org: Org, to: datetime | None = None) -> None:
        async with org.clock_lock:
            target = to or org.clock + timedelta(days=self.random.choice([4, 9, 16]))
            moved = await self.call(org, ADVANCE, "testClockAdvance", to=target.isoformat())
            assert moved["errors"] == [], moved
            org.clock = target
            self.clock_steps += int(moved["steps"])

    async def lane(self, org: Org, stop: asyncio.Event, *, clock: bool) -> None:
        while not stop.is_set():
            roll = self.random.random()
            if clock and roll < 0.2:
                await self.advance(org)
            elif roll < 0.45:
                await self.subscribe(org)
            elif roll < 0.7:
                await self.pay_and_refund(org)
            elif roll < 0.9:
                await self.invoice(org)
            else:
                await self.cancel(org)
