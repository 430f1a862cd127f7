"""Regression: the live-subscription conflict check must survive asyncpg's switch to a generic
plan after five executions of the same prepared statement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import GraphQLClient

CREATE = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id } errors { code } }
}"""


async def test_many_creations_in_a_row_then_a_duplicate(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    plans = [await plan_factory() for _ in range(8)]
    for n, plan in enumerate(plans):
        data = await admin.data(
            CREATE,
            {
                "input": {
                    "customerId": customer["id"],
                    "planId": plan["id"],
                    "trialDays": 3,
                    "idempotencyKey": f"k{n}",
                }
            },
        )
        assert data["subscriptionCreate"]["errors"] == []
    again = await admin.data(
        CREATE,
        {
            "input": {
                "customerId": customer["id"],
                "planId": plans[0]["id"],
                "trialDays": 3,
                "idempotencyKey": "k-dup",
            }
        },
    )
    assert [e["code"] for e in again["subscriptionCreate"]["errors"]] == ["DUPLICATE"]
