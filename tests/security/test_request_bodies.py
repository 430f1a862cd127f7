"""Request bodies that are not the strict JSON object we accept are 400s with a reason, never a
500 or a masked error; media types are case-insensitive."""

from __future__ import annotations

import httpx
import pytest

QUERY = '{"query": "{ serviceInfo { name } }"}'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('"hello"', 'The body must be a JSON object, e.g. {"query": "{ __typename }"}.'),
        ("null", 'The body must be a JSON object, e.g. {"query": "{ __typename }"}.'),
        ("42", 'The body must be a JSON object, e.g. {"query": "{ __typename }"}.'),
        ("[" * 10_000 + "]" * 10_000, "JSON is nested deeper than 64 levels."),
        (
            '{"query": "{ serviceInfo { name } }", "variables": {"a": '
            + "[" * 70
            + "]" * 70
            + "}}",
            "JSON is nested deeper than 64 levels.",
        ),
        (
            '{"query": "{ serviceInfo { name } }", "variables": {"n": ' + "9" * 5000 + "}}",
            "The JSON holds a number too large to read.",
        ),
        (
            '{"query": "{ serviceInfo { name } }", "variables": {"s": "\\ud800"}}',
            "The request contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not "
            "a character.",
        ),
        (
            '{"query": "{ serviceInfo { name } }", "variables": {"\\udfff": 1}}',
            "The request contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not "
            "a character.",
        ),
        (
            '{"query": "{ serviceInfo { name } }" ',
            "Unable to parse the JSON: Expecting ',' delimiter at character 37.",
        ),
        ('{"query": "\\u0000"}', "The request contains a NUL character, which is not allowed."),
        (
            '{"query": "{ serviceInfo { name } }", "variables": {"n": NaN}}',
            "NaN is not a JSON value.",
        ),
        (
            '{"query": "{ serviceInfo { name } }", "variables": {"n": [-Infinity]}}',
            "-Infinity is not a JSON value.",
        ),
    ],
    ids=[
        "string",
        "null",
        "number",
        "deep-array",
        "deep-variables",
        "5000-digits",
        "lone-surrogate",
        "lone-surrogate-key",
        "truncated",
        "nul",
        "nan",
        "infinity",
    ],
)
async def test_bodies_that_are_not_a_strict_json_object_are_400(
    http: httpx.AsyncClient, body: str, reason: str
) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.text == reason


async def test_an_escaped_surrogate_pair_is_a_character(http: httpx.AsyncClient) -> None:
    body = '{"query": "{ serviceInfo { name } }", "variables": {"s": "\\ud83d\\ude00 ok"}}'
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"serviceInfo": {"name": "billing"}}


@pytest.mark.parametrize(
    "media_type", ["application/JSON", "Application/Json; charset=UTF-8", "APPLICATION/JSON"]
)
async def test_media_types_are_case_insensitive(http: httpx.AsyncClient, media_type: str) -> None:
    response = await http.post("/graphql", content=QUERY, headers={"content-type": media_type})
    assert response.status_code == 200
    assert response.json()["data"] == {"serviceInfo": {"name": "billing"}}


async def test_other_media_types_are_still_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", content=QUERY, headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert response.text == "Unsupported content type"
