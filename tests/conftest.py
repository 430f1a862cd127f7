"""Fixtures: a PostgreSQL (DATABASE_URL's server, else an embedded one) with a fresh database
for this run, the localstripe emulator, and the app running in-process."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from app.core.settings import Settings
from app.ledger.checks import verify
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from app.web.app import create_app
from db.connection import Database
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations
from tests.support import GraphQLClient, new_org, token, with_database

JWT_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server: DATABASE_URL's when set, otherwise an embedded one for this run."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="billing-test-pg-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data")
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


async def create_database(server: str) -> str:
    name = f"billing_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server, name)


async def drop_database(server: str, url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?")[0]
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_factory(server_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Makes fresh, empty databases on the test server; drops them at the end."""
    made: list[str] = []

    async def make() -> str:
        url = await create_database(server_url)
        made.append(url)
        return url

    yield make
    for url in made:
        await drop_database(server_url, url)


@pytest.fixture(scope="session")
async def database_url(database_factory: Callable[[], Any]) -> str:
    url: str = await database_factory()
    await apply_migrations(url)
    return url


@pytest.fixture(scope="session")
def stripe_emulator() -> Iterator[StripeEmulator]:
    emulator = StripeEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
async def verified_books(database_url: str) -> AsyncIterator[str]:
    """The session database, whose money invariants (``billing verify``) must hold once every
    test that used it is done: a violation fails the run."""
    yield database_url
    db = Database(database_url, min_size=1, max_size=2)
    await db.connect()
    try:
        violations = await verify(db)
    finally:
        await db.disconnect()
    if violations:
        listed = "\n".join(str(v) for v in violations[:50])
        pytest.fail(f"billing verify found {len(violations)} violation(s):\n{listed}")


@pytest.fixture(scope="session")
def settings(verified_books: str, stripe_emulator: StripeEmulator) -> Settings:
    return Settings(
        env="test",
        home=Path(tempfile.gettempdir()),
        database_url=verified_books,
        db_pool_min=1,
        db_pool_max=10,
        stripe_api_key=EMULATOR_API_KEY,
        stripe_api_base=stripe_emulator.base_url,
        stripe_max_network_retries=0,
        jwt_secret=JWT_SECRET,
        # Off here (0 = unlimited) so statement counts and timing stay about the operation;
        # tests/security/test_limits.py turns them on.
        rate_limit_restore_rate=0,
        rate_limit_anonymous_restore_rate=0,
    )


async def running(
    app: Starlette, client: tuple[str, int] = ("127.0.0.1", 123)
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, called in-process as if from ``client`` (address, port)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing.test") as http:
            yield http


@pytest.fixture(scope="session")
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in running(create_app(settings)):
        yield client


@pytest.fixture(scope="session")
def app_services(http: httpx.AsyncClient) -> Any:
    transport = http._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.services  # type: ignore[attr-defined]


@pytest.fixture
def org() -> str:
    """A fresh organization per test: tenants isolate tests from each other."""
    return new_org()


@pytest.fixture
def admin(http: httpx.AsyncClient, settings: Settings, org: str) -> GraphQLClient:
    return GraphQLClient(http, token(settings, org, "admin"))


@pytest.fixture
def gql(http: httpx.AsyncClient) -> GraphQLClient:
    """An anonymous client; use ``.as_(token)`` for others."""
    return GraphQLClient(http)


PLAN_FIELDS = """
  id code name description tier interval intervalCount trialDays features
  creditsIncluded maxUsers maxStorageBytes active stripeProductId stripePriceId
  price { amount currency decimal } createdAt archivedAt
"""

CREATE_PLAN = f"""
mutation($input: PlanCreateInput!) {{
  planCreate(input: $input) {{
    plan {{ {PLAN_FIELDS} }}
    errors {{ field message code }}
  }}
}}
"""


@pytest.fixture
def plan_factory(admin: GraphQLClient) -> Callable[..., Any]:
    """Create a plan through the API; returns the plan dict. Overrides replace input fields."""
    counter = iter(range(1_000_000))

    async def make(**overrides: Any) -> dict[str, Any]:
        n = next(counter)
        plan_input: dict[str, Any] = {
            "code": f"plan-{n}",
            "name": f"Plan {n}",
            "tier": "PRO",
            "price": {"amount": 1999, "currency": "USD"},
            "interval": "MONTH",
        }
        plan_input.update(overrides)
        data = await admin.data(CREATE_PLAN, {"input": plan_input})
        payload = data["planCreate"]
        assert payload["errors"] == [], payload["errors"]
        plan: dict[str, Any] = payload["plan"]
        return plan

    return make


CUSTOMER_FIELDS = """
  id externalRef email name preferredCurrency taxExempt metadata stripeCustomerId
  defaultPaymentMethodId address { country line1 line2 city region postalCode }
  taxIds { type value }
"""

CREATE_CUSTOMER = f"""
mutation($input: CustomerCreateInput!) {{
  customerCreate(input: $input) {{
    customer {{ {CUSTOMER_FIELDS} }}
    errors {{ field message code }}
  }}
}}
"""


@pytest.fixture
def customer_factory(admin: GraphQLClient) -> Callable[..., Any]:
    """Create a customer through the API; returns the customer dict."""
    counter = iter(range(1_000_000))

    async def make(**overrides: Any) -> dict[str, Any]:
        n = next(counter)
        customer_input: dict[str, Any] = {"email": f"c{n}@example.com", "name": f"Customer {n}"}
        customer_input.update(overrides)
        data = await admin.data(CREATE_CUSTOMER, {"input": customer_input})
        payload = data["customerCreate"]
        assert payload["errors"] == [], payload["errors"]
        customer: dict[str, Any] = payload["customer"]
        return customer

    return make


PAYMENT_FIELDS = """
  id customerId status captureMethod description orderId metadata paymentMethodId
  stripePaymentIntentId clientSecret nextAction failureCode failureMessage
  amount { amount currency decimal } amountCapturable { amount } amountCaptured { amount }
  amountRefunded { amount } amountRefundable { amount }
  breakdown { subtotal { amount } tax { amount } shipping { amount } discount { amount } }
  createdAt updatedAt
"""

CREATE_PAYMENT = f"""
mutation($input: PaymentIntentCreateInput!) {{
  paymentIntentCreate(input: $input) {{
    payment {{ {PAYMENT_FIELDS} }}
    errors {{ field message code }}
  }}
}}
"""

CONFIRM_PAYMENT = f"""
mutation($input: PaymentIntentConfirmInput!) {{
  paymentIntentConfirm(input: $input) {{
    payment {{ {PAYMENT_FIELDS} }}
    errors {{ field message code }}
  }}
}}
"""


@pytest.fixture
def payment_factory(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> Callable[..., Any]:
    """Create a payment through the API (for a new customer unless ``customer`` is given),
    charged to the card pm_card_visa; ``confirm=True`` also confirms it. Returns the payment."""

    async def make(
        *, confirm: bool = False, customer: dict[str, Any] | None = None, **overrides: Any
    ) -> dict[str, Any]:
        owner = customer or await customer_factory()
        payment_input: dict[str, Any] = {
            "customerId": owner["id"],
            "amount": {"amount": 10000, "currency": "USD"},
            "paymentMethodId": "pm_card_visa",
            "idempotencyKey": f"create-{uuid.uuid4()}",
        }
        payment_input.update(overrides)
        created = (await admin.data(CREATE_PAYMENT, {"input": payment_input}))[
            "paymentIntentCreate"
        ]
        assert created["errors"] == [], created["errors"]
        payment: dict[str, Any] = created["payment"]
        if confirm:
            key = f"confirm-{uuid.uuid4()}"
            confirmed = (
                await admin.data(
                    CONFIRM_PAYMENT, {"input": {"paymentId": payment["id"], "idempotencyKey": key}}
                )
            )["paymentIntentConfirm"]
            assert confirmed["errors"] == [], confirmed["errors"]
            payment = confirmed["payment"]
        return payment

    return make


INVOICE_FIELDS = """
  id number status customerId subscriptionId currency memo dueDate periodStart periodEnd
  subtotal { amount currency decimal } discountTotal { amount } taxableAmount { amount }
  taxTotal { amount } taxInclusive total { amount currency decimal } balanceApplied { amount }
  creditToBalance { amount } amountCredited { amount } creditApplied { amount }
  amountDue { amount decimal } amountPaid { amount } amountRemaining { amount }
  paymentAttempts paymentInProgress statusReason pdfUrl
  tax { name percentage inclusive reverseCharge } lastPaymentError { code message }
  coupon { id code } finalizedAt paidAt voidedAt markedUncollectibleAt
  lines {
    id kind description quantity taxable taxRate informational periodStart periodEnd
    unitAmount { amount } amount { amount currency decimal } discountAmount { amount }
  }
"""

INVOICE_PAYLOAD = f"{{ invoice {{ {INVOICE_FIELDS} }} errors {{ field message code }} }}"

CREATE_INVOICE = (
    f"mutation($input: InvoiceCreateInput!) {{ invoiceCreate(input: $input) {INVOICE_PAYLOAD} }}"
)
FINALIZE_INVOICE = (
    "mutation($input: InvoiceFinalizeInput!) "
    f"{{ invoiceFinalize(input: $input) {INVOICE_PAYLOAD} }}"
)


@pytest.fixture
def invoice_factory(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> Callable[..., Any]:
    """Create a draft through the API (for a new customer unless ``customer`` is given; one
    line of 10.00 USD unless ``lines`` is given); ``finalize=True`` also finalizes it. Returns
    the invoice."""

    async def make(
        *, customer: dict[str, Any] | None = None, finalize: bool = False, **overrides: Any
    ) -> dict[str, Any]:
        owner = customer or await customer_factory()
        invoice_input: dict[str, Any] = {
            "customerId": owner["id"],
            "currency": "USD",
            "lines": [{"description": "Consulting", "unitAmount": 1000}],
            "idempotencyKey": f"invoice-{uuid.uuid4()}",
        }
        invoice_input.update(overrides)
        created = (await admin.data(CREATE_INVOICE, {"input": invoice_input}))["invoiceCreate"]
        assert created["errors"] == [], created["errors"]
        invoice: dict[str, Any] = created["invoice"]
        if finalize:
            done = (await admin.data(FINALIZE_INVOICE, {"input": {"invoiceId": invoice["id"]}}))[
                "invoiceFinalize"
            ]
            assert done["errors"] == [], done["errors"]
            invoice = done["invoice"]
        return invoice

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that leaves a process behind fails (tests/leftovers.py)."""
    from tests.leftovers import describe, leftover_processes, stop

    factory = getattr(session.config, "_tmp_path_factory", None)
    try:
        base = factory.getbasetemp() if factory is not None else None
    except (OSError, ValueError):
        base = None
    left = leftover_processes(base)
    if left:
        listed = "\n  ".join(describe(p) for p in left)
        print(f"\nthis test run left {len(left)} process(es) running:\n  {listed}")
        stop(left)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
