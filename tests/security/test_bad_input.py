"""Malformed requests get a clear 4xx or payload error: never a 500, a traceback or a write."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import CREATE_PLAN
from tests.support import GraphQLClient

PLAN_INPUT: dict[str, Any] = {
    "code": "basic",
    "name": "Basic",
    "tier": "BASIC",
    "price": {"amount": 500, "currency": "USD"},
    "interval": "MONTH",
}


def no_traceback(response: httpx.Response) -> None:
    assert response.status_code < 500
    for marker in ("Traceback", 'File "', "asyncpg", "sqlalchemy", "sk_test"):
        assert marker not in response.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"query": ', "application/json"),
        (b"\xff\xfe\xfa not utf-8", "application/json"),
        (b"query=%7B%7D", "application/x-www-form-urlencoded"),
        (b"<xml/>", "text/xml"),
        (b"[1, 2, 3]", "application/json"),
        (b'{"query": 42}', "application/json"),
    ],
)
async def test_malformed_bodies_are_4xx(
    admin: GraphQLClient, content: bytes, content_type: str
) -> None:
    response = await admin.http.post(
        "/graphql",
        content=content,
        headers={"content-type": content_type, "authorization": f"Bearer {admin.bearer}"},
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    no_traceback(response)


async def test_batched_requests_are_refused(admin: GraphQLClient) -> None:
    response = await admin.http.post(
        "/graphql",
        json=[{"query": "{ serviceInfo { name } }"}] * 2,
        headers={"authorization": f"Bearer {admin.bearer}"},
    )
    assert 400 <= response.status_code < 500
    no_traceback(response)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (2**64, "BigInt must fit in a signed 64-bit integer."),
        ("99999999999999999999999", "BigInt must fit in a signed 64-bit integer."),
        ("12.5", "BigInt must be an integer or a string of digits."),
        (True, "BigInt must be an integer"),
    ],
)
async def test_out_of_range_integers_are_request_errors(
    admin: GraphQLClient, amount: Any, expected: str
) -> None:
    body = await admin(
        CREATE_PLAN, {"input": {**PLAN_INPUT, "price": {"amount": amount, "currency": "USD"}}}
    )
    assert body.get("data") is None
    assert expected in body["errors"][0]["message"]
    assert (await admin.data("{ plans { totalCount } }"))["plans"]["totalCount"] == 0


async def test_amount_beyond_storage_is_a_payload_error(admin: GraphQLClient) -> None:
    data = await admin.data(
        CREATE_PLAN, {"input": {**PLAN_INPUT, "price": {"amount": str(2**62), "currency": "USD"}}}
    )
    assert [(e["field"], e["code"]) for e in data["planCreate"]["errors"]] == [
        (["input", "price", "amount"], "INVALID")
    ]


async def test_long_strings_and_control_characters(admin: GraphQLClient) -> None:
    data = await admin.data(CREATE_PLAN, {"input": {**PLAN_INPUT, "name": "x" * 100_000}})
    assert [e["code"] for e in data["planCreate"]["errors"]] == ["INVALID"]
    response = await admin.raw(
        CREATE_PLAN, {"input": {**PLAN_INPUT, "code": "nul", "description": "a\x00b"}}
    )
    assert response.status_code == 400
    assert "NUL character" in response.text
    assert (await admin.data("{ plans { totalCount } }"))["plans"]["totalCount"] == 0


async def test_megabyte_string_gets_413(admin: GraphQLClient) -> None:
    response = await admin.raw(CREATE_PLAN, {"input": {**PLAN_INPUT, "name": "x" * 1_000_000}})
    assert response.status_code == 413
    no_traceback(response)


@pytest.mark.parametrize(
    "wrong", ["cus_00000000000000000000000000", "plan_", "", "x" * 500, "plan_'; drop"]
)
async def test_ids_of_the_wrong_shape_are_not_found(admin: GraphQLClient, wrong: str) -> None:
    body = await admin("query($id: ID!) { plan(id: $id) { id } }", {"id": wrong})
    assert "errors" not in body
    assert body["data"] == {"plan": None}
    data = await admin.data(
        "mutation($id: ID!) { planArchive(input: {id: $id}) { errors { code field } } }",
        {"id": wrong},
    )
    assert data["planArchive"]["errors"] == [{"code": "NOT_FOUND", "field": ["input", "id"]}]


async def test_unknown_enum_and_missing_fields_are_request_errors(admin: GraphQLClient) -> None:
    body = await admin(CREATE_PLAN, {"input": {**PLAN_INPUT, "tier": "PLATINUM"}})
    assert body.get("data") is None
    assert "PLATINUM" in body["errors"][0]["message"]
    body = await admin(CREATE_PLAN, {"input": {"code": "x"}})
    assert body.get("data") is None
    assert "to include required field 'name'" in body["errors"][0]["message"]
