from __future__ import annotations

from app.core.ids import has_prefix, new_id


def test_ids_are_prefixed_and_well_formed() -> None:
    value = new_id("pay")
    assert value.startswith("pay_")
    assert len(value) == len("pay_") + 26
    assert has_prefix(value, "pay")
    assert not has_prefix(value, "plan")
    assert not has_prefix("pay_short", "pay")
    assert not has_prefix("pay_" + "u" * 26, "pay")  # 'u' is not in the alphabet


def test_ids_sort_by_creation_time() -> None:
    ids = [new_id("plan", at_ms=ms) for ms in (1, 2, 1_000, 1_700_000_000_000, 1_700_000_000_001)]
    assert ids == sorted(ids)


def test_ids_in_the_same_millisecond_are_distinct() -> None:
    assert len({new_id("cus", at_ms=5) for _ in range(10_000)}) == 10_000
