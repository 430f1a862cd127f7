"""N+1 guard: the number of SQL statements of an operation must not grow with the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from db.connection import count_statements
from tests.conftest import PLAN_FIELDS
from tests.support import GraphQLClient

PLANS = (
    f"query($n: Int) {{ plans(first: $n) {{ totalCount edges {{ node {{ {PLAN_FIELDS} }} }} }} }}"
)
PLAN_TWICE = f"""query($a: ID!, $b: ID!) {{
  one: plan(id: $a) {{ {PLAN_FIELDS} }}
  two: plan(id: $b) {{ {PLAN_FIELDS} }}
  again: plan(id: $a) {{ id }}
}}"""


async def test_plans_page_costs_the_same_statements_at_5_and_50(
    admin: GraphQLClient, plan_factory: Callable[..., Any]
) -> None:
    for _ in range(50):
        await plan_factory()
    counts = {}
    for n in (5, 50):
        with count_statements() as log:
            data = await admin.data(PLANS, {"n": n})
        assert len(data["plans"]["edges"]) == n
        counts[n] = log.count
    assert counts[5] == counts[50] == 2, counts  # the page and its count


async def test_plan_lookups_in_one_operation_are_batched(
    admin: GraphQLClient, plan_factory: Callable[..., Any]
) -> None:
    a, b = await plan_factory(), await plan_factory()
    with count_statements() as log:
        data = await admin.data(PLAN_TWICE, {"a": a["id"], "b": b["id"]})
    assert (data["one"]["id"], data["two"]["id"], data["again"]["id"]) == (
        a["id"],
        b["id"],
        a["id"],
    )
    assert log.count == 1
