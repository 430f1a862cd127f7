"""``run_demo``: a new organization filled with a year of billing, for the dashboard and
GraphiQL to show (``billing demo``)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

from app.core.auth import valid_org
from app.core.settings import Settings
from app.demo.actions import Actor
from app.demo.catalog import create_catalog
from app.demo.progress import Progress
from app.demo.scenario import build_scenario
from app.demo.summary import DemoReport, collect_report
from app.demo.timeline import run_timeline
from app.services import Services

__all__ = ["DemoOptions", "DemoRefused", "run_demo"]


class DemoRefused(Exception):
    """The demo cannot run with these settings or for this organization (the message says
    why and what to do)."""


@dataclass(frozen=True)
class DemoOptions:
    org: str = "demo"
    customers: int = 300
    months: int = 12
    seed: int = 1
    concurrency: int = 8

    def check(self, settings: Settings) -> None:
        """Refuse what the demo cannot do (before anything is started)."""
        if not settings.test_clocks:
            raise DemoRefused(
                "billing demo runs its year of billing on a test clock, and test clocks are off "
                "with BILLING_ENV=production."
            )
        if not valid_org(self.org):
            raise DemoRefused("--org must be 1-63 characters of a-z, 0-9, '-' and '_'.")
        if not 1 <= self.customers <= 5000:
            raise DemoRefused("--customers must be between 1 and 5000.")
        if not 1 <= self.months <= 36:
            raise DemoRefused("--months must be between 1 and 36.")
        if not 1 <= self.concurrency <= 32:
            raise DemoRefused("concurrency must be between 1 and 32.")


async def run_demo(
    settings: Settings, options: DemoOptions, *, stream: TextIO | None = None
) -> DemoReport:
    """Create ``options.org`` and run its scenario through the application services; the
    organization's test clock ends about now, after ``options.months`` months of billing.
    Progress goes to ``stream`` (stderr by default). Needs the database migrated and Stripe
    (or its emulator) configured, as ``billing serve`` has them."""
    options.check(settings)
    out = stream if stream is not None else sys.stderr
    started = time.monotonic()
    scenario = build_scenario(customers=options.customers, months=options.months, seed=options.seed)
    # The year ends now (to the hour): the dashboard's "today" and last 30 days have data.
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=scenario.days)
    pool = max(settings.db_pool_max, options.concurrency + 2)
    async with Services.open(settings.with_overrides(db_pool_max=pool)) as services:
        await _refuse_if_used(services, options.org)
        progress = Progress(out, scenario.days + 1)
        progress.say(
            f"billing demo: organization {options.org!r}, {options.customers} customers, "
            f"{options.months} months from {start:%Y-%m-%d} (seed {options.seed})"
        )
        catalog = await create_catalog(services, options.org, scenario.plans)
        actor = Actor(services, options.org, catalog)

        async def on_day(day: int) -> None:
            done = actor.tally.done
            progress.update(
                day + 1,
                f"{(start + timedelta(days=day)):%Y-%m-%d}  "
                f"{sum(n for k, n in done.items() if k.value == 'signup')} customers",
            )

        steps = await run_timeline(
            services,
            options.org,
            scenario,
            actor,
            start=start,
            concurrency=options.concurrency,
            on_day=on_day,
        )
        progress.finish()
        report = await collect_report(
            services,
            options.org,
            elapsed=0.0,
            worker_steps=steps,
            done=dict(actor.tally.done),
            skipped=dict(actor.tally.skipped),
        )
    report.elapsed = time.monotonic() - started
    return report


async def _refuse_if_used(services: Services, org: str) -> None:
    """The demo makes a new organization; one with a catalog or customers is someone's."""
    plans = await services.plans.read.count(org, {})
    customers = await services.customers.read.count(org, {})
    if plans or customers:
        raise DemoRefused(
            f"organization {org!r} already has data ({plans} plans, {customers} customers); "
            "the demo only fills a new one: pass another name with --org (e.g. --org demo2)."
        )
