"""The Stripe mirror of customers and plans, written with no transaction open: compensation of a
failed create, on-demand creation after a crash (same idempotency key, same request), repair
after an unknown outcome, and agreement under concurrent updates."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest

from app.catalog.plans import IntervalUnit, PlanDraft, PlanService, Tier
from app.core.errors import DomainError
from app.core.settings import Settings
from app.customers.service import CustomerDraft, CustomerService
from app.stripe.emulator import EMULATOR_API_KEY
from app.stripe.gateway import (
    AttachedCard,
    ProviderRefused,
    ProviderTimeout,
    StripeGateway,
    StripeProduct,
)
from db.connection import Database
from tests.schema.test_plans_api import stripe_get
from tests.support import new_org

T = TypeVar("T")


class Crash(Exception):
    """The process died here (nothing of ours catches it)."""


class Scripted(StripeGateway):
    """The real gateway (at the emulator) with what a test scripts around each call: ``before``
    raises instead of calling Stripe, ``after`` raises once Stripe has answered (the answer is
    lost), ``gate`` holds the call until set, ``jitter`` delays it. ``calls`` records them."""

    def __init__(self, base_url: str) -> None:
        super().__init__(EMULATOR_API_KEY, api_base=base_url, max_network_retries=0)
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.before: dict[str, BaseException] = {}
        self.after: dict[str, BaseException] = {}
        self.gate: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self.jitter = False

    async def _around(
        self, name: str, arguments: dict[str, Any], call: Coroutine[Any, Any, T]
    ) -> T:
        self.calls.setdefault(name, []).append(arguments)
        self.entered.setdefault(name, asyncio.Event()).set()
        if name in self.gate:
            await self.gate[name].wait()
        if self.jitter:
            await asyncio.sleep(random.uniform(0, 0.05))  # noqa: S311 - shuffles arrivals
        if name in self.before:
            call.close()
            raise self.before.pop(name)
        result = await call
        if name in self.after:
            raise self.after.pop(name)
        return result

    async def create_customer(self, **kwargs: Any) -> str:
        return await self._around("create_customer", kwargs, super().create_customer(**kwargs))

    async def update_customer(self, customer_id: str, **kwargs: Any) -> None:
        await self._around(
            "update_customer", kwargs, super().update_customer(customer_id, **kwargs)
        )

    async def attach_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> AttachedCard:
        return await self._around(
            "attach",
            {"payment_method_id": payment_method_id},
            super().attach_default_payment_method(customer_id, payment_method_id),
        )

    async def create_product(self, **kwargs: Any) -> StripeProduct:
        return await self._around("create_product", kwargs, super().create_product(**kwargs))

    async def update_product(self, product_id: str, **kwargs: Any) -> None:
        await self._around("update_product", kwargs, super().update_product(product_id, **kwargs))

    async def deactivate_price(self, price_id: str) -> None:
        await self._around("deactivate_price", {}, super().deactivate_price(price_id))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=4)
    await database.connect()
    yield database
    await database.disconnect()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Scripted]:
    scripted = Scripted(settings.stripe_api_base or "")
    yield scripted
    await scripted.close()


async def _row(db: Database, table: str, org: str, row_id: str) -> Any:
    return await db.fetch_one(
        f"SELECT *, stripe_sync_token IS NOT NULL AS leased FROM {table} "
        "WHERE organization_id = :org AND id = :id",
        {"org": org, "id": row_id},
    )


async def _count(db: Database, table: str, org: str) -> int:
    value = await db.fetch_val(
        f"SELECT count(*) FROM {table} WHERE organization_id = :org", {"org": org}
    )
    return int(value)


async def _expire_lease(db: Database, table: str, org: str, row_id: str) -> None:
    """What a dead holder's lease becomes once its time is up."""
    await db.execute(
        f"UPDATE {table} SET stripe_sync_until = now() - interval '1 second' "
        "WHERE organization_id = :org AND id = :id",
        {"org": org, "id": row_id},
    )


def _plan(code: str, name: str = "Pro") -> PlanDraft:
    return PlanDraft(
        code=code,
        name=name,
        tier=Tier.PRO,
        amount=1500,
        currency="USD",
        interval=IntervalUnit.MONTH,
    )


# -- customers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ProviderRefused("create the customer", "parameter_invalid"),
        ProviderTimeout("create the customer", 1, money=False),
    ],
    ids=["refused", "timed-out"],
)
async def test_a_failed_customer_create_deletes_the_reserved_row(
    db: Database, gateway: Scripted, failure: DomainError
) -> None:
    org = new_org()
    customers = CustomerService(db, gateway)
    gateway.before["create_customer"] = failure
    with pytest.raises(type(failure)) as raised:
        await customers.create(org, CustomerDraft(email="a@example.com", external_ref="ref-1"))
    assert raised.value.code.value == "PAYMENT_PROVIDER_ERROR"
    assert await _count(db, "customers", org) == 0

    # The external reference was freed with the row.
    created = await customers.create(
        org, CustomerDraft(email="a@example.com", external_ref="ref-1")
    )
    row = await _row(db, "customers", org, created.id)
    assert created.stripe_customer_id is not None
    assert (row["stripe_customer_id"], row["stripe_synced"], row["leased"]) == (
        created.stripe_customer_id,
        True,
        False,
    )


async def test_a_customer_whose_create_died_after_stripe_answered_is_mirrored_on_demand(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    org = new_org()
    customers = CustomerService(db, gateway)
    gateway.after["create_customer"] = Crash()
    with pytest.raises(Crash):
        await customers.create(org, CustomerDraft(email="late@example.com", name="Late"))
    (first,) = gateway.calls["create_customer"]
    customer_id = first["metadata"]["customer_id"]
    row = await _row(db, "customers", org, customer_id)
    assert (row["stripe_customer_id"], row["leased"]) == (None, True)
    await _expire_lease(db, "customers", org, customer_id)

    # The next use that needs Stripe creates it, with the very request the dead one sent, so
    # Stripe (which keeps idempotency keys 24 hours) answers with the Customer it made then.
    customer = await customers.set_default_payment_method(org, customer_id, "pm_card_visa")
    assert gateway.calls["create_customer"] == [first, first]
    assert first["idempotency_key"] == f"customer:{org}:{customer_id}"
    assert customer.stripe_customer_id is not None
    assert customer.default_payment_method_id is not None
    remote = await stripe_get(settings, f"/v1/customers/{customer.stripe_customer_id}")
    assert (remote["email"], remote["metadata"]["customer_id"]) == ("late@example.com", customer_id)
    row = await _row(db, "customers", org, customer_id)
    assert (row["stripe_synced"], row["leased"]) == (True, False)


async def test_ensure_waits_for_a_create_still_in_flight(db: Database, gateway: Scripted) -> None:
    org = new_org()
    customers = CustomerService(db, gateway)
    gateway.gate["create_customer"] = asyncio.Event()
    creating = asyncio.create_task(customers.create(org, CustomerDraft(email="w@example.com")))
    entered = gateway.entered.setdefault("create_customer", asyncio.Event())
    await entered.wait()
    customer_id = gateway.calls["create_customer"][0]["metadata"]["customer_id"]
    ensuring = asyncio.create_task(customers.ensure_stripe_customer(org, customer_id))
    for _ in range(20):  # the waiter polls the lease; it must not finish while Stripe is held
        await asyncio.sleep(0.01)
    assert not ensuring.done()
    gateway.gate["create_customer"].set()
    created, ensured = await asyncio.gather(creating, ensuring)
    assert ensured.stripe_customer_id == created.stripe_customer_id is not None
    assert len(gateway.calls["create_customer"]) == 1


async def test_an_update_whose_answer_was_lost_is_marked_and_repaired(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    org = new_org()
    customers = CustomerService(db, gateway)
    customer = await customers.create(org, CustomerDraft(email="r@example.com", name="Before"))
    path = f"/v1/customers/{customer.stripe_customer_id}"

    # Stripe applied the change but its answer never came: nothing changes here, and the row
    # says that Stripe may differ.
    gateway.after["update_customer"] = ProviderTimeout("update the customer", 1, money=False)
    with pytest.raises(ProviderTimeout):
        await customers.update(org, customer.id, {"name": "Lost"})
    row = await _row(db, "customers", org, customer.id)
    assert (row["name"], row["stripe_synced"], row["leased"]) == ("Before", False, False)
    assert (await stripe_get(settings, path))["name"] == "Lost"

    # The next time the customer's mirror is needed, it is written again from the database.
    repaired = await customers.ensure_stripe_customer(org, customer.id)
    assert repaired.name == "Before"
    assert (await stripe_get(settings, path))["name"] == "Before"
    row = await _row(db, "customers", org, customer.id)
    assert row["stripe_synced"] is True

    # A refusal changes nothing anywhere and leaves the mirror in sync.
    gateway.before["update_customer"] = ProviderRefused("update the customer", "email_invalid")
    with pytest.raises(ProviderRefused):
        await customers.update(org, customer.id, {"email": "new@example.com"})
    row = await _row(db, "customers", org, customer.id)
    assert (row["email"], row["stripe_synced"], row["leased"]) == ("r@example.com", True, False)


async def test_concurrent_updates_leave_stripe_and_the_database_agreeing(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    org = new_org()
    customers = CustomerService(db, gateway)
    customer = await customers.create(org, CustomerDraft(email="c@example.com", name="Start"))
    gateway.jitter = True  # without the lease, Stripe would receive these in any order
    names = [f"Name {n}" for n in range(8)]
    updated = await asyncio.gather(
        *(customers.update(org, customer.id, {"name": name}) for name in names)
    )
    assert sorted(u.name for u in updated) == names
    sent = [call["name"] for call in gateway.calls["update_customer"]]
    assert sorted(sent) == names
    row = await _row(db, "customers", org, customer.id)
    remote = await stripe_get(settings, f"/v1/customers/{customer.stripe_customer_id}")
    # Stripe received them one at a time, in the order the database recorded them.
    assert row["name"] == remote["name"] == sent[-1]
    assert (row["stripe_synced"], row["leased"]) == (True, False)


# -- plans -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ProviderRefused("create the product", "parameter_invalid"),
        ProviderTimeout("create the product", 1, money=False),
    ],
    ids=["refused", "timed-out"],
)
async def test_a_failed_plan_create_deletes_the_reserved_row(
    db: Database, gateway: Scripted, failure: DomainError
) -> None:
    org = new_org()
    plans = PlanService(db, gateway)
    gateway.before["create_product"] = failure
    with pytest.raises(type(failure)):
        await plans.create(org, _plan("team"))
    assert await _count(db, "plans", org) == 0
    created = await plans.create(org, _plan("team"))  # the code was freed with the row
    assert created.stripe_price_id is not None


async def test_a_plan_whose_create_died_is_mirrored_when_next_needed(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    org = new_org()
    plans = PlanService(db, gateway)
    gateway.after["create_product"] = Crash()
    with pytest.raises(Crash):
        await plans.create(org, _plan("solo", name="Solo"))
    (first,) = gateway.calls["create_product"]
    plan_id = first["metadata"]["plan_id"]
    await _expire_lease(db, "plans", org, plan_id)

    renamed = await plans.update(org, plan_id, {"name": "Solo Plus"})
    # Created with the dead attempt's request (its name included), then renamed.
    assert gateway.calls["create_product"] == [first, first]
    assert first["idempotency_key"] == f"plan:{org}:{plan_id}"
    assert renamed.name == "Solo Plus"
    assert renamed.stripe_product_id is not None
    product = await stripe_get(settings, f"/v1/products/{renamed.stripe_product_id}")
    assert product["name"] == "Solo Plus"


async def test_an_archive_whose_answer_was_lost_is_repaired_by_the_next_write(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    org = new_org()
    plans = PlanService(db, gateway)
    plan = await plans.create(org, _plan("gold", name="Gold"))
    price = f"/v1/plans/{plan.stripe_price_id}"

    gateway.after["deactivate_price"] = ProviderTimeout("archive the price", 1, money=False)
    with pytest.raises(ProviderTimeout):
        await plans.archive(org, plan.id)
    row = await _row(db, "plans", org, plan.id)
    assert (row["active"], row["stripe_synced"], row["leased"]) == (True, False, False)
    # localstripe keeps form values as sent ("false"); Stripe returns booleans.
    assert (await stripe_get(settings, price))["active"] in (False, "false")

    # The plan is still offered here, so the next write offers its price again.
    await plans.update(org, plan.id, {"name": "Gold 2"})
    assert (await stripe_get(settings, price))["active"] in (True, "true")
    assert gateway.calls["update_product"][-1] == {
        "name": "Gold 2",
        "price_id": plan.stripe_price_id,
        "active": True,
    }
    row = await _row(db, "plans", org, plan.id)
    assert (row["name"], row["stripe_synced"]) == ("Gold 2", True)

    archived = await plans.archive(org, plan.id)
    assert archived.active is False
    assert (await stripe_get(settings, price))["active"] in (False, "false")


async def test_concurrent_renames_leave_stripe_and_the_database_agreeing(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    org = new_org()
    plans = PlanService(db, gateway)
    plan = await plans.create(org, _plan("race", name="Race"))
    gateway.jitter = True
    names = [f"Race {n}" for n in range(6)]
    await asyncio.gather(*(plans.update(org, plan.id, {"name": name}) for name in names))
    sent = [call["name"] for call in gateway.calls["update_product"]]
    assert sorted(sent) == names
    row = await _row(db, "plans", org, plan.id)
    product = await stripe_get(settings, f"/v1/products/{plan.stripe_product_id}")
    assert row["name"] == product["name"] == sent[-1]


async def test_a_change_waits_for_the_one_in_flight_then_gives_up_clearly(
    db: Database, gateway: Scripted
) -> None:
    org = new_org()
    customers = CustomerService(db, gateway, wait_seconds=0.3)
    customer = await customers.create(org, CustomerDraft(email="q@example.com", name="Q"))
    gateway.gate["update_customer"] = asyncio.Event()
    first = asyncio.create_task(customers.update(org, customer.id, {"name": "First"}))
    await gateway.entered.setdefault("update_customer", asyncio.Event()).wait()
    with pytest.raises(DomainError) as raised:
        await customers.update(org, customer.id, {"name": "Second"})
    assert (raised.value.code.value, raised.value.message, raised.value.field) == (
        "OPERATION_IN_PROGRESS",
        "Another change to this customer is being sent to Stripe; retry in a moment.",
        ("input", "id"),
    )
    gateway.gate["update_customer"].set()
    assert (await first).name == "First"
    assert [call["name"] for call in gateway.calls["update_customer"]] == ["First"]
    row = await _row(db, "customers", org, customer.id)
    assert (row["name"], row["stripe_synced"], row["leased"]) == ("First", True, False)


async def test_a_failed_create_keeps_a_customer_others_already_reference(
    db: Database, gateway: Scripted
) -> None:
    org = new_org()
    customers = CustomerService(db, gateway)
    gateway.gate["create_customer"] = asyncio.Event()
    gateway.before["create_customer"] = ProviderRefused("create the customer", "rate_limit")
    creating = asyncio.create_task(customers.create(org, CustomerDraft(email="k@example.com")))
    await gateway.entered.setdefault("create_customer", asyncio.Event()).wait()
    customer_id = gateway.calls["create_customer"][0]["metadata"]["customer_id"]
    # Someone used the customer while its Stripe Customer was being created.
    await db.execute(
        "INSERT INTO customer_balances (organization_id, customer_id, currency, balance) "
        "VALUES (:org, :id, 'USD', 0)",
        {"org": org, "id": customer_id},
    )
    gateway.gate["create_customer"].set()
    with pytest.raises(ProviderRefused):
        await creating
    # It cannot be deleted, so it stays, marked for the on-demand path, and works from there.
    row = await _row(db, "customers", org, customer_id)
    assert (row["stripe_customer_id"], row["stripe_synced"], row["leased"]) == (None, False, False)
    del gateway.gate["create_customer"]
    ensured = await customers.ensure_stripe_customer(org, customer_id)
    assert ensured.stripe_customer_id is not None
    assert len(gateway.calls["create_customer"]) == 2


async def test_a_payment_for_a_customer_whose_mirror_died_creates_it_first(
    db: Database, gateway: Scripted, settings: Settings
) -> None:
    from app.core.auth import Principal, Role
    from app.core.idempotency import IdempotencyKeys
    from app.payments.service import PaymentDraft, PaymentService

    org = new_org()
    customers = CustomerService(db, gateway)
    gateway.after["create_customer"] = Crash()
    with pytest.raises(Crash):
        await customers.create(org, CustomerDraft(email="pay@example.com", name="Pay"))
    (first,) = gateway.calls["create_customer"]
    customer_id = first["metadata"]["customer_id"]
    await _expire_lease(db, "customers", org, customer_id)

    payments = PaymentService(db, gateway, IdempotencyKeys(db), customers=customers)
    admin = Principal(subject="admin", org=org, role=Role.ADMIN)
    payment = await payments.create(
        org,
        admin,
        PaymentDraft(customer_id=customer_id, amount=1999, currency="USD"),
        idempotency_key="pay-after-crash",
    )
    assert gateway.calls["create_customer"] == [first, first]
    row = await _row(db, "customers", org, customer_id)
    assert row["stripe_customer_id"] is not None
    assert payment.amount.amount == 1999
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment.stripe_payment_intent_id}")
    assert intent["customer"] == row["stripe_customer_id"]
