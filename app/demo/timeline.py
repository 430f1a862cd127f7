"""The demo's year, one day at a time on the organization's test clock.

Each day: move the clock (``Clock.advance``), run the billing worker's pass
(``SubscriptionService.process_due``, what ``billing worker`` runs, here limited to the demo's
organization) until nothing is due, so renewals, trial ends, dunning retries, expiries and
cancellations at period end happen at their time, then do the customers' actions of the day.
Both run concurrently (bounded): the worker's claims are ``FOR UPDATE SKIP LOCKED``, and a
customer's actions only touch that customer. Every action of a day is independent of the
order they finish in, so the seed alone decides what happens.

Everything the scenario schedules falls on the same time of day as the clock's steps (periods
start at a signup, trials and retries are whole days), so each step finds things due exactly
at the clock's time; the 23-hour window of an incomplete subscription ends on the next step.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from app.demo.actions import Actor
from app.demo.scenario import Action, Scenario, Script
from app.services import Services

__all__ = ["run_timeline"]

log = logging.getLogger(__name__)


async def run_timeline(
    services: Services,
    org: str,
    scenario: Scenario,
    actor: Actor,
    *,
    start: datetime,
    concurrency: int,
    on_day: Callable[[int], Awaitable[None]],
) -> int:
    """Run the scenario from ``start``; returns how many subscription steps the worker took."""
    by_day: dict[int, list[tuple[Script, list[Action]]]] = defaultdict(list)
    for script in scenario.scripts:
        days: dict[int, list[Action]] = defaultdict(list)
        for action in script.actions:
            days[action.day].append(action)
        for day, actions in days.items():
            by_day[day].append((script, actions))
    limit = asyncio.Semaphore(concurrency)

    async def act(script: Script, actions: list[Action]) -> None:
        async with limit:
            await actor.run(script, actions)

    steps = 0
    for day in range(scenario.days + 1):
        await services.clock.advance(org, start + timedelta(days=day))
        steps += await worker_pass(services, org, concurrency)
        await asyncio.gather(*(act(script, actions) for script, actions in by_day[day]))
        await on_day(day)
    return steps


async def worker_pass(services: Services, org: str, workers: int) -> int:
    """What ``billing worker`` does when woken, for ``org``: up to ``workers`` workers at once
    while there is work, then one last look (a step can leave its subscription due again)."""
    subscriptions = services.subscriptions
    drained = False

    async def step() -> int | None:
        try:
            return await subscriptions.process_due(org=org, limit=1)
        except Exception as exc:  # noqa: BLE001 - as BillingWorker: the step is leased aside
            log.error("demo: a billing worker step failed: %s: %s", type(exc).__name__, exc)
            return None

    async def worker() -> int:
        nonlocal drained
        handled = 0
        while not drained:
            done = await step()
            if done is None:
                return handled
            handled += done
            drained = drained or done == 0
        return handled

    handled = await step() or 0  # most days nothing is due: one look
    if handled:
        handled += sum(await asyncio.gather(*(worker() for _ in range(workers))))
        drained = False
        handled += await worker()
    return handled
