"""Generated operations (from schema.graphql) never produce a 5xx or an unexpected error.

hypothesis-graphql builds valid queries and mutations from the committed schema with random
arguments; every one is sent with a valid admin token. A masked "Unexpected error." means a bug
escaped validation, so it fails the test as much as a 500 does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import hypothesis_graphql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode

from app.core.settings import Settings
from tests.support import token

SCHEMA = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()
CASES = int(os.environ.get("FUZZ_CASES", "2000"))

SCALARS = {
    "BigInt": st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.from_regex(r"-?[0-9]{1,22}", fullmatch=True),
    ).map(
        lambda v: (
            hypothesis_graphql.nodes.String(str(v))
            if isinstance(v, str)
            else hypothesis_graphql.nodes.Int(v)
        )
    ),
    "DateTime": st.datetimes().map(lambda d: hypothesis_graphql.nodes.String(d.isoformat())),
    "JSON": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(
        lambda d: hypothesis_graphql.nodes.String(json.dumps(d))
    ),
}


def generate(strategy: st.SearchStrategy[Any], count: int) -> list[str]:
    documents: list[str] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(document: Any) -> None:
        documents.append(str(document))

    collect()
    return documents


async def test_generated_operations_never_fail_unexpectedly(
    http: httpx.AsyncClient, settings: Settings, org: str
) -> None:
    queries = hypothesis_graphql.queries(SCHEMA, custom_scalars=SCALARS)
    mutations = hypothesis_graphql.mutations(SCHEMA, custom_scalars=SCALARS)
    invalid = hypothesis_graphql.queries(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE)
    share = CASES // 4
    documents = (
        generate(queries, CASES - 2 * share) + generate(mutations, share) + generate(invalid, share)
    )
    headers = {"authorization": f"Bearer {token(settings, org)}"}
    failures = []
    for document in documents:
        response = await http.post("/graphql", json={"query": document}, headers=headers)
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        messages = [e.get("message") for e in body.get("errors", [])]
        if response.status_code >= 500 or "Unexpected error." in messages:
            failures.append((response.status_code, document, messages))
    print(f"\nfuzzed {len(documents)} operations")
    assert failures == [], failures[:5]
