from __future__ import annotations

import pytest

from app.core import ids
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


def test_monotonic_ids_are_each_value_encoded_in_order_across_a_20_bit_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Far above any clock value, 3 below a 2**20 boundary: the batch crosses it.
    monkeypatch.setattr(ids, "_last_monotonic", (1 << 125) | ((1 << 20) - 4))
    made = ids.monotonic_ids("use", 10)
    first = (1 << 125) | ((1 << 20) - 3)
    assert made == [ids._encode("use", first + n) for n in range(10)]
    assert made == sorted(made)
    assert all(ids.has_prefix(i, "use") for i in made)
    assert ids.monotonic_ids("use", 1)[0] > made[-1]
