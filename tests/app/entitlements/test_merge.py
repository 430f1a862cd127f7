"""The merge rule of entitlements, case by case."""

from __future__ import annotations

from app.entitlements import Granting, merge_features, merge_limit


def _g(features: dict[str, object], tier: str = "basic", order: int = 0) -> Granting:
    return Granting(
        features=features, tier=tier, order=order, max_users=None, max_storage_bytes=None
    )


def test_true_wins_and_the_larger_number_wins_whatever_the_order() -> None:
    a = _g({"sso": True, "seats": 3}, tier="pro")
    b = _g({"sso": False, "seats": 10}, tier="basic")
    assert merge_features([a, b]) == merge_features([b, a]) == {"seats": 10, "sso": True}


def test_other_values_come_from_the_highest_tier_then_the_newest() -> None:
    free = _g({"support": "forum", "regions": ["eu"]}, tier="free", order=2)
    pro = _g({"support": "priority", "regions": ["eu", "us"]}, tier="pro", order=0)
    newer_pro = _g({"support": "phone"}, tier="pro", order=1)
    assert merge_features([free, pro]) == {"regions": ["eu", "us"], "support": "priority"}
    assert merge_features([free, pro, newer_pro])["support"] == "phone"
    # A number against a non-number is not comparable: the higher tier's value.
    assert merge_features([_g({"x": "unlimited"}, "enterprise"), _g({"x": 5}, "pro")]) == {
        "x": "unlimited"
    }


def test_objects_merge_by_the_same_rule_and_keys_add_up() -> None:
    a = _g({"api": {"rate": 10, "burst": False}}, tier="pro")
    b = _g({"api": {"rate": 50, "burst": True, "keys": 2}, "beta": True}, tier="basic")
    assert merge_features([a, b]) == {"api": {"burst": True, "keys": 2, "rate": 50}, "beta": True}


def test_limits_are_the_largest_and_none_is_unlimited() -> None:
    assert merge_limit([5, 2]) == 5
    assert merge_limit([5, None]) is None
    assert merge_limit([]) == 0
