"""Token verification, unit level and through the API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.auth import Role, decode_token, mint_token
from app.core.errors import Unauthenticated
from app.core.settings import Settings
from tests.support import GraphQLClient, error_codes, token

PLANS = "{ plans { totalCount } }"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    # Far ahead: the parameter lists below build their tokens at collection, long before a
    # test of a long run uses them.
    values: dict[str, Any] = {"sub": "u1", "org": "acme", "role": "admin", "exp": now + 86_400}
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
    data = await gql.data("{ serviceInfo { name capabilities } }")
    assert data["serviceInfo"]["name"] == "billing"
    capabilities = data["serviceInfo"]["capabilities"]
    assert {"plans", "payments", "invoices", "subscriptions", "statistics", "live"} <= set(
        capabilities
    )
    assert "test_clocks" in capabilities  # outside production
    assert "webhooks" not in capabilities  # no STRIPE_WEBHOOK_SECRET in the test settings


STAFF_INFO = "{ serviceInfo { name version environment stripeMode } }"


@pytest.mark.parametrize(
    ("role", "code"),
    [(None, "UNAUTHENTICATED"), ("customer", "FORBIDDEN"), ("bad", "UNAUTHENTICATED")],
)
async def test_release_details_are_for_staff_only(
    http: httpx.AsyncClient, settings: Settings, org: str, role: str | None, code: str
) -> None:
    bearer = None if role is None else "garbage" if role == "bad" else token(settings, org, role)
    body = await GraphQLClient(http, bearer)(STAFF_INFO)
    assert body["data"] == {
        "serviceInfo": {"name": "billing", "version": None, "environment": None, "stripeMode": None}
    }
    assert sorted((e["path"][-1], e["extensions"]["code"]) for e in body["errors"]) == [
        ("environment", code),
        ("stripeMode", code),
        ("version", code),
    ]


@pytest.mark.parametrize("role", ["admin", "service"])
async def test_staff_see_the_release_details(
    http: httpx.AsyncClient, settings: Settings, org: str, role: str
) -> None:
    from app import __version__

    data = await GraphQLClient(http, token(settings, org, role)).data(STAFF_INFO)
    assert data["serviceInfo"] == {
        "name": "billing",
        "version": __version__,
        "environment": "test",
        "stripeMode": "emulator",
    }


async def test_a_token_only_sees_its_own_organization(
    http: httpx.AsyncClient, settings: Settings, plan_factory: Any, org: str
) -> None:
    await plan_factory()
    mine = GraphQLClient(http, token(settings, org))
    theirs = GraphQLClient(http, token(settings, org + "x"))
    assert (await mine.data(PLANS))["plans"]["totalCount"] == 1
    assert (await theirs.data(PLANS))["plans"]["totalCount"] == 0


# -- odd claim shapes: every one is UNAUTHENTICATED, never an exception of another kind ------


def _signed_raw(payload_json: str, key: str) -> str:
    """An HS256 token over this exact JSON text (PyJWT would re-encode 1e20, NaN and the like)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(payload_json.encode("utf-8", "surrogatepass"))
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


_SOON = int(time.time()) + 600
_GOOD = f'"sub": "u1", "org": "acme", "role": "admin", "exp": {_SOON}'
_ID = '"sub": "u1", "org": "acme", "role": "admin"'
_EXP = "Token has an invalid 'exp' claim."
_IAT = "Token has an invalid 'iat' claim."

ODD_CLAIMS = [
    # exp: a NumericDate is a finite JSON number of seconds from 1970 to 9999
    pytest.param(f'{{{_ID}, "exp": 1e20}}', _EXP, id="exp-1e20"),
    pytest.param(f'{{{_ID}, "exp": {10**30}}}', _EXP, id="exp-huge"),
    pytest.param(f'{{{_ID}, "exp": 1{"0" * 400}}}', _EXP, id="exp-400"),
    pytest.param(f'{{{_ID}, "exp": Infinity}}', _EXP, id="exp-inf"),
    pytest.param(f'{{{_ID}, "exp": NaN}}', _EXP, id="exp-nan"),
    pytest.param(f'{{{_ID}, "exp": "{_SOON}"}}', _EXP, id="exp-str"),
    pytest.param(f'{{{_ID}, "exp": true}}', _EXP, id="exp-bool"),
    pytest.param(f'{{{_ID}, "exp": null}}', "Token lacks the 'exp' claim.", id="exp-null"),
    pytest.param(f'{{{_ID}, "exp": [{_SOON}]}}', _EXP, id="exp-list"),
    pytest.param(f'{{{_ID}, "exp": -1e20}}', _EXP, id="exp-neg"),
    # nbf and iat, when present, follow the same rule
    pytest.param(f'{{{_GOOD}, "nbf": 1e20}}', "Token has an invalid 'nbf' claim.", id="nbf-1e20"),
    pytest.param(f'{{{_GOOD}, "nbf": "x"}}', "Token has an invalid 'nbf' claim.", id="nbf-str"),
    pytest.param(f'{{{_GOOD}, "nbf": false}}', "Token has an invalid 'nbf' claim.", id="nbf-bool"),
    pytest.param(f'{{{_GOOD}, "iat": Infinity}}', _IAT, id="iat-inf"),
    pytest.param(f'{{{_GOOD}, "iat": -1e300}}', _IAT, id="iat-neg"),
    pytest.param(f'{{{_GOOD}, "iat": {{}}}}', _IAT, id="iat-obj"),
    pytest.param(f'{{{_GOOD}, "nbf": {_SOON}}}', "Token is not valid yet.", id="nbf-future"),
    pytest.param(f'{{{_GOOD}, "iat": {_SOON}}}', "Token is not valid yet.", id="iat-future"),
    # sub, org and role: strings of the right shape only
    pytest.param(
        f'{{"sub": 5, "org": "acme", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'sub' claim.",
        id="sub-int",
    ),
    pytest.param(
        f'{{"sub": "u\\u0000", "org": "acme", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'sub' claim.",
        id="sub-nul",
    ),
    pytest.param(
        f'{{"sub": "u\\ud800", "org": "acme", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'sub' claim.",
        id="sub-surrogate",
    ),
    pytest.param(
        f'{{"sub": "u\\n", "org": "acme", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'sub' claim.",
        id="sub-newline",
    ),
    pytest.param(
        f'{{"sub": "{"u" * 201}", "org": "acme", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'sub' claim.",
        id="sub-long",
    ),
    pytest.param(
        f'{{"sub": "", "org": "acme", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'sub' claim.",
        id="sub-empty",
    ),
    pytest.param(
        f'{{"sub": "u", "org": ["acme"], "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'org' claim.",
        id="org-list",
    ),
    pytest.param(
        f'{{"sub": "u", "org": "acme\\n", "role": "admin", "exp": {_SOON}}}',
        "Token has an invalid 'org' claim.",
        id="org-newline",
    ),
    pytest.param(
        f'{{"sub": "u", "org": "acme", "role": {{}}, "exp": {_SOON}}}',
        "Token has an invalid 'role' claim.",
        id="role-object",
    ),
    pytest.param(
        f'{{"sub": "u", "org": "acme", "role": ["admin"], "exp": {_SOON}}}',
        "Token has an invalid 'role' claim.",
        id="role-list",
    ),
    pytest.param("[1]", "Token is malformed.", id="payload-list"),
    pytest.param(
        '{"a": ' + "[" * 5000 + "]" * 5000 + "}", "Token is malformed.", id="payload-deep"
    ),
]


@pytest.mark.parametrize(("payload_json", "reason"), ODD_CLAIMS)
def test_odd_claim_shapes_are_unauthenticated(
    settings: Settings, payload_json: str, reason: str
) -> None:
    bad = _signed_raw(payload_json, settings.jwt_secret or "")
    with pytest.raises(Unauthenticated) as caught:
        decode_token(settings, bad)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("a" * 200_000, id="very-long"),
        pytest.param("x" * 8193, id="just-too-long"),
        pytest.param("é.é.é", id="non-ascii"),
        pytest.param("\ud800.\ud800.\ud800", id="surrogates"),
        pytest.param("a.b\x00.c", id="nul"),
        pytest.param("." * 5000, id="dots"),
    ],
)
def test_odd_token_strings_are_malformed(settings: Settings, bad: str) -> None:
    with pytest.raises(Unauthenticated, match=r"^Token is malformed\.$"):
        decode_token(settings, bad)


def test_a_float_exp_within_range_is_a_valid_numeric_date(settings: Settings) -> None:
    principal = decode_token(settings, _signed_raw(f'{{{_ID}, "exp": {_SOON}.5}}', JWT))
    assert principal.expires_at is not None
    assert int(principal.expires_at.timestamp()) == _SOON


JWT = "test-secret-" + "x" * 40  # tests/conftest.py's JWT_SECRET


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its rate limiter on: it keys its budgets on the token's subject."""
    from app.web.app import create_app
    from tests.conftest import running

    app = create_app(
        settings.with_overrides(
            rate_limit_points=10**9,
            rate_limit_restore_rate=10**6,
            rate_limit_anonymous_points=10**9,
            rate_limit_anonymous_restore_rate=10**6,
        )
    )
    async for client in running(app):
        yield client


@pytest.mark.parametrize(("payload_json", "reason"), ODD_CLAIMS)
async def test_odd_claims_through_the_api_are_unauthenticated(
    limited: httpx.AsyncClient, settings: Settings, payload_json: str, reason: str
) -> None:
    bad = _signed_raw(payload_json, settings.jwt_secret or "")
    body = await GraphQLClient(limited, bad)(PLANS)
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["message"] == reason
    pdf = await limited.get(
        "/invoices/inv_00000000000000000000000000.pdf", headers={"authorization": f"Bearer {bad}"}
    )
    assert (pdf.status_code, pdf.json()) == (401, {"error": reason, "code": "UNAUTHENTICATED"})
