"""The authorization matrix: one entry per root field, saying who may call it and how.

`tests/security/test_authorization_matrix.py` fails when the schema has a root field without an
entry here, so every new operation must state its rule (and gets checked against every kind of
caller). Keep entries short: a document, its variables from the `World`, and the roles allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import CREATE_CUSTOMER, CREATE_PLAN

ADMIN, SERVICE, OWNER = "admin", "service", "customer"
EVERYONE = frozenset({ADMIN, SERVICE, OWNER})
STAFF = frozenset({ADMIN, SERVICE})


@dataclass
class World:
    """Data that exists in organization A: a plan and two customers (the owner and another)."""

    org: str
    plan: dict[str, Any]
    owner: dict[str, Any]
    other: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Values that must never reach a caller without the right to them."""
        return [self.plan["id"], self.owner["id"], self.other["id"], *self.extra.values()]

    def owner_secrets(self) -> list[str]:
        """Values only the owner (and staff) may see."""
        return [self.owner["id"], self.owner["email"]]


Variables = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    document: str
    variables: Variables = lambda world: {}
    allowed: frozenset[str] = EVERYONE
    public: bool = False
    # Creates something new without naming existing data: another organization's admin may
    # run it (in its own tenant); it must still not touch organization A.
    creates: bool = False
    # The response a right caller gets must contain this value (from the World), if given.
    expect: Callable[[World], str] | None = None
    subscription: bool = False


PLAN_ID = "query($id: ID!) { plan(id: $id) { id name } }"
CUSTOMER_ID = "query($id: ID!) { customer(id: $id) { id email } }"

CASES: dict[str, Case] = {
    "Query.serviceInfo": Case("{ serviceInfo { name } }", public=True),
    "Query.plan": Case(PLAN_ID, lambda w: {"id": w.plan["id"]}, expect=lambda w: w.plan["id"]),
    "Query.plans": Case("{ plans { edges { node { id } } } }", expect=lambda w: w.plan["id"]),
    "Query.customer": Case(
        CUSTOMER_ID, lambda w: {"id": w.owner["id"]}, expect=lambda w: w.owner["id"]
    ),
    "Query.customers": Case(
        "{ customers { edges { node { id email } } } }", expect=lambda w: w.owner["id"]
    ),
    "Mutation.planCreate": Case(
        CREATE_PLAN,
        lambda w: {
            "input": {
                "code": "matrix",
                "name": "Matrix",
                "tier": "BASIC",
                "price": {"amount": 100, "currency": "USD"},
                "interval": "MONTH",
            }
        },
        allowed=frozenset({ADMIN}),
        creates=True,
    ),
    "Mutation.planUpdate": Case(
        "mutation($input: PlanUpdateInput!) { planUpdate(input: $input) "
        "{ plan { id name } errors { code } } }",
        lambda w: {"input": {"id": w.plan["id"], "name": "Renamed"}},
        allowed=frozenset({ADMIN}),
        expect=lambda w: w.plan["id"],
    ),
    "Mutation.planArchive": Case(
        "mutation($id: ID!) { planArchive(input: {id: $id}) { plan { id } errors { code } } }",
        lambda w: {"id": w.plan["id"]},
        allowed=frozenset({ADMIN}),
        expect=lambda w: w.plan["id"],
    ),
    "Mutation.customerCreate": Case(
        CREATE_CUSTOMER,
        lambda w: {"input": {"email": "matrix@example.com"}},
        allowed=STAFF,
        creates=True,
    ),
    "Mutation.customerUpdate": Case(
        "mutation($input: CustomerUpdateInput!) { customerUpdate(input: $input) "
        "{ customer { id email } errors { code } } }",
        lambda w: {"input": {"id": w.owner["id"], "name": "Renamed"}},
        allowed=STAFF,
        expect=lambda w: w.owner["id"],
    ),
    "Mutation.customerSetDefaultPaymentMethod": Case(
        "mutation($input: CustomerSetDefaultPaymentMethodInput!) { "
        "customerSetDefaultPaymentMethod(input: $input) { customer { id } errors { code } } }",
        lambda w: {"input": {"customerId": w.owner["id"], "paymentMethodId": "pm_card_visa"}},
        expect=lambda w: w.owner["id"],
    ),
    "Live.heartbeat": Case("subscription { heartbeat(intervalSeconds: 1) }", subscription=True),
}
