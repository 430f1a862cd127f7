"""Persisted queries over HTTP (Apollo's automatic protocol, GET with a hash) and the
production allow-list of registered operations, over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.persisted_queries import load_manifest, persisted_hash
from app.core.settings import Settings, SettingsError, load_settings
from app.web.app import create_app
from schema import PersistedQueries
from tests.conftest import running
from tests.support import GraphQLClient, error_codes, new_org, token
from tests.web_support import connect, served, subscribe

PLANS = "query Plans { plans(first: 5) { totalCount edges { node { id code } } } }"


def _persisted(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


async def _post(
    http: httpx.AsyncClient, bearer: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    response = await http.post("/graphql", json=body, headers={"authorization": f"Bearer {bearer}"})
    return response.status_code, response.json()


async def _get(http: httpx.AsyncClient, bearer: str, params: dict[str, str]) -> httpx.Response:
    return await http.get(
        "/graphql",
        params=params,
        headers={"authorization": f"Bearer {bearer}", "accept": "application/json"},
    )


async def test_apollo_protocol_hash_miss_then_text_then_hash_alone(
    http: httpx.AsyncClient, admin: GraphQLClient, plan_factory: Any
) -> None:
    await plan_factory(code="apq-plan")
    # A text no other test sends, so this process has never seen its hash.
    query = PLANS + f" # {new_org()}"
    sha256 = persisted_hash(query)
    assert admin.bearer is not None

    status, body = await _post(http, admin.bearer, {"extensions": _persisted(sha256)})
    assert status == 200
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert body.get("data") is None

    status, body = await _post(
        http, admin.bearer, {"query": query, "extensions": _persisted(sha256)}
    )
    assert status == 200
    assert "errors" not in body, body
    by_text = body["data"]

    status, body = await _post(http, admin.bearer, {"extensions": _persisted(sha256.upper())})
    assert status == 200
    assert "errors" not in body, body
    assert body["data"] == by_text
    assert [e["node"]["code"] for e in body["data"]["plans"]["edges"]] == ["apq-plan"]
    # Costed like the text: the cost extension sees the same document.
    assert body["extensions"]["cost"]["requestedQueryCost"] > 0


async def test_get_runs_a_persisted_query_and_refuses_anything_else(
    http: httpx.AsyncClient, admin: GraphQLClient, plan_factory: Any
) -> None:
    await plan_factory(code="get-plan")
    assert admin.bearer is not None
    query = PLANS + f" # {new_org()}"
    sha256 = persisted_hash(query)
    extensions = json.dumps(_persisted(sha256))

    miss = await _get(http, admin.bearer, {"extensions": extensions})
    assert miss.status_code == 200
    assert error_codes(miss.json()) == ["PERSISTED_QUERY_NOT_FOUND"]

    # Apollo's link retries over GET with the text when `useGETForHashedQueries` is on.
    registered = await _get(
        http, admin.bearer, {"query": query, "extensions": extensions, "operationName": "Plans"}
    )
    assert registered.status_code == 200
    assert "errors" not in registered.json()

    hit = await _get(http, admin.bearer, {"extensions": extensions, "operationName": "Plans"})
    assert hit.status_code == 200
    assert hit.json()["data"]["plans"]["edges"][0]["node"]["code"] == "get-plan"

    plain = await _get(http, admin.bearer, {"query": PLANS})
    assert plain.status_code == 400
    assert "persisted queries only" in plain.text

    mutation = 'mutation M { customerCreate(input: {email: "x@example.com"}) { errors { code } } }'
    mutation_sha = json.dumps(_persisted(persisted_hash(mutation)))
    refused = await _get(http, admin.bearer, {"query": mutation, "extensions": mutation_sha})
    assert refused.status_code == 400
    listed = await admin.data("{ customers(first: 1) { totalCount } }")
    assert listed["customers"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        ({"persistedQuery": "abc"}, "BAD_REQUEST"),
        ({"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}, "BAD_REQUEST"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "xyz"}}, "BAD_REQUEST"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}, "PERSISTED_QUERY_NOT_FOUND"),
    ],
)
async def test_malformed_persisted_query_extensions_are_errors(
    http: httpx.AsyncClient, admin: GraphQLClient, extensions: dict[str, Any], code: str
) -> None:
    assert admin.bearer is not None
    status, body = await _post(http, admin.bearer, {"extensions": extensions})
    assert status == 200
    assert error_codes(body) == [code]


async def test_a_hash_that_is_not_the_texts_is_refused_and_not_remembered(
    http: httpx.AsyncClient, admin: GraphQLClient
) -> None:
    assert admin.bearer is not None
    query = PLANS + f" # {new_org()}"
    other = persisted_hash("{ __typename }" + new_org())
    status, body = await _post(
        http, admin.bearer, {"query": query, "extensions": _persisted(other)}
    )
    assert status == 200
    assert error_codes(body) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    status, body = await _post(http, admin.bearer, {"extensions": _persisted(other)})
    assert error_codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_automatic_registration_is_bounded() -> None:
    queries = PersistedQueries(max_automatic=3)
    texts = [f"{{ __typename }} # {n}" for n in range(5)]
    for text in texts:
        queries.remember(persisted_hash(text), text)
    assert [queries.find(persisted_hash(t)) for t in texts] == [None, None, *texts[2:]]


def _manifest(tmp_path: Path, *bodies: str, apollo: bool = True) -> Path:
    path = tmp_path / "operations.json"
    if apollo:
        operations = [
            {"id": persisted_hash(b), "body": b, "name": "Op", "type": "query"} for b in bodies
        ]
        document: object = {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": operations,
        }
    else:
        document = {persisted_hash(b): b for b in bodies}
    path.write_text(json.dumps(document))
    return path


async def test_only_registered_operations_run_when_the_allow_list_is_on(
    settings: Settings, tmp_path: Path
) -> None:
    allowed = PLANS
    live = "subscription Rev { revenue { at } }"
    manifest = _manifest(tmp_path, allowed, live)
    locked = settings.with_overrides(persisted_queries_file=manifest, persisted_queries_only=True)
    org = new_org()
    bearer = token(locked, org, "admin")
    async for http in running(create_app(locked)):
        # By hash, with no automatic registration needed: every process knows the manifest.
        status, body = await _post(
            http, bearer, {"extensions": _persisted(persisted_hash(allowed))}
        )
        assert status == 200
        assert "errors" not in body, body
        # The registered text itself is fine too.
        status, body = await _post(http, bearer, {"query": allowed})
        assert "errors" not in body, body
        # Anything else is refused, by text or by an unknown hash, before it runs.
        other = "{ customers(first: 1) { totalCount } }"
        status, body = await _post(http, bearer, {"query": other})
        assert error_codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        status, body = await _post(
            http, bearer, {"query": other, "extensions": _persisted(persisted_hash(other))}
        )
        assert error_codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        status, body = await _post(http, bearer, {"extensions": _persisted(persisted_hash(other))})
        assert error_codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        status, body = await _post(
            http,
            bearer,
            {"query": 'mutation { planArchive(input: {id: "pln_x"}) { errors { code } } }'},
        )
        assert error_codes(body) == ["PERSISTED_QUERY_NOT_IN_LIST"]

    async with served(locked) as base_url, connect(base_url, bearer) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await subscribe(ws, "1", "subscription Other { revenue { currencies { currency } } }")
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert refused["type"] in ("error", "next"), refused
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"


def test_manifests_are_checked_when_the_settings_load(tmp_path: Path) -> None:
    body = "{ __typename }"
    relay = _manifest(tmp_path, body, apollo=False)
    assert load_manifest(relay) == {persisted_hash(body): body}
    loaded = load_settings(
        {
            "BILLING_HOME": str(tmp_path),
            "PERSISTED_QUERIES_FILE": str(relay),
            "PERSISTED_QUERIES_ONLY": "true",
        }
    )
    assert (loaded.persisted_queries_file, loaded.persisted_queries_only) == (relay, True)

    wrong = tmp_path / "md5.json"
    wrong.write_text(json.dumps({"0" * 32: body}))
    with pytest.raises(SettingsError, match=r"PERSISTED_QUERIES_FILE.*SHA-256"):
        load_settings({"BILLING_HOME": str(tmp_path), "PERSISTED_QUERIES_FILE": str(wrong)})
    with pytest.raises(SettingsError, match="PERSISTED_QUERIES_ONLY=true needs"):
        load_settings({"BILLING_HOME": str(tmp_path), "PERSISTED_QUERIES_ONLY": "true"})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(
            {"BILLING_HOME": str(tmp_path), "PERSISTED_QUERIES_FILE": str(tmp_path / "none")}
        )
