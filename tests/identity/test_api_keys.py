"""Organization API keys through the API: made once, used, listed, rolled and revoked; verified
from the process's cache (no database read per request); uses written in batches."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.auth import AuthMethod, Principal, Role
from app.core.errors import DomainError, ErrorCode, Unauthenticated
from app.core.settings import Settings
from app.identity import ApiKeys
from db.connection import count_statements
from tests.support import GraphQLClient, error_codes, token

CREATE = """
mutation($input: ApiKeyCreateInput!) {
  apiKeyCreate(input: $input) {
    apiKey { id prefix name role status createdBy expiresAt lastUsedAt }
    key errors { field code message }
  }
}
"""
ROLL = """
mutation($input: ApiKeyRollInput!) {
  apiKeyRoll(input: $input) {
    apiKey { id prefix status expiresAt } key
    previous { id status expiresAt rolledTo }
    errors { field code message }
  }
}
"""
REVOKE = """
mutation($id: ID!) {
  apiKeyRevoke(input: {id: $id}) { apiKey { id status revokedAt } errors { code } }
}
"""
LIST = "query($all: Boolean) { apiKeys(includeRevoked: $all) { totalCount edges { node { id prefix status lastUsedAt } } } }"  # noqa: E501
WHO = "{ customers(first: 1) { totalCount } }"
KEY = re.compile(r"bk_test_[0-9A-Za-z]{44}")


async def make_key(admin: GraphQLClient, role: str = "SERVICE", **extra: Any) -> dict[str, Any]:
    made = (await admin.data(CREATE, {"input": {"name": "back end", "role": role, **extra}}))[
        "apiKeyCreate"
    ]
    assert made["errors"] == [], made
    assert made["key"] is not None
    return made


def refusal(body: dict[str, Any]) -> str:
    assert error_codes(body) == ["UNAUTHENTICATED"], body
    message: str = body["errors"][0]["message"]
    return message


async def test_a_key_is_shown_once_stored_as_its_hash_and_signs_requests_in(
    admin: GraphQLClient, gql: GraphQLClient, app_services: Any, org: str
) -> None:
    made = await make_key(admin)
    key, api_key = made["key"], made["apiKey"]
    assert KEY.fullmatch(key), key
    assert api_key["prefix"] == key[:20]
    assert api_key["role"] == "SERVICE"
    assert api_key["status"] == "ACTIVE"
    assert api_key["createdBy"] == "test-admin"
    row = await app_services.db.fetch_one(
        "SELECT * FROM api_keys WHERE organization_id = :org AND id = :id",
        {"org": org, "id": api_key["id"]},
    )
    assert row["secret_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key[20:] not in str(dict(row))  # the secret part is stored nowhere

    service = gql.as_(key)
    assert (await service.data(WHO))["customers"]["totalCount"] == 0
    # A SERVICE key may not manage keys (nor do what only admins do).
    body = await service(CREATE, {"input": {"name": "escalate", "role": "ADMIN"}})
    assert error_codes(body) == ["FORBIDDEN"], body
    body = await service(CREATE, {"input": {"name": "same", "role": "SERVICE"}})
    assert error_codes(body) == ["FORBIDDEN"], body
    listed = (await admin.data(LIST))["apiKeys"]
    assert [e["node"]["prefix"] for e in listed["edges"]] == [key[:20]]
    # The list, like every response, never holds the key.
    assert key not in str(listed)


async def test_wrong_malformed_and_unknown_keys_are_refused(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    key = (await make_key(admin))["key"]
    wrong = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    assert refusal(await gql.as_(wrong)(WHO)) == "API key is not valid."
    unknown = "bk_test_" + "Z" * 44
    assert refusal(await gql.as_(unknown)(WHO)) == "API key is not valid."
    for malformed in (key[:-1], key + "x", key[:30] + "-" + key[31:], "bk_test_short"):
        assert refusal(await gql.as_(malformed)(WHO)) == "API key is malformed."


async def test_verifying_a_key_reads_the_database_once_per_cache_lifetime(
    admin: GraphQLClient, gql: GraphQLClient, app_services: Any
) -> None:
    keys: ApiKeys = app_services.identity.api_keys
    key = (await make_key(admin))["key"]
    service = gql.as_(key)
    await service.data(WHO)
    lookups = keys.lookups
    with count_statements() as log:
        for _ in range(20):
            await service.data("{ serviceInfo { name version } }")
    assert keys.lookups == lookups
    assert [s for s in log.statements if "api_keys" in s] == []
    # Uses are remembered and written in one batch, not per request.
    assert await keys.flush() >= 1
    listed = (await admin.data(LIST))["apiKeys"]["edges"][0]["node"]
    assert listed["lastUsedAt"] is not None


async def test_an_admin_key_may_make_keys_and_revoking_one_stops_it_at_once(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    admin_key = (await make_key(admin, role="ADMIN"))["key"]
    by_key = gql.as_(admin_key)
    made = await make_key(by_key, role="SERVICE")
    assert made["apiKey"]["createdBy"] == admin_key[:20]
    service = gql.as_(made["key"])
    await service.data(WHO)
    revoked = (await by_key.data(REVOKE, {"id": made["apiKey"]["id"]}))["apiKeyRevoke"]
    assert revoked["errors"] == []
    assert revoked["apiKey"]["status"] == "REVOKED"
    # Same process: at once (other processes: tests/identity/test_key_revocation_processes.py).
    assert refusal(await service(WHO)) == "API key has been revoked."
    again = (await by_key.data(REVOKE, {"id": made["apiKey"]["id"]}))["apiKeyRevoke"]
    assert again["apiKey"]["revokedAt"] == revoked["apiKey"]["revokedAt"]
    assert (await admin.data(LIST))["apiKeys"]["totalCount"] == 1  # revoked ones hidden
    assert (await admin.data(LIST, {"all": True}))["apiKeys"]["totalCount"] == 2
    missing = (await admin.data(REVOKE, {"id": "key_0000000000000000000000000"}))["apiKeyRevoke"]
    assert missing["errors"] == [{"code": "NOT_FOUND"}]


async def test_another_organizations_admin_cannot_touch_a_key(
    admin: GraphQLClient, gql: GraphQLClient, settings: Settings
) -> None:
    made = await make_key(admin)
    stranger = gql.as_(token(settings, "stranger-org", "admin"))
    body = (await stranger.data(REVOKE, {"id": made["apiKey"]["id"]}))["apiKeyRevoke"]
    assert body["errors"] == [{"code": "NOT_FOUND"}]
    rolled = (await stranger.data(ROLL, {"input": {"id": made["apiKey"]["id"]}}))["apiKeyRoll"]
    assert [e["code"] for e in rolled["errors"]] == ["NOT_FOUND"]
    assert (await gql.as_(made["key"]).data(WHO))["customers"]["totalCount"] == 0


async def test_rolling_keeps_the_old_key_for_the_grace_period(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    made = await make_key(admin)
    old_id, old_key = made["apiKey"]["id"], made["key"]
    before = datetime.now(UTC)
    rolled = (await admin.data(ROLL, {"input": {"id": old_id, "gracePeriodSeconds": 600}}))[
        "apiKeyRoll"
    ]
    assert rolled["errors"] == []
    new_key = rolled["key"]
    assert KEY.fullmatch(new_key)
    assert new_key != old_key
    assert rolled["previous"]["rolledTo"] == rolled["apiKey"]["id"]
    ends = datetime.fromisoformat(rolled["previous"]["expiresAt"])
    assert before + timedelta(seconds=599) <= ends <= datetime.now(UTC) + timedelta(seconds=601)
    await gql.as_(new_key).data(WHO)
    await gql.as_(old_key).data(WHO)  # still, during the grace period
    again = (await admin.data(ROLL, {"input": {"id": old_id}}))["apiKeyRoll"]
    assert [e["code"] for e in again["errors"]] == ["INVALID_STATE"]
    # Without a grace period the old key stops at once.
    now = (await admin.data(ROLL, {"input": {"id": rolled["apiKey"]["id"]}}))["apiKeyRoll"]
    assert now["errors"] == []
    assert now["previous"]["status"] == "EXPIRED"
    assert refusal(await gql.as_(new_key)(WHO)) == "API key has expired."
    await gql.as_(now["key"]).data(WHO)
    too_long = {"id": now["apiKey"]["id"], "gracePeriodSeconds": 8 * 86_400}
    refused = (await admin.data(ROLL, {"input": too_long}))["apiKeyRoll"]
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [
        (["gracePeriodSeconds"], "INVALID")
    ]


async def test_a_key_stops_at_its_expiry_and_inputs_are_checked(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    made = await make_key(admin, expiresAt=soon)
    await gql.as_(made["key"]).data(WHO)
    await asyncio.sleep(2.2)
    assert refusal(await gql.as_(made["key"])(WHO)) == "API key has expired."
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    cases = [
        ({"name": "x", "role": "SERVICE", "expiresAt": past}, ["expiresAt"]),
        ({"name": " ", "role": "SERVICE"}, ["name"]),
        ({"name": "n" * 101, "role": "SERVICE"}, ["name"]),
    ]
    for given, field in cases:
        body = (await admin.data(CREATE, {"input": given}))["apiKeyCreate"]
        assert body["key"] is None, body
        assert [e["field"] for e in body["errors"]] == [field], body


async def test_no_key_has_more_power_than_its_maker(app_services: Any, org: str) -> None:
    keys: ApiKeys = app_services.identity.api_keys
    service = Principal(
        "bk_test_xxxxxxxxxxxx", org, Role.SERVICE, method=AuthMethod.API_KEY, key_id="key_x"
    )
    for role in (Role.ADMIN, Role.SERVICE):
        with pytest.raises(DomainError) as refused:
            await keys.create(service, name="x", role=role, expires_at=None)
        assert refused.value.code is ErrorCode.NOT_PERMITTED
    customer = Principal("cus_1", org, Role.CUSTOMER)
    with pytest.raises(DomainError):
        await keys.create(customer, name="x", role=Role.SERVICE, expires_at=None)
    admin = Principal("boss", org, Role.ADMIN)
    with pytest.raises(DomainError) as refused:
        await keys.create(admin, name="x", role=Role.CUSTOMER, expires_at=None)
    assert refused.value.code is ErrorCode.INVALID
    assert (
        await app_services.db.fetch_val(
            "SELECT count(*) FROM api_keys WHERE organization_id = :org", {"org": org}
        )
        == 0
    )


async def test_a_key_of_the_other_mode_is_refused(app_services: Any, org: str) -> None:
    test_keys: ApiKeys = app_services.identity.api_keys
    assert test_keys.mode == "test"  # the emulator is not live Stripe
    _, key = await test_keys.create(
        Principal("boss", org, Role.ADMIN), name="x", role=Role.SERVICE, expires_at=None
    )
    live = ApiKeys(app_services.db, app_services.events, mode="live")
    with pytest.raises(Unauthenticated, match="this deployment takes bk_live_ keys"):
        await live.verify(key)
    off = ApiKeys(app_services.db, app_services.events, mode="test", enabled=False)
    with pytest.raises(Unauthenticated, match="API_KEYS=off"):
        await off.verify(key)


async def test_pdf_downloads_take_keys_too(admin: GraphQLClient, http: httpx.AsyncClient) -> None:
    key = (await make_key(admin))["key"]
    response = await http.get(
        "/invoices/inv_0000000000000000000000000.pdf", headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 404  # signed in; the invoice does not exist
    refused = await http.get(
        "/invoices/inv_0000000000000000000000000.pdf",
        headers={"authorization": f"Bearer {key[:-1]}x"},
    )
    assert refused.status_code == 401


async def test_the_cache_is_a_bounded_backstop(admin: GraphQLClient, app_services: Any) -> None:
    """A change this process never hears of is seen once the cache's lifetime has passed."""
    keys = ApiKeys(app_services.db, app_services.events, mode="test", cache_seconds=0.5)
    made = await make_key(admin)
    await keys.verify(made["key"])
    await app_services.db.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = :id", {"id": made["apiKey"]["id"]}
    )
    await keys.verify(made["key"])  # cached: this instance listens to nothing
    deadline = time.monotonic() + 5
    refused: Unauthenticated | None = None
    while refused is None and time.monotonic() < deadline:
        try:
            await keys.verify(made["key"])
        except Unauthenticated as exc:
            refused = exc
        await asyncio.sleep(0.1)
    assert refused is not None, "the cached key was never read again"
    assert str(refused) == "API key has been revoked."


async def test_billing_api_key_create_prints_a_working_key_once(
    settings: Settings, tmp_path: Any, gql: GraphQLClient
) -> None:
    """The first admin key of an organization, from the command line."""
    env = {
        **os.environ,
        "BILLING_ENV": "test",
        "BILLING_HOME": str(tmp_path),
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "JWT_SECRET": settings.jwt_secret or "",
    }

    def billing(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    org = f"cli{uuid.uuid4().hex[:10]}"
    args = ("api-key", "create", "--role", "admin", "--name", "ops", "--org")
    done = await asyncio.to_thread(billing, *args, org)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert KEY.fullmatch(key), done.stdout
    assert key not in done.stderr
    assert f"made admin key {key[:20]}" in done.stderr
    listed = await gql.as_(key).data("{ apiKeys { edges { node { prefix createdBy role } } } }")
    assert listed["apiKeys"]["edges"] == [
        {"node": {"prefix": key[:20], "createdBy": "billing-cli", "role": "ADMIN"}}
    ]
    refused = await asyncio.to_thread(billing, *args, "Not An Org")
    assert refused.returncode == 2
    assert "--org must be" in refused.stderr
