"""A customer's entitlements now: what its ACTIVE and TRIALING subscriptions' plans grant,
merged (``merge.py``), and each subscription's included usage credits with what this period's
usage has used of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.catalog import PlanService
from app.core.clock import Clock
from app.core.money import Money
from app.entitlements.merge import Granting, merge_features, merge_limit
from app.subscriptions import Status, Subscription, SubscriptionService
from app.usage import UsageRating

__all__ = ["GRANTING", "CreditAllowance", "EntitlementService", "Entitlements"]

GRANTING = (Status.ACTIVE, Status.TRIALING)
"""The statuses whose plans grant entitlements (a paused, past-due or ended one does not)."""


@dataclass(frozen=True, slots=True)
class CreditAllowance:
    """A subscription's included usage credits this period, and what usage used of them."""

    subscription_id: str
    included: Money
    used: Money
    remaining: Money
    period_end: datetime


@dataclass(frozen=True, slots=True)
class Entitlements:
    customer_id: str
    features: dict[str, Any]
    max_users: int | None  # None: no limit
    max_storage_bytes: int | None
    credits: list[CreditAllowance]
    subscriptions: list[Subscription]  # the granting ones, oldest first
    as_of: datetime


class EntitlementService:
    def __init__(
        self,
        *,
        clock: Clock,
        plans: PlanService,
        subscriptions: SubscriptionService,
        usage: UsageRating,
    ) -> None:
        self._clock = clock
        self._plans = plans
        self._subscriptions = subscriptions
        self._usage = usage

    async def of_customer(self, org: str, customer_id: str) -> Entitlements:
        now = await self._clock.now(org)
        (all_subs,) = await self._subscriptions.of_customers(org, [customer_id])
        granting = sorted(
            (s for s in all_subs if s.status in GRANTING), key=lambda s: (s.created_at, s.id)
        )
        plans = await self._plans.read.by_ids(org, sorted({s.plan_id for s in granting}))
        plan_of = {p.id: p for p in plans if p is not None}
        grantings = []
        for order, sub in enumerate(granting):
            plan = plan_of.get(sub.plan_id)
            if plan is None:
                continue
            grantings.append(
                Granting(
                    features=plan.features if isinstance(plan.features, dict) else {},
                    tier=plan.tier.value,
                    order=order,
                    max_users=plan.max_users,
                    max_storage_bytes=plan.max_storage_bytes,
                )
            )
        credits = await self._credits(org, granting, plan_of, now)
        return Entitlements(
            customer_id=customer_id,
            features=merge_features(grantings),
            max_users=merge_limit([g.max_users for g in grantings]),
            max_storage_bytes=merge_limit([g.max_storage_bytes for g in grantings]),
            credits=credits,
            subscriptions=granting,
            as_of=now,
        )

    async def _credits(
        self, org: str, subs: list[Subscription], plan_of: dict[str, Any], now: datetime
    ) -> list[CreditAllowance]:
        allowing = [s for s in subs if s.plan_id in plan_of and plan_of[s.plan_id].credits_included]
        if not allowing:
            return []
        usages = await self._usage.current(
            org,
            [
                (
                    s.id,
                    s.plan_id,
                    s.price.currency,
                    s.current_period_start,
                    max(s.current_period_start, now),
                    s.status is Status.ACTIVE and s.period_index is not None,
                )
                for s in allowing
            ],
        )
        found = []
        for sub, usage in zip(allowing, usages, strict=True):
            included = plan_of[sub.plan_id].credits_included
            used = min(included, sum(u.amount for u in usage))
            currency = sub.price.currency
            found.append(
                CreditAllowance(
                    subscription_id=sub.id,
                    included=Money(included, currency),
                    used=Money(used, currency),
                    remaining=Money(included - used, currency),
                    period_end=sub.current_period_end,
                )
            )
        return found
