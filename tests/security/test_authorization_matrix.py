"""Every root field, called by every kind of caller, with data that exists.

Callers: no token, an expired token, another organization's admin, each role of the right
organization, and a customer token of another customer. Only the right callers get data; the
others get UNAUTHENTICATED / FORBIDDEN or nothing, never organization A's or another customer's
data, and nothing is written (a content hash of every organization A row is compared).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from app.context import Context
from app.core.auth import decode_token
from app.core.settings import Settings
from db.tables import metadata
from schema import schema
from tests.security.matrix import ADMIN, CASES, OWNER, SERVICE, Case, World
from tests.support import GraphQLClient, error_codes, new_org, token

ROOTS = {"Query": schema.query, "Mutation": schema.mutation, "Live": schema.subscription}


def root_fields() -> dict[str, Any]:
    fields = {}
    for root_name, root in ROOTS.items():
        definition = root.__strawberry_definition__  # type: ignore[union-attr]
        for f in definition.fields:
            fields[f"{root_name}.{f.graphql_name or _camel(f.python_name)}"] = f
    return fields


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_every_root_field_has_a_rule_and_a_matrix_entry() -> None:
    fields = root_fields()
    without_rule = [name for name, f in fields.items() if not f.permission_classes]
    assert without_rule == [], "root fields without a permission class"
    assert sorted(set(fields) - set(CASES)) == [], "add these fields to tests/security/matrix.py"
    assert sorted(set(CASES) - set(fields)) == [], "matrix entries for fields that do not exist"


# Rate-limit budgets and WebSocket slots change with every call, by design; the audit log
# gains an entry for every mutation call, refused ones included (checked on its own below).
_LIMITER_TABLES = ("rate_limit_buckets", "websocket_connections", "audit_log")


async def audit_entries(services: Any, org: str, action: str) -> list[tuple[str, str, str]]:
    """(id, role, outcome with its codes) of the audit entries of ``action`` in ``org``."""
    rows = await services.db.fetch_all(
        "SELECT id, role, outcome, error_codes FROM audit_log "
        "WHERE organization_id = :org AND action = :action ORDER BY id",
        {"org": org, "action": action},
    )
    return [(r["id"], r["role"], f"{r['outcome']}:{','.join(r['error_codes'])}") for r in rows]


async def snapshot(services: Any, org: str) -> dict[str, str]:
    """A content hash of organization A's rows in every tenant table."""
    hashes = {}
    for table in metadata.sorted_tables:
        if "organization_id" not in table.c or table.name in _LIMITER_TABLES:
            continue
        value = await services.db.fetch_val(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
            f"FROM {table.name} t WHERE organization_id = :org",
            {"org": org},
        )
        hashes[table.name] = value
    return hashes


async def call(
    http: httpx.AsyncClient, services: Any, case: Case, world: World, bearer: str | None
) -> dict[str, Any]:
    variables = case.variables(world)
    if not case.subscription:
        return await GraphQLClient(http, bearer)(case.document, variables)
    principal, error = None, None
    if bearer:
        try:
            principal = decode_token(services.settings, bearer)
        except Exception as exc:  # noqa: BLE001 - any refusal is what we test
            error = exc
    context = Context(services, principal=principal, auth_error=error)  # type: ignore[arg-type]
    result = await schema.subscribe(case.document, variable_values=variables, context_value=context)
    if hasattr(result, "__aiter__"):
        iterator = result.__aiter__()
        try:
            first = asyncio.ensure_future(iterator.__anext__())
            deadline = time.monotonic() + 5
            while not first.done() and time.monotonic() < deadline:
                await asyncio.wait({first}, timeout=0.2)
                if not first.done() and case.trigger is not None:
                    await case.trigger(world, services)
            result = await asyncio.wait_for(first, max(0.0, deadline - time.monotonic()))
        finally:
            await iterator.aclose()
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [
            {"message": e.message, "extensions": e.extensions or {}} for e in result.errors
        ]
    return body


def leaked(body: dict[str, Any], secrets: list[str]) -> list[str]:
    text = json.dumps(body)
    return [s for s in secrets if s and s in text]


def assert_refused(body: dict[str, Any], code: str) -> None:
    assert error_codes(body) == [code], body


def payload_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data") or {}
    found: list[dict[str, Any]] = []
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("errors"), list):
            found += value["errors"]
    return found


@pytest.mark.parametrize("name", sorted(CASES))
async def test_only_the_right_callers_get_data(
    name: str,
    http: httpx.AsyncClient,
    app_services: Any,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    case = CASES[name]
    world = World(
        org=org,
        plan=await plan_factory(),
        owner=await customer_factory(),
        other=await customer_factory(),
    )
    if case.prepare is not None:
        owner_token = token(settings, org, "customer", sub=world.owner["id"])
        clients = {
            ADMIN: GraphQLClient(http, token(settings, org, ADMIN)),
            SERVICE: GraphQLClient(http, token(settings, org, SERVICE)),
            OWNER: GraphQLClient(http, owner_token),
        }
        await case.prepare(world, clients)
    if case.seed is not None:
        await case.seed(world, app_services)
    before = await snapshot(app_services, org)
    action = name.partition(".")[2]
    audited_before = {e[0] for e in await audit_entries(app_services, org, action)}
    expired = jwt.encode(
        {"sub": "x", "org": org, "role": "admin", "exp": int(time.time()) - 600},
        settings.jwt_secret,
        algorithm="HS256",
    )

    async def refused(bearer: str | None, code: str | None, secrets: list[str]) -> None:
        body = await call(http, app_services, case, world, bearer)
        if code is not None:
            assert_refused(body, code)
        assert leaked(body, secrets) == [], f"{name} leaked data: {body}"
        assert await snapshot(app_services, org) == before, f"{name} wrote data: {body}"

    if not case.public:
        await refused(None, "UNAUTHENTICATED", world.secrets())
        await refused(expired, "UNAUTHENTICATED", world.secrets())

    stranger = token(settings, new_org(), ADMIN)
    body = await call(http, app_services, case, world, stranger)
    assert leaked(body, world.secrets()) == [], f"{name} leaked to another organization: {body}"
    assert await snapshot(app_services, org) == before, f"{name} let another org write: {body}"

    tokens = {
        ADMIN: token(settings, org, ADMIN),
        SERVICE: token(settings, org, SERVICE),
        OWNER: token(settings, org, "customer", sub=world.owner["id"]),
    }
    for role, bearer in tokens.items():
        if role not in case.allowed and not case.public:
            await refused(bearer, "FORBIDDEN", world.secrets())
    other_customer = token(settings, org, "customer", sub=world.other["id"])
    if OWNER in case.allowed and not case.public:
        body = await call(http, app_services, case, world, other_customer)
        assert leaked(body, world.owner_secrets()) == [], f"{name} leaked to another customer"
        assert await snapshot(app_services, org) == before, f"{name} let another customer write"

    for role in (OWNER, SERVICE, ADMIN):
        if role in case.allowed or case.public:
            body = await call(http, app_services, case, world, tokens[role])
            assert "errors" not in body, (role, body)
            assert payload_errors(body) == [], (role, body)
            if case.expect is not None:
                assert case.expect(world) in json.dumps(body), (role, body)

    if name.startswith("Mutation."):
        # Every call by a signed-in caller of organization A left one entry: ok for the roles
        # allowed, refused (FORBIDDEN) for the others; nothing for the callers without a valid
        # token, and the other organization's admin is recorded in its own organization.
        audited = sorted(
            (role, outcome)
            for entry_id, role, outcome in await audit_entries(app_services, org, action)
            if entry_id not in audited_before
        )
        rest = list(audited)
        for role in (ADMIN, SERVICE, OWNER):
            expected = (role, "ok:" if role in case.allowed else "refused:FORBIDDEN")
            assert expected in rest, (name, expected, audited)
            rest.remove(expected)
        # The other customer's call, whatever it got (refused or not found, on its own behalf).
        assert [role for role, _ in rest] == ([OWNER] if OWNER in case.allowed else []), (
            name,
            audited,
        )
