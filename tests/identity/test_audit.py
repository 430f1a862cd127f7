"""The audit log covers every mutation: each field of the root Mutation type is wrapped, as the
outermost extension, by the audit (walked from the schema, so a mutation added later without
it fails here); the authorization matrix (tests/security/test_authorization_matrix.py) calls
every mutation with every role and checks one entry per call. Here: what an entry holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from schema import build_schema, schema
from schema.audit import AuditedMutation
from tests.identity.test_api_keys import make_key
from tests.support import GraphQLClient, error_codes

ENTRIES = """
query($actor: String, $action: String, $from: DateTime, $to: DateTime, $after: String) {
  auditLog(actor: $actor, action: $action, from: $from, to: $to, first: 2, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id occurredAt actor actorType role action targetIds outcome errorCodes
                   requestId } }
  }
}
"""


def test_every_mutation_field_is_audited_by_its_outermost_extension() -> None:
    for built in (schema, build_schema(production=True)):
        definition = built.mutation.__strawberry_definition__  # type: ignore[union-attr]
        fields = definition.fields
        assert len(fields) > 30
        for field in fields:
            audits = [e for e in field.extensions if isinstance(e, AuditedMutation)]
            assert len(audits) == 1, field.name
            # Strawberry runs the last extension outermost: the audit sees permission refusals.
            assert field.extensions[-1] is audits[0], field.name


async def test_an_entry_says_who_did_what_to_which_object_and_how_it_ended(
    admin: GraphQLClient, gql: GraphQLClient, http: httpx.AsyncClient, app_services: Any
) -> None:
    made = await make_key(admin)
    key, key_id = made["key"], made["apiKey"]["id"]
    service = gql.as_(key)
    created = await service.data(
        'mutation { customerCreate(input: {email: "audit@example.com"}) '
        "{ customer { id } errors { code } } }"
    )
    customer_id = created["customerCreate"]["customer"]["id"]
    # A payload error, and a refusal for the role.
    invalid = await service.data(
        'mutation { customerCreate(input: {email: "not an email"}) { errors { code } } }'
    )
    assert invalid["customerCreate"]["errors"]
    refused = await service(
        'mutation { apiKeyRevoke(input: {id: "' + key_id + '"}) { errors { code } } }'
    )
    assert error_codes(refused) == ["FORBIDDEN"]
    # The request id the caller sent is kept.
    response = await http.post(
        "/graphql",
        json={
            "query": 'mutation($id: ID!) { customerUpdate(input: {id: $id, name: "N"}) '
            "{ customer { id } errors { code } } }",
            "variables": {"id": customer_id},
        },
        headers={"authorization": f"Bearer {key}", "x-request-id": "req-audit-1"},
    )
    assert response.status_code == 200

    entries = (await admin.data(ENTRIES, {"actor": key[:20]}))["auditLog"]
    assert entries["totalCount"] == 4
    nodes = [e["node"] for e in entries["edges"]]
    after = entries["pageInfo"]["endCursor"]
    nodes += [
        e["node"]
        for e in (await admin.data(ENTRIES, {"actor": key[:20], "after": after}))["auditLog"][
            "edges"
        ]
    ]
    summary = [
        (n["action"], n["actorType"], n["role"], n["targetIds"], n["outcome"], n["errorCodes"])
        for n in nodes
    ]
    assert summary == [
        ("customerCreate", "API_KEY", "SERVICE", [customer_id], "OK", []),
        ("customerCreate", "API_KEY", "SERVICE", [], "ERROR", ["INVALID"]),
        ("apiKeyRevoke", "API_KEY", "SERVICE", [key_id], "REFUSED", ["FORBIDDEN"]),
        ("customerUpdate", "API_KEY", "SERVICE", [customer_id], "OK", []),
    ]
    assert nodes[-1]["requestId"] == "req-audit-1"
    assert all(n["requestId"] for n in nodes)  # made by the middleware when not sent
    # The key's secret part appears in no entry.
    assert key[20:] not in str(nodes)

    # Filters: action, and a time range.
    by_action = await admin.data(ENTRIES, {"actor": key[:20], "action": "apiKeyRevoke"})
    assert by_action["auditLog"]["totalCount"] == 1
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    earlier = await admin.data(ENTRIES, {"actor": key[:20], "to": past})
    assert earlier["auditLog"]["totalCount"] == 0
    now = await admin.data(ENTRIES, {"actor": key[:20], "from": past})
    assert now["auditLog"]["totalCount"] == 4
    # The admin's own key creation is in it too, under its subject.
    mine = await admin.data(ENTRIES, {"actor": "test-admin", "action": "apiKeyCreate"})
    assert mine["auditLog"]["edges"][0]["node"]["targetIds"] == [key_id]
    assert app_services.audit.failures == 0
