"""Usage-based billing: billable metrics, metered prices, event ingestion, rating into invoice
lines and usage queries (docs/usage.md)."""

from app.usage.ingestion import (
    MAX_BATCH,
    EventResult,
    EventStatus,
    UsageEventInput,
    UsageIngestion,
)
from app.usage.loaders import CurrentUsageKey, UsageLoaders
from app.usage.metrics import (
    Aggregation,
    BillableMetric,
    MeteredPriceDraft,
    MeteredPriceRecord,
    MetricDraft,
    MetricService,
    PriceTierDraft,
)
from app.usage.pricing import MeteredPrice, PriceModel, PriceTier, RatedLine, rate
from app.usage.queries import Granularity, UsageBucket, UsageQueries
from app.usage.rating import MetricUsage, UsageLine, UsageRating

__all__ = [
    "MAX_BATCH",
    "Aggregation",
    "BillableMetric",
    "CurrentUsageKey",
    "EventResult",
    "EventStatus",
    "Granularity",
    "MeteredPrice",
    "MeteredPriceDraft",
    "MeteredPriceRecord",
    "MetricDraft",
    "MetricService",
    "MetricUsage",
    "PriceModel",
    "PriceTier",
    "PriceTierDraft",
    "RatedLine",
    "UsageBucket",
    "UsageEventInput",
    "UsageIngestion",
    "UsageLine",
    "UsageLoaders",
    "UsageQueries",
    "UsageRating",
    "rate",
]
