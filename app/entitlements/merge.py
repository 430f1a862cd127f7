"""How the plans of several subscriptions combine into one customer's entitlements (pure).

The rule (docs/entitlements.md), applied to the plans of the customer's ACTIVE and TRIALING
subscriptions, most generous first:

* ``features`` (JSON objects) merge key by key: ``true`` wins over ``false`` (a feature any
  plan grants is granted); of two numbers the larger wins (a limit); two objects merge by this
  same rule; any other value (a string, a list, a number against a non-number) comes from the
  plan of the highest tier (ENTERPRISE, CUSTOM, PRO, BASIC, FREE), then the newest subscription.
* ``maxUsers`` and ``maxStorageBytes``: the largest; a plan without a limit (null) makes it
  unlimited.
* included usage credits are not merged: each subscription keeps its own allowance, in its
  plan's currency, for its own period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Granting", "merge_features", "merge_limit"]

# Rank of a plan's tier when two plans disagree on a value that cannot be compared.
TIER_RANK = {"enterprise": 5, "custom": 4, "pro": 3, "basic": 2, "free": 1}


@dataclass(frozen=True, slots=True)
class Granting:
    """One subscription's plan, as the merge sees it; ``order`` is its rank among equals
    (larger: newer)."""

    features: Mapping[str, Any]
    tier: str
    order: int
    max_users: int | None
    max_storage_bytes: int | None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _combine(kept: Any, other: Any) -> Any:
    """``kept`` comes from the higher-ranked plan; the value the merge keeps."""
    if isinstance(kept, bool) and isinstance(other, bool):
        return kept or other
    if _is_number(kept) and _is_number(other):
        return max(kept, other)
    if isinstance(kept, Mapping) and isinstance(other, Mapping):
        return _merge(kept, other)
    return kept


def _merge(kept: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(kept)
    for key, value in other.items():
        merged[key] = _combine(merged[key], value) if key in merged else value
    return merged


def merge_features(grantings: Sequence[Granting]) -> dict[str, Any]:
    ranked = sorted(grantings, key=lambda g: (TIER_RANK.get(g.tier, 0), g.order), reverse=True)
    merged: dict[str, Any] = {}
    for granting in ranked:
        features = granting.features if isinstance(granting.features, Mapping) else {}
        merged = _merge(merged, features)
    return dict(sorted(merged.items()))


def merge_limit(values: Sequence[int | None]) -> int | None:
    """The largest limit; None (no limit) when any is None; 0 without any plan."""
    if any(v is None for v in values):
        return None
    return max((v for v in values if v is not None), default=0)
