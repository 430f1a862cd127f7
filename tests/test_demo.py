"""`billing demo` on a small size: the organization it makes through the application services
has what the dashboard and GraphiQL are meant to show, and its books pass `billing verify`."""

from __future__ import annotations

import io
from collections import Counter

import pytest

from app.core.settings import Settings
from app.demo import DemoOptions, DemoRefused, run_demo
from app.demo.scenario import Kind, build_scenario
from app.invoicing import InvoiceStatus
from app.ledger import verify
from app.services import Services
from app.subscriptions import Status
from tests.support import new_org


async def test_a_small_demo_shows_every_kind_of_event_and_its_books_hold(
    settings: Settings,
) -> None:
    org = new_org()
    out = io.StringIO()
    report = await run_demo(
        settings, DemoOptions(org=org, customers=12, months=3, seed=7), stream=out
    )

    assert "[100%]" in out.getvalue()  # not a terminal: plain progress lines
    assert report.customers == 12
    assert report.violations == []
    assert report.refunds >= 1
    assert report.credit_notes >= 1
    assert {p.currency for p in report.payments} <= {"USD", "EUR", "GBP"}

    async with Services.open(settings) as services:
        plans, _ = await services.plans.read.page(org, {}, first=100, after=None)
        assert {p.price.currency for p in plans} == {"USD", "EUR", "GBP"}

        invoices, more = await services.invoices.read.page(org, {}, first=500, after=None)
        assert not more
        paid = [i for i in invoices if i.status is InvoiceStatus.PAID]
        periods = Counter(i.subscription_id for i in paid if i.subscription_id)
        assert max(periods.values()) >= 3, periods  # renewed month after month on the clock
        # A card started failing: a renewal was retried by dunning (failed payments, then
        # past_due; recovered, or canceled with its invoice closed).
        assert any(i.payment_attempts >= 2 for i in invoices)
        failed = await services.payments.read.count(org, {"statuses": ["failed"]})
        assert failed >= 1
        assert any(
            i.status in (InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOID) for i in invoices
        ) or await services.subscriptions.read.count(org, {"status": Status.PAST_DUE.value})

        refunds, _ = await services.refunds.read.page(org, {}, first=50, after=None)
        assert any(r.status.value == "succeeded" for r in refunds)
        notes, _ = await services.credit_notes.read.page(org, {}, first=50, after=None)
        assert notes
        canceled = await services.subscriptions.read.count(org, {"status": Status.CANCELED.value})
        assert canceled >= 1
        # The same checks as `billing verify --org`.
        assert await verify(services.db, org) == []

    # A second run on the same organization is refused: the demo only fills a new one.
    with pytest.raises(DemoRefused, match="already has data"):
        await run_demo(settings, DemoOptions(org=org, customers=2, months=1), stream=out)


async def test_the_demo_refuses_production(settings: Settings) -> None:
    with pytest.raises(DemoRefused, match="production"):
        await run_demo(
            settings.with_overrides(env="production"),
            DemoOptions(org=new_org()),
            stream=io.StringIO(),
        )


def test_the_scenario_depends_on_the_seed_only() -> None:
    first = build_scenario(customers=50, months=6, seed=3)
    assert first == build_scenario(customers=50, months=6, seed=3)
    assert first != build_scenario(customers=50, months=6, seed=4)
    kinds = Counter(a.kind for s in first.scripts for a in s.actions)
    assert kinds[Kind.SIGNUP] == 50
    assert all(kinds[kind] >= 1 for kind in Kind)
    assert {p.currency for p in first.plans} == {"USD", "EUR", "GBP"}
