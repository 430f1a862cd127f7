"""Invoices end to end: drafts, finalization and numbering, the status machine, visibility,
currencies with 0 and 3 decimals, and statement counts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from db.connection import count_statements
from tests.conftest import CREATE_INVOICE, FINALIZE_INVOICE, INVOICE_FIELDS, INVOICE_PAYLOAD
from tests.support import GraphQLClient, error_codes, token

GET = f"query($id: ID!) {{ invoice(id: $id) {{ {INVOICE_FIELDS} }} }}"
LIST = f"""query($first: Int, $after: String, $filter: InvoiceFilter) {{
  invoices(first: $first, after: $after, filter: $filter) {{
    totalCount edges {{ cursor node {{ {INVOICE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
ADD_LINE = (
    f"mutation($input: InvoiceAddLineInput!) {{ invoiceAddLine(input: $input) {INVOICE_PAYLOAD} }}"
)
REMOVE_LINE = (
    "mutation($input: InvoiceRemoveLineInput!) "
    f"{{ invoiceRemoveLine(input: $input) {INVOICE_PAYLOAD} }}"
)
VOID = f"mutation($input: InvoiceVoidInput!) {{ invoiceVoid(input: $input) {INVOICE_PAYLOAD} }}"
UNCOLLECTIBLE = (
    "mutation($input: InvoiceMarkUncollectibleInput!) "
    f"{{ invoiceMarkUncollectible(input: $input) {INVOICE_PAYLOAD} }}"
)
SETTINGS = """mutation($input: InvoiceSettingsUpdateInput!) {
  invoiceSettingsUpdate(input: $input) {
    settings { numberPrefix issuerName issuerAddress daysUntilDue } errors { field code message }
  }
}"""


def codes(payload: dict[str, Any]) -> list[tuple[list[str] | None, str]]:
    return [(e["field"], e["code"]) for e in payload["errors"]]


async def finalize(client: GraphQLClient, invoice_id: str) -> dict[str, Any]:
    data = await client.data(FINALIZE_INVOICE, {"input": {"invoiceId": invoice_id}})
    payload: dict[str, Any] = data["invoiceFinalize"]
    return payload


async def test_draft_lines_preview_and_finalization(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> None:
    customer = await customer_factory()
    created = (
        await admin.data(
            CREATE_INVOICE,
            {
                "input": {
                    "customerId": customer["id"],
                    "currency": "usd",
                    "lines": [
                        {"description": " Setup ", "unitAmount": 5000},
                        {"description": "Seats", "unitAmount": 1999, "quantity": 3},
                    ],
                    "memo": "Thanks!",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
    )["invoiceCreate"]
    assert created["errors"] == []
    draft = created["invoice"]
    assert draft["id"].startswith("inv_")
    assert (draft["status"], draft["number"], draft["currency"]) == ("DRAFT", None, "USD")
    assert [(line["description"], line["amount"]["amount"]) for line in draft["lines"]] == [
        ("Setup", "5000"),
        ("Seats", "5997"),
    ]
    assert (draft["subtotal"]["amount"], draft["total"]["amount"]) == ("10997", "10997")
    assert draft["amountDue"]["decimal"] == "109.97"
    assert draft["pdfUrl"] == f"http://billing.test/invoices/{draft['id']}.pdf"

    added = (
        await admin.data(
            ADD_LINE,
            {
                "input": {
                    "invoiceId": draft["id"],
                    "line": {"description": "Extra", "unitAmount": 3},
                }
            },
        )
    )["invoiceAddLine"]
    assert added["errors"] == []
    assert added["invoice"]["total"]["amount"] == "11000"
    setup_line = draft["lines"][0]["id"]
    removed = (
        await admin.data(REMOVE_LINE, {"input": {"invoiceId": draft["id"], "lineId": setup_line}})
    )["invoiceRemoveLine"]
    assert removed["errors"] == []
    assert [line["description"] for line in removed["invoice"]["lines"]] == ["Seats", "Extra"]
    assert removed["invoice"]["lines"][0]["id"] == draft["lines"][1]["id"]  # ids are stable
    assert removed["invoice"]["total"]["amount"] == "6000"

    done = await finalize(admin, draft["id"])
    assert done["errors"] == []
    invoice = done["invoice"]
    assert invoice["status"] == "OPEN"
    assert invoice["number"].startswith("INV-")
    assert invoice["number"].endswith("-000001")
    assert invoice["finalizedAt"] is not None
    assert (invoice["amountDue"]["amount"], invoice["amountRemaining"]["amount"]) == (
        "6000",
        "6000",
    )
    assert [line["id"] for line in invoice["lines"]] == [
        line["id"] for line in removed["invoice"]["lines"]
    ]

    # A finalized invoice's lines are fixed.
    again = (
        await admin.data(
            ADD_LINE,
            {"input": {"invoiceId": draft["id"], "line": {"description": "Late", "unitAmount": 1}}},
        )
    )["invoiceAddLine"]
    assert codes(again) == [(["input", "invoiceId"], "INVALID_STATE")]
    assert again["errors"][0]["message"] == "An open invoice cannot be changed."
    assert (await admin.data(GET, {"id": draft["id"]}))["invoice"] == invoice


async def test_numbers_follow_the_prefix_and_count_per_organization(
    admin: GraphQLClient, invoice_factory: Callable[..., Any]
) -> None:
    updated = (
        await admin.data(
            SETTINGS,
            {
                "input": {
                    "numberPrefix": " acme ",
                    "issuerName": "Acme Ltd",
                    "issuerAddress": ["1 Market St", "", "London"],
                    "daysUntilDue": 14,
                }
            },
        )
    )["invoiceSettingsUpdate"]
    assert updated["errors"] == []
    assert updated["settings"] == {
        "numberPrefix": "ACME",
        "issuerName": "Acme Ltd",
        "issuerAddress": ["1 Market St", "London"],
        "daysUntilDue": 14,
    }
    first = await invoice_factory(finalize=True)
    draft = await invoice_factory()
    second = await invoice_factory(finalize=True)
    year = first["finalizedAt"][:4]
    assert [first["number"], second["number"]] == [f"ACME-{year}-000001", f"ACME-{year}-000002"]
    assert draft["number"] is None
    assert first["dueDate"] is not None  # 14 days after issue
    bad = (await admin.data(SETTINGS, {"input": {"numberPrefix": "no spaces!"}}))[
        "invoiceSettingsUpdate"
    ]
    assert codes(bad) == [(["input", "numberPrefix"], "INVALID")]


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"currency": "EURO"}, ["input", "currency"], "UNKNOWN_CURRENCY"),
        ({"customerId": "cus_missing"}, ["input", "customerId"], "NOT_FOUND"),
        (
            {"lines": [{"description": " ", "unitAmount": 1}]},
            ["input", "lines", "0", "description"],
            "REQUIRED",
        ),
        (
            {"lines": [{"description": "x", "unitAmount": 1, "quantity": -1}]},
            ["input", "lines", "0", "quantity"],
            "INVALID",
        ),
        (
            {"lines": [{"description": "x", "unitAmount": 1, "kind": "TAX"}]},
            ["input", "lines", "0", "kind"],
            "INVALID",
        ),
        ({"dueDate": "2001-01-01"}, ["input", "dueDate"], "INVALID"),
        ({"memo": "m" * 2001}, ["input", "memo"], "INVALID"),
        (
            {"lines": [{"description": "x", "unitAmount": 10**15, "quantity": 2}]},
            ["input", "lines", "0", "unitAmount"],
            "INVALID",
        ),
    ],
)
async def test_invalid_drafts_are_payload_errors_and_write_nothing(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    overrides: dict[str, Any],
    field: list[str],
    code: str,
) -> None:
    customer = await customer_factory()
    invoice_input = {
        "customerId": customer["id"],
        "currency": "USD",
        "lines": [{"description": "Consulting", "unitAmount": 1000}],
        "idempotencyKey": str(uuid.uuid4()),
        **overrides,
    }
    payload = (await admin.data(CREATE_INVOICE, {"input": invoice_input}))["invoiceCreate"]
    assert payload["invoice"] is None
    assert codes(payload) == [(field, code)]
    assert (await admin.data(LIST))["invoices"]["totalCount"] == 0


async def test_create_is_idempotent_per_key(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> None:
    customer = await customer_factory()
    invoice_input = {
        "customerId": customer["id"],
        "currency": "EUR",
        "lines": [{"description": "Audit", "unitAmount": 90000}],
        "idempotencyKey": "same-key",
    }
    first = (await admin.data(CREATE_INVOICE, {"input": invoice_input}))["invoiceCreate"]
    second = (await admin.data(CREATE_INVOICE, {"input": invoice_input}))["invoiceCreate"]
    assert first["errors"] == second["errors"] == []
    assert first["invoice"]["id"] == second["invoice"]["id"]
    other = {**invoice_input, "memo": "different"}
    reused = (await admin.data(CREATE_INVOICE, {"input": other}))["invoiceCreate"]
    assert codes(reused) == [(["input", "idempotencyKey"], "IDEMPOTENCY_KEY_REUSED")]
    assert (await admin.data(LIST))["invoices"]["totalCount"] == 1


async def test_void_and_uncollectible_and_illegal_transitions(
    admin: GraphQLClient, invoice_factory: Callable[..., Any]
) -> None:
    draft = await invoice_factory()
    # A draft can be neither voided nor written off.
    for document, name in ((VOID, "invoiceVoid"), (UNCOLLECTIBLE, "invoiceMarkUncollectible")):
        refused = (await admin.data(document, {"input": {"invoiceId": draft["id"]}}))[name]
        assert codes(refused) == [(["input", "invoiceId"], "INVALID_STATE")]
    assert (await admin.data(GET, {"id": draft["id"]}))["invoice"] == draft

    opened = await invoice_factory(finalize=True)
    voided = (
        await admin.data(VOID, {"input": {"invoiceId": opened["id"], "reason": " duplicate "}})
    )["invoiceVoid"]
    assert voided["errors"] == []
    void = voided["invoice"]
    assert (void["status"], void["statusReason"], void["number"]) == (
        "VOID",
        "duplicate",
        opened["number"],
    )
    assert void["voidedAt"] is not None
    for document, name, message in (
        (VOID, "invoiceVoid", "A void invoice cannot be voided."),
        (
            UNCOLLECTIBLE,
            "invoiceMarkUncollectible",
            "A void invoice cannot be marked uncollectible.",
        ),
        (FINALIZE_INVOICE, "invoiceFinalize", "A void invoice cannot be finalized."),
    ):
        refused = (await admin.data(document, {"input": {"invoiceId": opened["id"]}}))[name]
        assert codes(refused) == [(["input", "invoiceId"], "INVALID_STATE")]
        assert refused["errors"][0]["message"] == message
    assert (await admin.data(GET, {"id": opened["id"]}))["invoice"] == void

    bad_debt = await invoice_factory(finalize=True)
    written_off = (await admin.data(UNCOLLECTIBLE, {"input": {"invoiceId": bad_debt["id"]}}))[
        "invoiceMarkUncollectible"
    ]
    assert written_off["errors"] == []
    assert written_off["invoice"]["status"] == "UNCOLLECTIBLE"
    again = (await admin.data(UNCOLLECTIBLE, {"input": {"invoiceId": bad_debt["id"]}}))[
        "invoiceMarkUncollectible"
    ]
    assert codes(again) == [(["input", "invoiceId"], "INVALID_STATE")]
    # An uncollectible invoice can still be voided.
    voided = (await admin.data(VOID, {"input": {"invoiceId": bad_debt["id"]}}))["invoiceVoid"]
    assert voided["invoice"]["status"] == "VOID"

    missing = (await admin.data(VOID, {"input": {"invoiceId": "inv_missing"}}))["invoiceVoid"]
    assert codes(missing) == [(["input", "invoiceId"], "NOT_FOUND")]
    long = (await admin.data(VOID, {"input": {"invoiceId": draft["id"], "reason": "r" * 501}}))[
        "invoiceVoid"
    ]
    assert codes(long) == [(["input", "reason"], "INVALID")]


async def test_an_invoice_without_lines_or_with_a_credit_total(
    admin: GraphQLClient, invoice_factory: Callable[..., Any]
) -> None:
    empty = await invoice_factory(lines=[])
    refused = await finalize(admin, empty["id"])
    assert codes(refused) == [(["input", "invoiceId"], "INVALID_STATE")]

    credit = await invoice_factory(
        lines=[{"description": "Refund of overcharge", "unitAmount": -500}]
    )
    done = await finalize(admin, credit["id"])
    invoice = done["invoice"]
    assert (invoice["status"], invoice["total"]["amount"], invoice["amountDue"]["amount"]) == (
        "PAID",
        "-500",
        "0",
    )
    assert invoice["creditToBalance"]["amount"] == "500"


async def test_jpy_and_kwd_use_their_minor_units(
    admin: GraphQLClient, invoice_factory: Callable[..., Any]
) -> None:
    yen = await invoice_factory(
        currency="JPY",
        lines=[{"description": "Plan", "unitAmount": 1980, "quantity": 3}],
        finalize=True,
    )
    assert (yen["total"]["amount"], yen["total"]["decimal"], yen["total"]["currency"]) == (
        "5940",
        "5940",
        "JPY",
    )
    dinar = await invoice_factory(
        currency="KWD",
        lines=[
            {"description": "Plan", "unitAmount": 12345},
            {"description": "Fee", "unitAmount": 5},
        ],
        finalize=True,
    )
    assert (dinar["total"]["amount"], dinar["total"]["decimal"]) == ("12350", "12.350")
    assert dinar["lines"][0]["amount"]["decimal"] == "12.345"


async def test_customer_tokens_see_only_their_own_invoices(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    me, other = await customer_factory(), await customer_factory()
    mine = await invoice_factory(customer=me, finalize=True)
    theirs = await invoice_factory(customer=other, finalize=True)
    client = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))
    assert (await client.data(GET, {"id": mine["id"]}))["invoice"]["id"] == mine["id"]
    assert (await client.data(GET, {"id": theirs["id"]}))["invoice"] is None
    listing = (await client.data(LIST))["invoices"]
    assert [e["node"]["id"] for e in listing["edges"]] == [mine["id"]]
    assert listing["totalCount"] == 1
    asked = (await client.data(LIST, {"filter": {"customerId": other["id"]}}))["invoices"]
    assert (asked["edges"], asked["totalCount"]) == ([], 0)
    for document in (VOID, UNCOLLECTIBLE, FINALIZE_INVOICE):
        body = await client(document, {"input": {"invoiceId": mine["id"]}})
        assert error_codes(body) == ["FORBIDDEN"]
    stranger = GraphQLClient(http, token(settings, "another-org", "admin"))
    assert (await stranger.data(GET, {"id": mine["id"]}))["invoice"] is None
    refused = (await stranger.data(VOID, {"input": {"invoiceId": mine["id"]}}))["invoiceVoid"]
    assert codes(refused) == [(["input", "invoiceId"], "NOT_FOUND")]
    assert (await admin.data(GET, {"id": mine["id"]}))["invoice"]["status"] == "OPEN"


async def test_list_filters_and_keyset_pages(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    a, b = await customer_factory(), await customer_factory()
    made = [
        await invoice_factory(customer=a, finalize=True),
        await invoice_factory(customer=b),
        await invoice_factory(customer=a),
    ]
    by_customer = (await admin.data(LIST, {"filter": {"customerId": a["id"]}}))["invoices"]
    assert [e["node"]["id"] for e in by_customer["edges"]] == [made[0]["id"], made[2]["id"]]
    drafts = (await admin.data(LIST, {"filter": {"status": ["DRAFT"]}}))["invoices"]
    assert [e["node"]["id"] for e in drafts["edges"]] == [made[1]["id"], made[2]["id"]]
    future = (await admin.data(LIST, {"filter": {"from": "2999-01-01T00:00:00Z"}}))["invoices"]
    assert future["totalCount"] == 0
    page = (await admin.data(LIST, {"first": 2}))["invoices"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (await admin.data(LIST, {"first": 2, "after": page["pageInfo"]["endCursor"]}))[
        "invoices"
    ]
    assert [e["node"]["id"] for e in page["edges"] + rest["edges"]] == [i["id"] for i in made]


LIST_WITH_LINES = """query($n: Int) {
  invoices(first: $n) {
    totalCount
    edges { node { id number total { amount } lines { id description amount { amount } } } }
  }
}"""
CUSTOMERS_WITH_INVOICES = """query($n: Int) {
  customers(first: $n) {
    edges { node { id creditBalances { amount currency }
      invoices(first: 3) { totalCount edges { node { id lines { id } } } }
    } }
  }
}"""


async def test_statement_counts_do_not_grow_with_the_page(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    customers = [await customer_factory() for _ in range(10)]
    for index in range(50):
        await invoice_factory(
            customer=customers[index % 10],
            lines=[{"description": f"Line {n}", "unitAmount": 100 + n} for n in range(3)],
        )
    counts = {}
    for n in (5, 50):
        with count_statements() as log:
            data = await admin.data(LIST_WITH_LINES, {"n": n})
        edges = data["invoices"]["edges"]
        assert len(edges) == n
        assert all(len(e["node"]["lines"]) == 3 for e in edges)
        counts[n] = log.count
    assert counts[5] == counts[50] == 3, counts  # the page, its count, every line at once
    nested = {}
    for n in (2, 10):
        with count_statements() as log:
            data = await admin.data(CUSTOMERS_WITH_INVOICES, {"n": n})
        assert all(e["node"]["invoices"]["totalCount"] == 5 for e in data["customers"]["edges"])
        nested[n] = log.count
    assert nested[2] == nested[10], nested
