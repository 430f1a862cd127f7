"""The plan catalog: validation, creation with its Stripe product, updates and archiving."""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.ids import new_id
from app.listing import Listing
from app.money import MAX_AMOUNT, Money
from app.stripe_gateway import StripeGateway
from db.connection import Database, Row
from db.repositories.plans import PlanRepository

__all__ = ["IntervalUnit", "Plan", "PlanDraft", "PlanService", "Tier"]

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_FEATURES_BYTES = 16_384
_MAX_STORAGE_BYTES = 2**62


class Tier(enum.Enum):
    FREE = "free"
    BASIC = "basic"
    PRO = "pro"
    ENTERPRISE = "enterprise"
    CUSTOM = "custom"


class IntervalUnit(enum.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"
    ONE_TIME = "one_time"


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    organization_id: str
    code: str
    family: str
    name: str
    description: str
    tier: Tier
    price: Money
    interval: IntervalUnit
    interval_count: int
    trial_days: int
    features: Any
    credits_included: int
    max_users: int | None
    max_storage_bytes: int | None
    active: bool
    stripe_product_id: str | None
    stripe_price_id: str | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> Plan:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            code=row["code"],
            family=row["family"],
            name=row["name"],
            description=row["description"],
            tier=Tier(row["tier"]),
            price=Money(row["amount"], row["currency"]),
            interval=IntervalUnit(row["interval_unit"]),
            interval_count=row["interval_count"],
            trial_days=row["trial_days"],
            features=row["features"],
            credits_included=row["credits_included"],
            max_users=row["max_users"],
            max_storage_bytes=row["max_storage_bytes"],
            active=row["active"],
            stripe_product_id=row["stripe_product_id"],
            stripe_price_id=row["stripe_price_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            archived_at=row["archived_at"],
        )


@dataclass(frozen=True)
class PlanDraft:
    code: str
    name: str
    tier: Tier
    amount: int
    currency: str
    interval: IntervalUnit
    interval_count: int = 1
    description: str = ""
    trial_days: int = 0
    features: Any = field(default_factory=dict)
    credits_included: int = 0
    max_users: int | None = None
    max_storage_bytes: int | None = None
    family: str | None = None  # None: the plan's code


# Fields planUpdate may change. Price, currency and interval are fixed once created, as in Stripe:
# create a new plan and move subscriptions to it instead.
UPDATABLE = (
    "name",
    "family",
    "description",
    "tier",
    "trial_days",
    "features",
    "credits_included",
    "max_users",
    "max_storage_bytes",
)


def _problems(values: Mapping[str, Any], path: tuple[str, ...]) -> list[DomainError]:
    """Every invalid field of a create or update, with its path."""
    errors: list[DomainError] = []

    def bad(name: str, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        errors.append(DomainError(code, message, field=(*path, _camel(name))))

    if "code" in values and not _CODE.match(values["code"] or ""):
        bad("code", "Code must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric.")
    # A family defaulted from the code is the code: its error is reported there.
    family = values.get("family")
    if "family" in values and family != values.get("code") and not _CODE.match(family or ""):
        bad(
            "family",
            "Family must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric.",
        )
    if "name" in values:
        name = (values["name"] or "").strip()
        if not name:
            bad("name", "Name must not be blank.", ErrorCode.REQUIRED)
        elif len(name) > 200:
            bad("name", "Name must be at most 200 characters.")
    if "description" in values and len(values["description"] or "") > 2000:
        bad("description", "Description must be at most 2000 characters.")
    if "amount" in values and values["amount"] < 0:
        errors.append(
            DomainError(
                ErrorCode.INVALID, "Price must not be negative.", field=(*path, "price", "amount")
            )
        )
    if "interval_count" in values:
        count = values["interval_count"]
        if values.get("interval") is IntervalUnit.ONE_TIME and count != 1:
            bad("interval_count", "One-time plans have an interval count of 1.")
        elif not 1 <= count <= 365:
            bad("interval_count", "Interval count must be between 1 and 365.")
        elif values.get("interval") is IntervalUnit.YEAR and count > 3:
            bad("interval_count", "Yearly plans renew at most every 3 years.")
    if "trial_days" in values and not 0 <= values["trial_days"] <= 730:
        bad("trial_days", "Trial days must be between 0 and 730.")
    if "credits_included" in values and not 0 <= values["credits_included"] <= MAX_AMOUNT:
        bad("credits_included", "Credits included must be zero or more.")
    if values.get("max_users") is not None and not 1 <= values["max_users"] <= 2**31 - 1:
        bad("max_users", "Max users must be a positive 32-bit integer, or null for unlimited.")
    if values.get("max_storage_bytes") is not None and not (
        1 <= values["max_storage_bytes"] <= _MAX_STORAGE_BYTES
    ):
        bad("max_storage_bytes", "Max storage must be a positive number of bytes, or null.")
    if "features" in values:
        features = values["features"]
        if not isinstance(features, dict):
            bad("features", "Features must be a JSON object.")
        elif len(json.dumps(features)) > _MAX_FEATURES_BYTES:
            bad("features", f"Features must be at most {_MAX_FEATURES_BYTES} bytes of JSON.")
    return errors


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class PlanService:
    def __init__(self, db: Database, stripe: StripeGateway) -> None:
        self._db = db
        self._stripe = stripe
        self._plans = PlanRepository(db)
        self.read = Listing(self._plans, Plan.from_row)

    async def create(self, org: str, draft: PlanDraft) -> Plan:
        """Insert the plan and create its Stripe product in one transaction: a Stripe failure
        rolls the insert back, and a duplicate code is refused before Stripe is called."""
        path = ("input",)
        errors: list[DomainError] = []
        price = None
        try:
            price = Money.of(draft.amount, draft.currency, field=(*path, "price"))
        except DomainError as exc:
            errors.append(exc)
        values = {
            "code": draft.code.strip(),
            "family": (draft.code if draft.family is None else draft.family).strip(),
            "name": draft.name.strip(),
            "description": draft.description.strip(),
            "tier": draft.tier.value,
            "amount": draft.amount,
            "interval": draft.interval,
            "interval_count": draft.interval_count,
            "trial_days": draft.trial_days,
            "features": draft.features,
            "credits_included": draft.credits_included,
            "max_users": draft.max_users,
            "max_storage_bytes": draft.max_storage_bytes,
        }
        errors += _problems(values, path)
        if errors or price is None:
            raise ValidationFailed(errors)

        plan_id = new_id("plan")
        row_values = {k: v for k, v in values.items() if k != "interval"}
        row_values.update(
            organization_id=org,
            id=plan_id,
            currency=price.currency,
            interval_unit=draft.interval.value,
        )
        async with self._db.transaction():
            row = await self._plans.insert(row_values)
            if row is None:
                raise DomainError(
                    ErrorCode.DUPLICATE,
                    f"A plan with code {values['code']!r} already exists.",
                    field=(*path, "code"),
                )
            recurring = draft.interval is not IntervalUnit.ONE_TIME
            product = await self._stripe.create_product(
                idempotency_key=f"plan:{org}:{plan_id}",
                name=values["name"],
                amount=price.amount,
                currency=price.currency,
                interval=draft.interval.value if recurring else None,
                interval_count=draft.interval_count,
                metadata={"organization": org, "plan_id": plan_id, "code": values["code"]},
            )
            row = await self._plans.update(
                org,
                plan_id,
                {"stripe_product_id": product.product_id, "stripe_price_id": product.price_id},
            )
        assert row is not None  # the row was inserted in this transaction
        return Plan.from_row(row)

    async def update(self, org: str, plan_id: str, changes: Mapping[str, Any]) -> Plan:
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = dict(changes)
        if "name" in values:
            values["name"] = values["name"].strip()
        if "family" in values:
            values["family"] = (values["family"] or "").strip()
        if "description" in values:
            values["description"] = (values["description"] or "").strip()
        if isinstance(values.get("tier"), Tier):
            values["tier"] = values["tier"].value
        errors = _problems(values, ("input",))
        if errors:
            raise ValidationFailed(errors)
        async with self._db.transaction():
            current = await self._plans.lock(org, plan_id)
            if current is None:
                raise NotFound("Plan", ("input", "id"))
            if not current["active"]:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    "An archived plan cannot be changed.",
                    field=("input", "id"),
                )
            if not values:
                return Plan.from_row(current)
            row = await self._plans.update(org, plan_id, values)
            renamed = "name" in values and values["name"] != current["name"]
            if renamed and current["stripe_product_id"]:
                await self._stripe.update_product(current["stripe_product_id"], name=values["name"])
        assert row is not None
        return Plan.from_row(row)

    async def archive(self, org: str, plan_id: str) -> Plan:
        """Stop offering the plan; existing subscriptions keep it. Archiving is final."""
        async with self._db.transaction():
            current = await self._plans.lock(org, plan_id)
            if current is None:
                raise NotFound("Plan", ("input", "id"))
            if not current["active"]:
                raise DomainError(
                    ErrorCode.INVALID_STATE, "The plan is already archived.", field=("input", "id")
                )
            row = await self._plans.archive(org, plan_id)
            if current["stripe_price_id"]:
                await self._stripe.deactivate_price(current["stripe_price_id"])
        assert row is not None
        return Plan.from_row(row)
