"""The plan catalog: validation, creation with its Stripe product, updates and archiving."""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.listing import Listing
from app.core.money import MAX_AMOUNT, Money
from app.core.pubsub import Event, publish
from app.stripe import Held, MirrorLeases, StripeGateway, StripeProduct
from db.connection import Database, Row
from db.repositories.plans import PlanRepository

__all__ = ["IntervalUnit", "Plan", "PlanDraft", "PlanService", "Tier"]

log = logging.getLogger(__name__)

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
    """No transaction is open while Stripe answers (see app/stripe/mirror.py)."""

    def __init__(
        self,
        db: Database,
        stripe: StripeGateway,
        *,
        lease: timedelta | None = None,
        wait_seconds: float | None = None,
    ) -> None:
        self._db = db
        self._stripe = stripe
        self._plans = PlanRepository(db)
        self._leases = MirrorLeases(
            self._plans,
            kind="plan",
            lease=lease or timedelta(seconds=2 * stripe.timeout + 10),
            wait=stripe.timeout + 5 if wait_seconds is None else wait_seconds,
        )
        self.read = Listing(self._plans, Plan.from_row)

    async def create(self, org: str, draft: PlanDraft) -> Plan:
        """Insert the plan (leased), create its Stripe product with no transaction open, then
        record the Stripe ids. A duplicate code is refused before Stripe is called; a Stripe
        failure deletes the inserted row, so it leaves nothing. A crash between the two leaves a
        plan without a product, which ``ensure_stripe_product`` mirrors with the same idempotency
        key when it is next needed."""
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
        token = self._leases.token()
        row = await self._plans.insert_reserved(row_values, token=token, lease=self._leases.lease)
        if row is None:
            raise DomainError(
                ErrorCode.DUPLICATE,
                f"A plan with code {values['code']!r} already exists.",
                field=(*path, "code"),
            )
        try:
            product = await self._create_at_stripe(row)
        except DomainError:
            if await self._plans.discard(org, plan_id, token=token, stripe_id="stripe_product_id"):
                raise
            # Kept: another request mirrored it meanwhile, or subscriptions already use it.
            await self._plans.release(org, plan_id, token=token, synced=False)
            current = await self._plans.get(org, plan_id)
            if current is not None and current["stripe_product_id"]:
                return Plan.from_row(current)
            log.warning("plan %s kept without a Stripe product: it is referenced", plan_id)
            raise
        done = await self._leases.finish(
            Held(org, plan_id, token, row), synced=True, values=_product_ids(product)
        )
        return Plan.from_row(done)

    async def update(self, org: str, plan_id: str, changes: Mapping[str, Any]) -> Plan:
        """Change the plan's descriptive fields and limits (``UPDATABLE``); announced (a
        ``plan`` event) so that entitlements watchers read the new features and limits."""
        plan = await self._update(org, plan_id, changes)
        await publish(self._db, Event(org, "plan", plan.id, {}))
        return plan

    async def _update(self, org: str, plan_id: str, changes: Mapping[str, Any]) -> Plan:
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
        field = ("input", "id")
        current = await self._plans.get(org, plan_id)
        if current is None:
            raise NotFound("Plan", field)
        if not current["active"]:
            raise _archived()
        if "name" not in values or values["name"] == current["name"]:
            # Nothing Stripe mirrors changes: one short transaction, no Stripe call.
            async with self._db.transaction():
                current = await self._plans.lock(org, plan_id)
                if current is None:
                    raise NotFound("Plan", field)
                if not current["active"]:
                    raise _archived()
                if not values:
                    return Plan.from_row(current)
                if "name" not in values or values["name"] == current["name"]:
                    row = await self._plans.update(org, plan_id, values)
                    assert row is not None
                    return Plan.from_row(row)
            # Renamed meanwhile: this name is a rename again, and goes to Stripe below.
        # A rename: Stripe first, then the row, under the plan's lease (no transaction open).
        await self.ensure_stripe_product(org, plan_id, field=field, repair=False)
        held = await self._leases.hold(org, plan_id, field)
        if not held.row["active"]:
            await self._leases.end(held)
            raise _archived()
        await self._leases.call(held, lambda: self._write_product(held.row, name=values["name"]))
        done = await self._leases.finish(
            held, synced=True, values=values, where=self._plans.table.c.active
        )
        return Plan.from_row(done)

    async def archive(self, org: str, plan_id: str) -> Plan:
        """Stop offering the plan; existing subscriptions keep it. Archiving is final. Its
        Stripe price is deactivated first (no transaction open), then the row is archived; a
        Stripe failure changes nothing here."""
        field = ("input", "id")
        current = await self._plans.get(org, plan_id)
        if current is None:
            raise NotFound("Plan", field)
        if not current["active"]:
            raise _already_archived()
        # A plan a crash left without its product may still have one at Stripe: find it (same
        # idempotency key) so that its price is deactivated too.
        await self.ensure_stripe_product(org, plan_id, field=field, repair=False)
        held = await self._leases.hold(org, plan_id, field)
        if not held.row["active"]:
            await self._leases.end(held)
            raise _already_archived()
        if held.row["stripe_price_id"] or not held.row["stripe_synced"]:
            await self._leases.call(held, lambda: self._write_product(held.row, active=False))
        done = await self._leases.finish(
            held,
            synced=True,
            values={"active": False, "archived_at": sa.func.now()},
            where=self._plans.table.c.active,
        )
        return Plan.from_row(done)

    async def ensure_stripe_product(
        self,
        org: str,
        plan_id: str,
        *,
        field: tuple[str, ...] = ("input", "planId"),
        repair: bool = True,
    ) -> Plan:
        """The plan, with its Stripe product (and price, if recurring). One that a crash left
        without (or whose create is still running) gets them now, with the same idempotency key
        and values as the first attempt, so Stripe returns what that attempt may already have
        made. With ``repair``, a mirror left out of date by an unknown outcome is written again
        (best effort: a failure is logged)."""
        row = await self._plans.get(org, plan_id)
        if row is None:
            raise NotFound("Plan", field)
        if row["stripe_product_id"]:
            if repair and not row["stripe_synced"] and not row["sync_busy"]:
                try:
                    return await self._repair(org, plan_id, field)
                except DomainError as exc:
                    log.warning("plan %s: Stripe mirror not repaired (%s)", plan_id, exc)
            return Plan.from_row(row)
        held = await self._leases.hold(org, plan_id, field)
        if held.row["stripe_product_id"]:
            await self._leases.end(held)
            return Plan.from_row(held.row)
        product = await self._leases.call(held, lambda: self._create_at_stripe(held.row))
        done = await self._leases.finish(held, synced=True, values=_product_ids(product))
        return Plan.from_row(done)

    async def _repair(self, org: str, plan_id: str, field: tuple[str, ...]) -> Plan:
        held = await self._leases.hold(org, plan_id, field)
        if held.row["stripe_synced"] or not held.row["stripe_product_id"]:
            await self._leases.end(held)
            return Plan.from_row(held.row)
        await self._leases.call(held, lambda: self._write_product(held.row))
        return Plan.from_row(await self._leases.finish(held, synced=True))

    async def _write_product(
        self, row: Row, *, name: str | None = None, active: bool | None = None
    ) -> None:
        """Send the plan's name and whether its price is offered (the row's own when not
        given): only what changes to a mirror in sync, everything to one out of date."""
        price_id = row["stripe_price_id"]
        if row["stripe_synced"]:
            if name is not None:
                await self._stripe.update_product(row["stripe_product_id"], name=name)
            if active is False and price_id:
                await self._stripe.deactivate_price(price_id)
            return
        await self._stripe.update_product(
            row["stripe_product_id"],
            name=row["name"] if name is None else name,
            price_id=price_id,
            active=row["active"] if active is None else active,
        )

    async def _create_at_stripe(self, row: Row) -> StripeProduct:
        """Create the Stripe product (and price) of ``row``: the key and the values are the
        row's own, so every attempt for one plan sends the same request (the name cannot change
        before the plan has a product: ``update`` ensures one first)."""
        org, plan_id = row["organization_id"], row["id"]
        interval = IntervalUnit(row["interval_unit"])
        return await self._stripe.create_product(
            idempotency_key=f"plan:{org}:{plan_id}",
            name=row["name"],
            amount=row["amount"],
            currency=row["currency"],
            interval=None if interval is IntervalUnit.ONE_TIME else interval.value,
            interval_count=row["interval_count"],
            metadata={"organization": org, "plan_id": plan_id, "code": row["code"]},
        )


def _product_ids(product: StripeProduct) -> dict[str, str | None]:
    return {"stripe_product_id": product.product_id, "stripe_price_id": product.price_id}


def _archived() -> DomainError:
    return DomainError(
        ErrorCode.INVALID_STATE, "An archived plan cannot be changed.", field=("input", "id")
    )


def _already_archived() -> DomainError:
    return DomainError(
        ErrorCode.INVALID_STATE, "The plan is already archived.", field=("input", "id")
    )
