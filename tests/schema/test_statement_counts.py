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


CUSTOMER_PAYMENT_TOTALS = """query($n: Int) {
  customers(first: $n) { edges { node { id
    payments(first: 2) { totalCount summary { currency count succeededCount succeeded { amount } } }
  } } }
}"""


async def test_customer_payment_totals_are_batched_across_customers(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    payment_factory: Callable[..., Any],
) -> None:
    """``payments { totalCount summary }`` of every customer of a page: one statement for all
    of them, not two per customer; and each customer gets its own totals."""
    customers = [await customer_factory() for _ in range(8)]
    await payment_factory(customer=customers[0], confirm=True)
    await payment_factory(customer=customers[0], amount={"amount": 250, "currency": "EUR"})
    await payment_factory(customer=customers[1])
    counts = []
    for n in (2, 8):
        with count_statements() as log:
            page = (await admin.data(CUSTOMER_PAYMENT_TOTALS, {"n": n}))["customers"]
        assert len(page["edges"]) == n
        counts.append(log.count)
    assert counts[0] == counts[1], counts
    totals = {e["node"]["id"]: e["node"]["payments"] for e in page["edges"]}
    first = totals[customers[0]["id"]]
    assert first["totalCount"] == 2
    assert first["summary"] == [
        {"currency": "EUR", "count": 1, "succeededCount": 0, "succeeded": {"amount": "0"}},
        {"currency": "USD", "count": 1, "succeededCount": 1, "succeeded": {"amount": "10000"}},
    ]
    assert totals[customers[1]["id"]]["totalCount"] == 1
    assert totals[customers[2]["id"]] == {"totalCount": 0, "summary": []}
