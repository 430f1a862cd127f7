"""More bad input that used to end in "Unexpected error." (an exception escaping a resolver):
dates outside the calendar, dates without a zone, pagination cursors we never issued, page
sizes out of range. Each class is tested at every place of the schema it can reach, and a
test fails when the schema grows a place the table here does not cover."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, GraphQLObjectType, build_schema, get_named_type

from tests.support import GraphQLClient, error_codes

SDL = build_schema((Path(__file__).resolve().parents[2] / "schema.graphql").read_text())
ANY_ID = "00000000000000000000000000"

# Every DateTime/Date input of the schema: where it is, its scalar, and an operation using it
# as $d (any other ids may be made up: a refused value stops the request before it runs).
DATE_INPUTS: dict[str, tuple[str, str]] = {
    "Query.revenueStats(from)": (
        "DateTime",
        'query($d: DateTime!) { revenueStats(from: $d, to: "2024-02-01T00:00:00Z") { currency } }',
    ),
    "Query.revenueStats(to)": (
        "DateTime",
        'query($d: DateTime!) { revenueStats(from: "2024-01-01T00:00:00Z", to: $d) { currency } }',
    ),
    "Query.subscriptionStats(at)": (
        "DateTime",
        "query($d: DateTime!) { subscriptionStats(at: $d) { at } }",
    ),
    "Query.subscriptionStats(from)": (
        "DateTime",
        "query($d: DateTime!) { subscriptionStats(from: $d) { at } }",
    ),
    "Query.subscriptionStats(to)": (
        "DateTime",
        "query($d: DateTime!) { subscriptionStats(to: $d) { at } }",
    ),
    "Query.ledger(from)": (
        "DateTime",
        f'query($d: DateTime!) {{ ledger(customerId: "cus_{ANY_ID}", currency: "USD", from: $d) '
        "{ currency } }",
    ),
    "Query.ledger(to)": (
        "DateTime",
        f'query($d: DateTime!) {{ ledger(customerId: "cus_{ANY_ID}", currency: "USD", to: $d) '
        "{ currency } }",
    ),
    "Query.usage(from)": (
        "DateTime",
        f'query($d: DateTime!) {{ usage(subscriptionId: "sub_{ANY_ID}", metric: "m", from: $d, '
        'to: "2024-02-01T00:00:00Z") { total } }',
    ),
    "Query.usage(to)": (
        "DateTime",
        f'query($d: DateTime!) {{ usage(subscriptionId: "sub_{ANY_ID}", metric: "m", '
        'from: "2024-01-01T00:00:00Z", to: $d) { total } }',
    ),
    "UsageEventInput.timestamp": (
        "DateTime",
        'mutation($d: DateTime!) { usageRecord(input: {metric: "m", idempotencyKey: "k", '
        "timestamp: $d}) { errors { code } } }",
    ),
    "Query.events(from)": (
        "DateTime",
        "query($d: DateTime!) { events(from: $d) { totalCount } }",
    ),
    "Query.events(to)": (
        "DateTime",
        "query($d: DateTime!) { events(to: $d) { totalCount } }",
    ),
    "PaymentFilter.from": (
        "DateTime",
        "query($d: DateTime!) { payments(filter: {from: $d}) { totalCount } }",
    ),
    "PaymentFilter.to": (
        "DateTime",
        "query($d: DateTime!) { payments(filter: {to: $d}) { totalCount } }",
    ),
    "InvoiceFilter.from": (
        "DateTime",
        "query($d: DateTime!) { invoices(filter: {from: $d}) { totalCount } }",
    ),
    "InvoiceFilter.to": (
        "DateTime",
        "query($d: DateTime!) { invoices(filter: {to: $d}) { totalCount } }",
    ),
    "CouponCreateInput.redeemBy": (
        "DateTime",
        'mutation($d: DateTime!) { couponCreate(input: {code: "c1", name: "C", duration: ONCE, '
        'percentOff: "10", redeemBy: $d}) { errors { code } } }',
    ),
    "SubscriptionCreateInput.startAt": (
        "DateTime",
        f'mutation($d: DateTime!) {{ subscriptionCreate(input: {{customerId: "cus_{ANY_ID}", '
        f'planId: "plan_{ANY_ID}", startAt: $d, idempotencyKey: "k1"}}) {{ errors {{ code }} }} }}',
    ),
    "SubscriptionPauseInput.resumesAt": (
        "DateTime",
        f'mutation($d: DateTime!) {{ subscriptionPause(input: {{id: "sub_{ANY_ID}", '
        "resumesAt: $d}) { errors { code } } }",
    ),
    "TestClockAdvanceInput.to": (
        "DateTime",
        "mutation($d: DateTime!) { testClockAdvance(input: {to: $d}) { now errors { code } } }",
    ),
    "InvoiceCreateInput.dueDate": (
        "Date",
        f'mutation($d: Date!) {{ invoiceCreate(input: {{customerId: "cus_{ANY_ID}", '
        'currency: "USD", lines: [{description: "a", unitAmount: 1}], idempotencyKey: "k2", '
        "dueDate: $d}) { errors { code } } }",
    ),
    "InvoiceCreateInput.periodStart": (
        "DateTime",
        f'mutation($d: DateTime!) {{ invoiceCreate(input: {{customerId: "cus_{ANY_ID}", '
        'currency: "USD", lines: [{description: "a", unitAmount: 1}], idempotencyKey: "k3", '
        "periodStart: $d}) { errors { code } } }",
    ),
    "InvoiceCreateInput.periodEnd": (
        "DateTime",
        f'mutation($d: DateTime!) {{ invoiceCreate(input: {{customerId: "cus_{ANY_ID}", '
        'currency: "USD", lines: [{description: "a", unitAmount: 1}], idempotencyKey: "k4", '
        "periodEnd: $d}) { errors { code } } }",
    ),
    "InvoiceLineInput.periodStart": (
        "DateTime",
        f'mutation($d: DateTime!) {{ invoiceAddLine(input: {{invoiceId: "inv_{ANY_ID}", '
        'line: {description: "a", unitAmount: 1, periodStart: $d}}) { errors { code } } }',
    ),
    "Query.auditLog(from)": (
        "DateTime",
        "query($d: DateTime!) { auditLog(from: $d) { totalCount } }",
    ),
    "Query.auditLog(to)": (
        "DateTime",
        "query($d: DateTime!) { auditLog(to: $d) { totalCount } }",
    ),
    "ApiKeyCreateInput.expiresAt": (
        "DateTime",
        'mutation($d: DateTime!) { apiKeyCreate(input: {name: "k", role: SERVICE, '
        "expiresAt: $d}) { errors { code } } }",
    ),
    "InvoiceLineInput.periodEnd": (
        "DateTime",
        f'mutation($d: DateTime!) {{ invoiceAddLine(input: {{invoiceId: "inv_{ANY_ID}", '
        'line: {description: "a", unitAmount: 1, periodEnd: $d}}) { errors { code } } }',
    ),
}


def test_the_table_covers_every_date_input_of_the_schema() -> None:
    found = set()
    for name, kind in SDL.type_map.items():
        if isinstance(kind, GraphQLObjectType) and not name.startswith("__"):
            for field_name, field in kind.fields.items():
                for arg_name, arg in field.args.items():
                    if get_named_type(arg.type).name in ("DateTime", "Date"):
                        found.add(f"{name}.{field_name}({arg_name})")
        if isinstance(kind, GraphQLInputObjectType):
            for field_name, field in kind.fields.items():
                if get_named_type(field.type).name in ("DateTime", "Date"):
                    found.add(f"{name}.{field_name}")
    assert found == set(DATE_INPUTS)


BAD_DATETIMES = [
    ("0001-01-01T00:00:00Z", "is out of range"),
    ("0001-01-01T00:00:00+14:00", "is not an ISO 8601 date and time"),  # before year 1 in UTC
    ("1969-12-31T23:59:59Z", "is out of range"),
    ("1970-01-01T00:59:59+01:00", "is out of range"),
    ("3000-01-01T00:00:00Z", "is out of range"),
    ("9999-12-31T23:59:59Z", "is out of range"),
    ("9999-12-31T23:59:59-12:00", "is not an ISO 8601 date and time"),  # past year 9999 in UTC
    ("2024-13-01T00:00:00Z", "is not an ISO 8601 date and time"),
    ("2024-01-01T00:00:00+25:00", "is not an ISO 8601 date and time"),
    ("yesterday", "is not an ISO 8601 date and time"),
    ("2024-01-01T00:00:00Z" + " " * 100, "must be an ISO 8601 string"),
    ("2024-01-01T00:00:00\u00e9", "must be an ISO 8601 string"),
]
BAD_DATES = [
    ("0001-01-01", "is out of range"),
    ("1969-12-31", "is out of range"),
    ("3000-01-01", "is out of range"),
    ("9999-12-31", "is out of range"),
    ("2024-02-30", "is not an ISO 8601 date"),
    ("soon", "is not an ISO 8601 date"),
]


def _cases() -> list[Any]:
    cases = []
    for where, (scalar, document) in DATE_INPUTS.items():
        for value, message in BAD_DATES if scalar == "Date" else BAD_DATETIMES:
            cases.append(
                pytest.param(where, scalar, document, value, message, id=f"{where}={value!r}")
            )
    return cases


def _inline(document: str, scalar: str, value: str) -> str:
    """The same operation with the value written in the document instead of a variable."""
    return document.replace(f"($d: {scalar}!)", "").replace("$d", json.dumps(value))


async def _refused(body: dict[str, Any], message: str) -> None:
    assert body.get("data") is None, body
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert message in body["errors"][0]["message"]
    assert "path" not in body["errors"][0]  # refused before anything ran


@pytest.mark.parametrize(("where", "scalar", "document", "value", "message"), _cases())
async def test_dates_outside_the_calendar_are_refused_with_a_code(
    admin: GraphQLClient, where: str, scalar: str, document: str, value: str, message: str
) -> None:
    await _refused(await admin(document, {"d": value}), message)
    await _refused(await admin(_inline(document, scalar, value)), message)


@pytest.mark.parametrize(("where", "scalar", "document"), [(k, *v) for k, v in DATE_INPUTS.items()])
async def test_a_date_of_the_wrong_type_is_refused_with_a_code(
    admin: GraphQLClient, where: str, scalar: str, document: str
) -> None:
    for value in (20240101, True, ["2024-01-01"], {"at": "2024-01-01"}):
        body = await admin(document, {"d": value})
        assert body.get("data") is None, body
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert f"{scalar} must be an ISO 8601 string" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "value", ["1970-01-01T00:00:00Z", "2999-12-31T23:59:59.999999Z", "2999-12-31T23:59:59+14:00"]
)
async def test_the_ends_of_the_range_are_accepted(admin: GraphQLClient, value: str) -> None:
    for where in ("PaymentFilter.from", "InvoiceFilter.to"):
        data = await admin.data(DATE_INPUTS[where][1], {"d": value})
        assert list(data.values()) == [{"totalCount": 0}]


async def test_nothing_is_written_when_a_date_is_refused(admin: GraphQLClient) -> None:
    await admin(DATE_INPUTS["TestClockAdvanceInput.to"][1], {"d": "0001-01-01T00:00:00Z"})
    await admin(DATE_INPUTS["CouponCreateInput.redeemBy"][1], {"d": "9999-12-31T23:59:59Z"})
    data = await admin.data("{ coupons { totalCount } organization { id } }")
    assert data["coupons"]["totalCount"] == 0
    # the organization's clock was never frozen: a stats query runs on the real time
    at = (await admin.data("{ subscriptionStats { at } }"))["subscriptionStats"]["at"]
    assert not at.startswith("0001")


async def test_a_time_without_a_zone_is_read_as_utc(
    admin: GraphQLClient, customer_factory: Any, plan_factory: Any
) -> None:
    moved = await admin.data(
        DATE_INPUTS["TestClockAdvanceInput.to"][1], {"d": "2031-06-01T12:00:00"}
    )
    assert moved["testClockAdvance"] == {"now": "2031-06-01T12:00:00+00:00", "errors": []}
    customer, plan = await customer_factory(), await plan_factory()
    created = await admin.data(
        "mutation($c: ID!, $p: ID!, $d: DateTime!) { subscriptionCreate(input: {customerId: $c, "
        'planId: $p, startAt: $d, trialDays: 0, idempotencyKey: "naive"}) '
        "{ subscription { id currentPeriodStart } errors { code message } } }",
        {"c": customer["id"], "p": plan["id"], "d": "2031-05-31T12:00:00"},
    )
    subscription = created["subscriptionCreate"]["subscription"]
    assert subscription["currentPeriodStart"] == "2031-05-31T12:00:00+00:00"
    paused = await admin.data(
        "mutation($s: ID!, $d: DateTime!) { subscriptionPause(input: {id: $s, resumesAt: $d}) "
        "{ errors { code message } } }",
        {"s": subscription["id"], "d": "2031-05-01T00:00:00"},
    )
    # a clear payload error (in the past), where it used to compare naive and aware times
    assert paused["subscriptionPause"]["errors"] == [
        {"code": "INVALID", "message": "resumesAt must be in the future."}
    ]


# -- pagination: every connection, every cursor we did not issue --------------------------


def _connections() -> dict[str, str]:
    """Every field taking `after`, as an operation with $after and $first (nested ones under
    a customer that exists: $c)."""
    documents = {}
    for name, kind in SDL.type_map.items():
        if not isinstance(kind, GraphQLObjectType) or name.startswith("__"):
            continue
        for field_name, field in kind.fields.items():
            if "after" not in field.args:
                continue
            page = f"{field_name}(first: $first, after: $after) {{ totalCount edges {{ cursor }} }}"
            if name == "Query":
                documents[f"Query.{field_name}"] = (
                    f"query($first: Int, $after: String) {{ {page} }}"
                )
            else:
                assert name in _PARENTS, f"add a parent for {name}.{field_name}"
                documents[f"{name}.{field_name}"] = (
                    f"query($c: ID!, $first: Int, $after: String) {{ {_PARENTS[name]} "
                    f"{{ {page} }} }}"
                )
    return documents


# How to reach each type that has a nested connection, given a customer that exists ($c).
_PARENTS = {
    "Customer": "customer(id: $c)",
    "CustomerLedger": 'ledger(customerId: $c, currency: "USD")',
}


CONNECTIONS = _connections()


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = {
    "nul": _cursor(b"k:plan_\x00"),
    "only-nul": _cursor(b"k:\x00"),
    "empty-key": _cursor(b"k:"),
    "not-utf8": _cursor(b"k:\xff\xfe"),
    "latin": _cursor("k:caf\u00e9".encode()),
    "newline": _cursor(b"k:cus_1\n"),
    "quote": _cursor(b"k:cus_1' OR '1'='1"),
    "long-key": _cursor(b"k:" + b"a" * 101),
    "huge": "A" * 100_000,
    "no-prefix": _cursor(b"cus_1"),
    "not-base64": "!!!",
    "padding": "====",
    "non-ascii": "\u00e9\u00e9\u00e9",
    "empty": "",
}


@pytest.fixture
async def customer_id(customer_factory: Any) -> str:
    customer: dict[str, Any] = await customer_factory()
    return str(customer["id"])


@pytest.mark.parametrize("where", CONNECTIONS)
@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
async def test_a_cursor_we_did_not_issue_is_a_bad_user_input(
    admin: GraphQLClient, customer_id: str, where: str, cursor: str
) -> None:
    variables = {"after": cursor, **({"c": customer_id} if "$c" in CONNECTIONS[where] else {})}
    body = await admin(CONNECTIONS[where], variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == "The `after` cursor is not one this API issued."


@pytest.mark.parametrize("where", CONNECTIONS)
@pytest.mark.parametrize("first", [-1, 0, 101, 2**31 - 1, -(2**31)])
async def test_a_page_size_out_of_range_is_a_bad_user_input(
    admin: GraphQLClient, customer_id: str, where: str, first: int
) -> None:
    variables = {"first": first, **({"c": customer_id} if "$c" in CONNECTIONS[where] else {})}
    body = await admin(CONNECTIONS[where], variables)
    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["message"] == "`first` must be between 1 and 100."


@pytest.mark.parametrize("first", [2**31, -(2**31) - 1, 10**30])
async def test_a_page_size_beyond_int_is_a_request_error(admin: GraphQLClient, first: int) -> None:
    body = await admin(CONNECTIONS["Query.plans"], {"first": first})
    assert body.get("data") is None
    assert "Int cannot represent non 32-bit signed integer value" in body["errors"][0]["message"]


async def test_issued_cursors_still_page(admin: GraphQLClient, plan_factory: Any) -> None:
    made = [await plan_factory() for _ in range(3)]
    first = await admin.data(CONNECTIONS["Query.plans"], {"first": 2})
    cursor = first["plans"]["edges"][-1]["cursor"]
    rest = await admin.data(CONNECTIONS["Query.plans"], {"first": 2, "after": cursor})
    assert len(first["plans"]["edges"]) + len(rest["plans"]["edges"]) == len(made)


# -- strings written in the document itself ------------------------------------------------

B = "\\"
NUL_LITERALS = {
    "braced": f"a{B}u{{0}}b",
    "braced-padded": f"a{B}u{{000000}}b",
    "fixed": f"a{B}u0000b",
}


@pytest.mark.parametrize("literal", NUL_LITERALS.values(), ids=NUL_LITERALS.keys())
def test_the_storable_strings_rule_refuses_a_nul_written_as_an_escape(literal: str) -> None:
    from graphql import parse, validate

    from schema import schema
    from schema.text_rules import StorableStrings

    document = f'{{ customers(filter: {{email: "{literal}"}}) {{ totalCount }} }}'
    errors = validate(schema._schema, parse(document), [StorableStrings])
    assert [(e.message, e.extensions) for e in errors] == [
        (
            "A string in the document contains a NUL character (U+0000) or an unpaired "
            "surrogate, which cannot be stored.",
            {"code": "BAD_USER_INPUT"},
        )
    ]
    fine = (
        f'{{ customers(filter: {{email: "{B}ud83d{B}ude00 \u00e9 {B}u{{41}}"}}) {{ totalCount }} }}'
    )
    assert validate(schema._schema, parse(fine), [StorableStrings]) == []
    block = f'{{ customers(filter: {{email: """{literal}"""}}) {{ totalCount }} }}'  # no escapes
    assert validate(schema._schema, parse(block), [StorableStrings]) == []


@pytest.mark.parametrize(
    "document",
    [
        f'{{ customers(filter: {{email: "a{B}u{{0}}"}}) {{ totalCount }} }}',
        f'{{ plans(filter: {{currency: "U{B}u{{0}}D"}}) {{ totalCount }} }}',
        f'mutation {{ planCreate(input: {{code: "c", name: "a{B}u{{0}}", tier: BASIC, '
        'price: {amount: 5, currency: "USD"}, interval: MONTH}) { errors { code } } }',
        f'query($e: String = "{B}u{{0}}") {{ customers(filter: {{email: $e}}) {{ totalCount }} }}',
    ],
)
async def test_a_nul_written_as_an_escape_in_the_document_is_refused(
    admin: GraphQLClient, document: str
) -> None:
    body = await admin(document)
    assert body.get("data") is None, body
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert (await admin.data("{ plans { totalCount } }"))["plans"]["totalCount"] == 0
