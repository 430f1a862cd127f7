"""The lines a credit for unused time is computed from: one statement, only the organization's
own, finalized lines of the subscription ending after the instant, with their invoice's status
and net value, then the pending lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db.connection import count_statements
from db.repositories.subscriptions.service_periods import ServicePeriodRepository
from tests.schema.test_subscription_money import changed, day, set_card
from tests.schema.test_subscriptions_api import advance, subscribe
from tests.support import GraphQLClient, new_org


async def test_lines_after_an_instant_in_one_statement(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    app_services: Any,
    org: str,
) -> None:
    await advance(admin, day(0))
    basic = await plan_factory(price={"amount": 1000, "currency": "USD"})
    pro = await plan_factory(price={"amount": 3000, "currency": "USD"})
    customer = await customer_factory()
    await set_card(admin, customer["id"], "pm_card_visa")
    sub = await subscribe(admin, customerId=customer["id"], planId=basic["id"], trialDays=0)
    await advance(admin, day(10))
    await changed(admin, sub["id"], planId=pro["id"], prorationBehavior="ALWAYS_INVOICE")
    await advance(admin, day(20))
    await changed(admin, sub["id"], planId=basic["id"], prorationBehavior="CREATE_PRORATIONS")

    periods = ServicePeriodRepository(app_services.db)
    with count_statements() as log:
        rows = await periods.lines_after(org, sub["id"], day(20))
    assert log.count == 1
    found = sorted((r["standing"], r["value"], r["period_start"], r["period_end"]) for r in rows)
    end = datetime(2027, 5, 1, tzinfo=UTC)
    assert found == [
        ("paid", -667, day(10), end),  # the day-10 credit
        ("paid", 1000, day(0), end),  # April
        ("paid", 2000, day(10), end),  # the day-10 charge
        # The day-20 credit, waiting for May 1: 333 (April) - 334 (667 x 10/20, ties to even)
        # + 1000 (2000 x 10/20) left of what was paid.
        ("pending", -999, day(20), end),
        ("pending", 333, day(20), end),
    ]
    assert await periods.lines_after(new_org(), sub["id"], day(20)) == []
    after_april = await periods.lines_after(org, sub["id"], end)
    assert after_april == []
