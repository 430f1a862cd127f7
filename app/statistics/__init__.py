"""Statistics answered from the rollups: revenue, MRR movements, subscription counts."""

from app.statistics.service import (
    CurrencyRevenue,
    Overview,
    RevenueSnapshot,
    StatisticsService,
    StatsInterval,
    SubscriptionStats,
)

__all__ = [
    "CurrencyRevenue",
    "Overview",
    "RevenueSnapshot",
    "StatisticsService",
    "StatsInterval",
    "SubscriptionStats",
]
