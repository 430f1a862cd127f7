"""What the demo organization goes through, decided up front from the seed and nothing else.

The catalog (three currencies, three tiers monthly plus one yearly plan), then one script per
customer: when it signs up, on which plan, with or without a trial or a coupon, and the few
things that happen to it afterwards (a card that starts failing, a plan change, a
cancellation, a refund, a credit note), each on a day of the timeline. Pure data: running it is
``app.demo.timeline``'s job, so the same seed gives the same organization.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "CURRENCIES",
    "TIERS",
    "Action",
    "Kind",
    "PlanSpec",
    "Scenario",
    "Script",
    "build_scenario",
]

T = TypeVar("T")

CURRENCIES = ("USD", "EUR", "GBP")
TIERS = ("starter", "pro", "business")  # in upgrade order

# Monthly prices in minor units per tier and currency; the yearly Pro plan costs ten months.
_MONTHLY = {
    "starter": {"USD": 1900, "EUR": 1700, "GBP": 1500},
    "pro": {"USD": 4900, "EUR": 4500, "GBP": 3900},
    "business": {"USD": 12900, "EUR": 11900, "GBP": 9900},
}

# (country, currency, weight)
_COUNTRIES = (
    ("US", "USD", 42),
    ("CA", "USD", 5),
    ("GB", "GBP", 15),
    ("FR", "EUR", 11),
    ("DE", "EUR", 12),
    ("NL", "EUR", 6),
    ("ES", "EUR", 5),
    ("IE", "EUR", 4),
)
# VAT by country (percent), as tax rates of the organization; no tax rate for US and CA.
VAT = {"GB": "20", "FR": "20", "DE": "19", "NL": "21", "ES": "21", "IE": "23"}

_FIRST = (
    "Blue", "Nimbus", "Copper", "Granite", "Lumen", "Harbor", "Maple", "Orbit", "Pioneer",
    "Quartz", "Redwood", "Summit", "Tidal", "Vertex", "Willow", "Zephyr", "Atlas", "Beacon",
    "Cobalt", "Delta", "Ember", "Falcon", "Juniper", "Kestrel", "Meridian", "Northwind",
)  # fmt: skip
_SECOND = (
    "Analytics", "Labs", "Studio", "Logistics", "Health", "Robotics", "Foods", "Media",
    "Software", "Partners", "Systems", "Works", "Cloud", "Bikes", "Travel", "Energy",
)  # fmt: skip


class Kind(enum.Enum):
    SIGNUP = "signup"
    CARD_FAILS = "card_fails"  # the card on file starts declining
    CARD_FIXED = "card_fixed"  # the customer puts a working card back
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    CANCEL_NOW = "cancel_now"
    REFUND = "refund"  # of the latest paid invoice's payment (``fraction`` of it)
    CREDIT_NOTE = "credit_note"  # goodwill, on the latest paid invoice (``fraction`` of it)


@dataclass(frozen=True)
class Action:
    day: int
    kind: Kind
    fraction: float = 1.0  # REFUND / CREDIT_NOTE: how much of the invoice
    to_balance: bool = True  # CREDIT_NOTE: to the credit balance, else refunded
    invoice_now: bool = False  # UPGRADE / DOWNGRADE: ALWAYS_INVOICE instead of prorations


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    tier: str
    currency: str
    amount: int
    yearly: bool = False


@dataclass
class Script:
    index: int
    name: str
    email: str
    country: str
    currency: str
    plan: str  # PlanSpec.code at signup
    quantity: int
    trial_days: int
    coupon: bool
    reverse_charge: bool
    declined_at_signup: bool
    actions: list[Action] = field(default_factory=list)

    @property
    def signup_day(self) -> int:
        return self.actions[0].day


@dataclass(frozen=True)
class Scenario:
    days: int
    plans: list[PlanSpec]
    scripts: list[Script]

    def actions_on(self, day: int) -> list[tuple[Script, list[Action]]]:
        """Each customer with something to do on ``day``, and what (in order)."""
        found = []
        for script in self.scripts:
            todo = [a for a in script.actions if a.day == day]
            if todo:
                found.append((script, todo))
        return found


def plan_code(tier: str, currency: str, *, yearly: bool = False) -> str:
    return f"{tier}-{'yearly' if yearly else 'monthly'}-{currency.lower()}"


def _plans() -> list[PlanSpec]:
    plans = []
    for currency in CURRENCIES:
        for tier in TIERS:
            amount = _MONTHLY[tier][currency]
            plans.append(PlanSpec(plan_code(tier, currency), tier.title(), tier, currency, amount))
        plans.append(
            PlanSpec(
                plan_code("pro", currency, yearly=True),
                "Pro (yearly)",
                "pro",
                currency,
                _MONTHLY["pro"][currency] * 10,
                yearly=True,
            )
        )
    return plans


def build_scenario(*, customers: int, months: int, seed: int) -> Scenario:
    """The whole demo for ``customers`` customers over ``months`` months (``days`` days)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not a secret
    days = max(28, round(months * 365 / 12))
    scripts = [_customer(rng, index, days) for index in range(customers)]
    _add_events(rng, scripts, days)
    for script in scripts:
        script.actions.sort(key=lambda a: a.day)  # stable: signup first on its day
    return Scenario(days=days, plans=_plans(), scripts=scripts)


def _customer(rng: random.Random, index: int, days: int) -> Script:
    country, currency = _weighted(rng, [((c, cur), w) for c, cur, w in _COUNTRIES])
    company = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)}"
    slug = company.lower().replace(" ", "-")
    # A quarter were customers already when the timeline starts; the others join at a
    # growing pace (the density of signups rises linearly to the end of the timeline).
    if rng.random() < 0.25:
        signup = rng.randrange(0, 7)
    else:
        signup = 7 + int(max(1, days - 21) * math.sqrt(rng.random()))
    tier_pick = rng.random()
    yearly = False
    if tier_pick < 0.42:
        tier = "starter"
    elif tier_pick < 0.76:
        tier = "pro"
    elif tier_pick < 0.88:
        tier = "business"
    else:
        tier, yearly = "pro", True
    quantity = rng.randint(2, 12) if tier == "business" else 1
    trial = 14 if not yearly and rng.random() < 0.15 else 0
    return Script(
        index=index,
        name=f"{company} {index + 1}",
        email=f"billing@{slug}-{index + 1}.example.com",
        country=country,
        currency=currency,
        plan=plan_code(tier, currency, yearly=yearly),
        quantity=quantity,
        trial_days=trial,
        coupon=rng.random() < 0.10,
        reverse_charge=currency == "EUR" and country != "IE" and rng.random() < 0.3,
        declined_at_signup=False,
        actions=[Action(signup, Kind.SIGNUP)],
    )


def _weighted(rng: random.Random, choices: list[tuple[T, int]]) -> T:
    total = sum(w for _, w in choices)
    pick = rng.uniform(0, total)
    for value, weight in choices:
        pick -= weight
        if pick <= 0:
            return value
    return choices[-1][0]


def _add_events(rng: random.Random, scripts: list[Script], days: int) -> None:
    """Give each kind of event to its share of the customers (at least one each, so even a
    small demo shows every kind): each customer gets at most one change of its subscription
    (failing card, plan change or cancellation) and at most one refund or credit note. The
    kinds every demo must show are given first, to the customers who start paying earliest."""
    n = len(scripts)

    def share(rate: float) -> int:
        return max(1, round(n * rate))

    def paid_from(s: Script) -> int:
        return s.signup_day + s.trial_days

    # Changes need a few weeks of history after the first payment.
    changeable = [s for s in scripts if paid_from(s) + 12 < days - 5]
    rng.shuffle(changeable)
    earliest = sorted(changeable, key=paid_from)  # stable: ties keep the shuffled order
    monthly = [s for s in earliest if "yearly" not in s.plan]
    taken: set[int] = set()

    def pick(count: int, eligible: list[Script]) -> list[Script]:
        chosen: list[Script] = []
        for script in eligible:
            if len(chosen) == count:
                break
            if script.index not in taken:
                taken.add(script.index)
                chosen.append(script)
        return chosen

    def later(script: Script, low: int, high: int) -> int:
        start = paid_from(script) + low
        end = min(days - 2, paid_from(script) + high)
        return rng.randint(min(start, end), end)

    # A card that starts failing three days before a renewal (months are 28-31 days, so the
    # renewal fails one to five days later); half the customers put a working card back
    # eleven days after, between two dunning retries (3, 5, 7 days apart by default), and
    # recover; the others are canceled by dunning about two weeks after the failure.
    for number, script in enumerate(pick(share(0.07), monthly)):
        renewals = [k for k in range(1, 40) if paid_from(script) + round(k * 30.44) + 20 < days]
        k = rng.choice(renewals) if renewals else 1
        fails = max(paid_from(script) + 1, paid_from(script) + round(k * 30.44) - 3)
        script.actions.append(Action(fails, Kind.CARD_FAILS))
        if number % 2 == 1:
            script.actions.append(Action(min(days - 1, fails + 11), Kind.CARD_FIXED))
    rng.shuffle(monthly)
    for script in pick(share(0.12), [s for s in monthly if not s.plan.startswith("business")]):
        action = Action(later(script, 10, 200), Kind.UPGRADE, invoice_now=rng.random() < 0.3)
        script.actions.append(action)
    for script in pick(share(0.04), [s for s in monthly if not s.plan.startswith("starter")]):
        script.actions.append(Action(later(script, 10, 200), Kind.DOWNGRADE))
    for script in pick(share(0.04), earliest):
        script.actions.append(Action(later(script, 5, 250), Kind.CANCEL_NOW))
    rng.shuffle(changeable)
    for script in pick(share(0.09), changeable):
        script.actions.append(Action(later(script, 20, 300), Kind.CANCEL_AT_PERIOD_END))

    # Refunds and credit notes, on invoices already paid.
    taken.clear()
    for number, script in enumerate(pick(share(0.05), earliest)):
        fraction = 1.0 if number % 2 == 0 else rng.choice((0.25, 0.4, 0.5))
        script.actions.append(Action(later(script, 2, 120), Kind.REFUND, fraction=fraction))
    for number, script in enumerate(pick(share(0.05), earliest)):
        script.actions.append(
            Action(
                later(script, 2, 150),
                Kind.CREDIT_NOTE,
                fraction=rng.choice((0.1, 0.2, 0.25)),
                to_balance=number % 3 != 2,
            )
        )
    # A few sign up with a card that declines at once: the first invoice stays open and the
    # subscription incomplete, then expired a day later.
    quiet = [s for s in scripts if len(s.actions) == 1 and s.trial_days == 0]
    for script in rng.sample(quiet, k=min(len(quiet), max(1, round(n * 0.015)))):
        script.declined_at_signup = True
