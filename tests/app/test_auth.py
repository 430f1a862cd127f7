"""Token verification, unit level and through the API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth import Role, decode_token, mint_token
from app.errors import Unauthenticated
from app.settings import Settings
from tests.support import GraphQLClient, error_codes, token

PLANS = "{ plans { totalCount } }"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": "u1", "org": "acme", "role": "admin", "exp": now + 60}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def test_minted_token_round_trips(settings: Settings) -> None:
    principal = decode_token(
        settings, mint_token(settings, org="acme", role=Role.CUSTOMER, subject="cus_1")
    )
    assert (principal.org, principal.role, principal.customer_id) == (
        "acme",
        Role.CUSTOMER,
        "cus_1",
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (claims(exp=int(time.time()) - 60), "Token has expired."),
        (claims(org=None), "Token lacks the 'org' claim."),
        (claims(exp=None), "Token lacks the 'exp' claim."),
        (claims(role="root"), "Token has an invalid 'role' claim."),
        (claims(org="Not An Org!"), "Token has an invalid 'org' claim."),
    ],
)
def test_bad_claims_are_rejected(settings: Settings, payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        decode_token(settings, jwt.encode(payload, settings.jwt_secret or "", algorithm="HS256"))


def test_wrong_key_and_alg_none_are_rejected(settings: Settings) -> None:
    with pytest.raises(Unauthenticated, match="signature is invalid"):
        decode_token(
            settings, jwt.encode(claims(), "another-secret-" + "y" * 40, algorithm="HS256")
        )
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(Unauthenticated, match="malformed"):
        decode_token(settings, unsigned)
    with pytest.raises(Unauthenticated, match="malformed"):
        decode_token(settings, "not.a.token")


def test_rs256_with_a_public_key(settings: Settings) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs = settings.with_overrides(jwt_algorithm="RS256", jwt_public_key=public_pem, jwt_secret=None)
    good = jwt.encode(claims(), private, algorithm="RS256")
    assert decode_token(rs, good).org == "acme"
    # Key confusion: an HS256 token "signed" with the public key must not pass.
    with pytest.raises(Unauthenticated):
        decode_token(rs, _hs256_by_hand(claims(), public_pem.encode()))


def _hs256_by_hand(payload: dict[str, Any], key: bytes) -> str:
    """PyJWT refuses to sign with a PEM key as an HMAC secret; an attacker would not."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


async def test_api_rejects_expired_wrong_key_and_malformed_tokens(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    expired = jwt.encode(claims(exp=int(time.time()) - 120), settings.jwt_secret, algorithm="HS256")
    wrong_key = jwt.encode(claims(), "z" * 48, algorithm="HS256")
    for bad, message in [
        (expired, "Token has expired."),
        (wrong_key, "Token signature is invalid."),
        ("garbage", "Token is malformed."),
    ]:
        body = await GraphQLClient(http, bad)(PLANS)
        assert body["data"] is None
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert body["errors"][0]["message"] == message


async def test_public_fields_need_no_token(gql: GraphQLClient) -> None:
    data = await gql.data("{ serviceInfo { name version stripeMode capabilities environment } }")
    assert data["serviceInfo"]["name"] == "billing"
    assert data["serviceInfo"]["stripeMode"] == "emulator"
    capabilities = data["serviceInfo"]["capabilities"]
    assert {"plans", "payments", "invoices", "subscriptions", "statistics", "live"} <= set(
        capabilities
    )
    assert "test_clocks" in capabilities  # outside production
    assert "webhooks" not in capabilities  # no STRIPE_WEBHOOK_SECRET in the test settings


async def test_a_token_only_sees_its_own_organization(
    http: httpx.AsyncClient, settings: Settings, plan_factory: Any, org: str
) -> None:
    await plan_factory()
    mine = GraphQLClient(http, token(settings, org))
    theirs = GraphQLClient(http, token(settings, org + "x"))
    assert (await mine.data(PLANS))["plans"]["totalCount"] == 1
    assert (await theirs.data(PLANS))["plans"]["totalCount"] == 0
