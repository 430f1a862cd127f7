"""Billable metrics (what is counted, and how) and the metered prices plans put on them."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.ids import has_prefix, new_id
from app.core.listing import Listing
from app.core.money import MAX_AMOUNT, exponent
from app.usage.pricing import (
    MeteredPrice,
    PriceModel,
    PriceTier,
    check,
    parse_decimal,
)
from db.connection import Database, Row
from db.repositories.usage.metrics import MeteredPriceRepository, MetricRepository

__all__ = [
    "Aggregation",
    "BillableMetric",
    "MeteredPriceDraft",
    "MeteredPriceRecord",
    "MetricDraft",
    "MetricService",
    "PriceTierDraft",
]

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_MAX_FILTER_VALUES = 100
_MAX_PRICES_PER_PLAN = 20


class Aggregation(enum.Enum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"


@dataclass(frozen=True, slots=True)
class BillableMetric:
    id: str
    organization_id: str
    code: str
    name: str
    aggregation: Aggregation
    property: str | None
    filters: Mapping[str, list[str]]
    archived_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row, prefix: str = "") -> BillableMetric:
        return cls(
            id=row["id"] if not prefix else row["metric_id"],
            organization_id=row["organization_id"],
            code=row[f"{prefix}code"],
            name=row[f"{prefix}name"],
            aggregation=Aggregation(row[f"{prefix}aggregation"]),
            property=row[f"{prefix}property"],
            filters=row[f"{prefix}filters"] or {},
            archived_at=row[f"{prefix}archived_at"],
            created_at=row[f"{prefix}created_at"],
        )

    def counts(self, properties: Mapping[str, Any]) -> bool:
        """Whether an event with ``properties`` matches the filters (every filtered property
        present, with one of its allowed values)."""
        for name, allowed in self.filters.items():
            value = properties.get(name)
            if value is None or _scalar_text(value) not in allowed:
                return False
        return True


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class MetricDraft:
    code: str
    name: str
    aggregation: Aggregation
    property: str | None = None
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PriceTierDraft:
    up_to: str | None
    unit_price: str
    flat_amount: int = 0


@dataclass(frozen=True)
class MeteredPriceDraft:
    """A metered component of a new plan; prices are decimals in the plan currency's major
    units ("0.0004" USD), converted to exact minor units."""

    metric: str  # the metric's code
    model: PriceModel
    unit_price: str | None = None
    package_size: int | None = None
    tiers: Sequence[PriceTierDraft] = ()
    free_units: str = "0"


@dataclass(frozen=True, slots=True)
class MeteredPriceRecord:
    id: str
    organization_id: str
    plan_id: str
    metric: BillableMetric
    price: MeteredPrice
    currency_exponent: int
    currency: str = ""  # the plan's

    @classmethod
    def from_row(cls, row: Row, exponent: int) -> MeteredPriceRecord:
        tiers = tuple(
            PriceTier(
                up_to=None if t["up_to"] is None else Decimal(t["up_to"]),
                unit_price=Decimal(t["unit_price"]),
                flat_amount=int(t["flat_amount"]),
            )
            for t in row["tiers"] or []
        )
        unit_price = row["unit_price"]
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            plan_id=row["plan_id"],
            metric=BillableMetric.from_row(row, prefix="metric_"),
            price=MeteredPrice(
                model=PriceModel(row["model"]),
                unit_price=None if unit_price is None else Decimal(unit_price),
                package_size=row["package_size"],
                tiers=tiers,
                free_units=Decimal(row["free_units"]),
            ),
            currency_exponent=exponent,
            currency=row.get("plan_currency") or "",
        )


def _metric_problems(draft: MetricDraft) -> list[DomainError]:
    errors: list[DomainError] = []

    def bad(name: str, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        errors.append(DomainError(code, message, field=("input", name)))

    if not _CODE.match(draft.code.strip()):
        bad("code", "Code must be 1-64 letters, digits, '.', ':', '_' or '-'.")
    name = draft.name.strip()
    if not name:
        bad("name", "Name must not be blank.", ErrorCode.REQUIRED)
    elif len(name) > 200:
        bad("name", "Name must be at most 200 characters.")
    prop = draft.property.strip() if draft.property else None
    if draft.aggregation is Aggregation.COUNT and prop:
        bad("property", "A COUNT counts events: it takes no property.")
    if draft.aggregation is Aggregation.UNIQUE_COUNT and not prop:
        bad("property", "A UNIQUE_COUNT counts distinct values of a property: name it.")
    if prop and not _PROPERTY.match(prop):
        bad("property", "A property name is 1-64 letters, digits, '_', '.' or '-'.")
    if len(draft.filters) > 10:
        bad("filters", "At most 10 filtered properties.")
    for key, values in draft.filters.items():
        if not _PROPERTY.match(key):
            bad("filters", f"Filter property {key!r} is not a valid property name.")
        elif not values or len(values) > _MAX_FILTER_VALUES:
            bad("filters", f"Filter {key!r} lists 1 to {_MAX_FILTER_VALUES} allowed values.")
        elif any(len(v) > 200 for v in values):
            bad("filters", f"Filter {key!r} values are at most 200 characters.")
    return errors


def _to_minor(value: Decimal, exponent: int) -> Decimal:
    return (value.scaleb(exponent)).normalize() if value else Decimal(0)


class MetricService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._metrics = MetricRepository(db)
        self._prices = MeteredPriceRepository(db)
        self.read = Listing(self._metrics, BillableMetric.from_row)

    async def create(self, org: str, draft: MetricDraft) -> BillableMetric:
        errors = _metric_problems(draft)
        if errors:
            raise ValidationFailed(errors)
        row = await self._metrics.insert(
            {
                "organization_id": org,
                "id": new_id("bm"),
                "code": draft.code.strip(),
                "name": draft.name.strip(),
                "aggregation": draft.aggregation.value,
                "property": draft.property.strip() if draft.property else None,
                "filters": {k: sorted({str(v) for v in vs}) for k, vs in draft.filters.items()},
            }
        )
        if row is None:
            raise DomainError(
                ErrorCode.DUPLICATE,
                f"A metric with code {draft.code.strip()!r} already exists.",
                field=("input", "code"),
            )
        return BillableMetric.from_row(row)

    async def archive(self, org: str, metric_id: str) -> BillableMetric:
        """Stop accepting events for the metric; plans that price it keep billing what it
        recorded."""
        field = ("input", "id")
        if not has_prefix(metric_id, "bm"):
            raise NotFound("BillableMetric", field)
        row = await self._metrics.archive(org, metric_id)
        if row is None:
            (current,) = await self._metrics.by_ids(org, [metric_id])
            if current is None:
                raise NotFound("BillableMetric", field)
            raise DomainError(
                ErrorCode.INVALID_STATE, "The metric is archived already.", field=field
            )
        return BillableMetric.from_row(row)

    async def by_codes(self, org: str, codes: Sequence[str]) -> dict[str, BillableMetric]:
        return {
            r["code"]: BillableMetric.from_row(r) for r in await self._metrics.by_codes(org, codes)
        }

    # -- metered prices ----------------------------------------------------------------------

    async def check_prices(
        self, org: str, drafts: Sequence[MeteredPriceDraft], exponent: int
    ) -> list[dict[str, Any]]:
        """Validate a new plan's metered prices (before the plan exists); the rows to insert
        once it does (``attach``). Raises ``ValidationFailed`` with every problem."""
        errors: list[DomainError] = []
        if len(drafts) > _MAX_PRICES_PER_PLAN:
            raise ValidationFailed(
                [
                    DomainError(
                        ErrorCode.INVALID,
                        f"A plan has at most {_MAX_PRICES_PER_PLAN} metered prices.",
                        field=("input", "meteredPrices"),
                    )
                ]
            )
        metrics = await self.by_codes(org, [d.metric.strip() for d in drafts])
        seen: set[str] = set()
        rows: list[dict[str, Any]] = []
        for index, draft in enumerate(drafts):
            path = ("input", "meteredPrices", str(index))
            try:
                rows.append(self._price_row(org, draft, metrics, seen, exponent, path, index))
            except DomainError as exc:
                errors.append(exc)
        if errors:
            raise ValidationFailed(errors)
        return rows

    def _price_row(
        self,
        org: str,
        draft: MeteredPriceDraft,
        metrics: Mapping[str, BillableMetric],
        seen: set[str],
        exponent: int,
        path: tuple[str, ...],
        position: int,
    ) -> dict[str, Any]:
        metric = metrics.get(draft.metric.strip())
        if metric is None:
            raise NotFound("BillableMetric", (*path, "metric"))
        if metric.archived_at is not None:
            raise DomainError(
                ErrorCode.INVALID_STATE, "The metric is archived.", field=(*path, "metric")
            )
        if metric.id in seen:
            raise DomainError(
                ErrorCode.DUPLICATE, "The plan prices this metric already.", field=(*path, "metric")
            )
        seen.add(metric.id)
        most = Decimal(MAX_AMOUNT).scaleb(-exponent)
        unit_price = None
        if draft.unit_price is not None:
            unit_price = _to_minor(
                parse_decimal(draft.unit_price, "unitPrice", (*path, "unitPrice"), maximum=most),
                exponent,
            )
        tiers = []
        for n, tier in enumerate(draft.tiers):
            tier_path = (*path, "tiers", str(n))
            up_to = None
            if tier.up_to is not None:
                up_to = parse_decimal(
                    tier.up_to, "upTo", (*tier_path, "upTo"), maximum=Decimal(MAX_AMOUNT)
                )
            price = parse_decimal(
                tier.unit_price, "unitPrice", (*tier_path, "unitPrice"), maximum=most
            )
            tiers.append(PriceTier(up_to, _to_minor(price, exponent), tier.flat_amount))
        free = parse_decimal(
            draft.free_units, "freeUnits", (*path, "freeUnits"), maximum=Decimal(MAX_AMOUNT)
        )
        price_value = MeteredPrice(
            model=draft.model,
            unit_price=unit_price,
            package_size=draft.package_size,
            tiers=tuple(tiers),
            free_units=free,
        )
        check(price_value, path)
        return {
            "organization_id": org,
            "id": new_id("mp"),
            "metric_id": metric.id,
            "position": position,
            "model": draft.model.value,
            "unit_price": unit_price,
            "package_size": draft.package_size,
            "tiers": [
                {
                    "up_to": None if t.up_to is None else str(t.up_to),
                    "unit_price": str(t.unit_price),
                    "flat_amount": t.flat_amount,
                }
                for t in tiers
            ],
            "free_units": free,
        }

    async def attach(self, org: str, plan_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert the rows ``check_prices`` made, for the plan just created."""
        await self._prices.insert_many([{**row, "plan_id": plan_id} for row in rows])

    async def prices_by_ids(
        self, org: str, ids: Sequence[str]
    ) -> list[tuple[MeteredPriceRecord, str] | None]:
        """Metered prices by id, each with its plan's currency, aligned with ``ids``."""
        found = {}
        for row in await self._prices.of_plans(org, (), ids=ids):
            currency = row["plan_currency"]
            found[row["id"]] = (MeteredPriceRecord.from_row(row, exponent(currency)), currency)
        return [found.get(i) for i in ids]

    async def prices_of_plans(
        self, org: str, plan_ids: Sequence[str], exponents: Mapping[str, int]
    ) -> list[list[MeteredPriceRecord]]:
        """Each plan's metered prices, aligned with ``plan_ids``; ``exponents`` gives each
        plan's currency exponent."""
        grouped: dict[str, list[MeteredPriceRecord]] = {}
        for row in await self._prices.of_plans(org, plan_ids):
            plan = row["plan_id"]
            grouped.setdefault(plan, []).append(MeteredPriceRecord.from_row(row, exponents[plan]))
        return [grouped.get(plan_id, []) for plan_id in plan_ids]
