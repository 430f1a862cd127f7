"""OpenID Connect tokens from a local issuer on loopback (tests/identity/oidc_issuer.py): the
claims that are checked, the issuer's keys fetched (discovery or a configured URL), cached,
followed through a rotation and kept through an outage; and end to end through the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest

from app.core.auth import AuthMethod, Role
from app.core.errors import Unauthenticated
from app.core.settings import OidcIssuer, Settings
from app.identity import OidcVerifier
from app.web.app import create_app
from tests.conftest import running
from tests.identity.oidc_issuer import Issuer, SigningKey, local_issuer
from tests.support import GraphQLClient, error_codes

_RSA = SigningKey.make("RS256")
_EC = SigningKey.make("ES256")


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with local_issuer(_RSA, _EC) as made:
        yield made


def config(issuer: Issuer, **changes: Any) -> OidcIssuer:
    base: dict[str, Any] = {"issuer": issuer.url, "audience": "billing-api", "org": "acme"}
    return OidcIssuer(**{**base, **changes})


CUSTOMER_ID = "cus_01jd0000000000000000000000"


async def _no_customers(org: str, reference: str) -> str | None:
    """One customer: the one whose externalRef is ``user-1`` (the tokens' default sub)."""
    return CUSTOMER_ID if reference == "user-1" else None


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[OidcVerifier]:
    made = OidcVerifier(
        (config(issuer),),
        resolve_customer=_no_customers,
        cache_seconds=600,
        max_stale_seconds=600,
        min_refetch_seconds=30,
    )
    yield made
    await made.close()


async def refused(verifier: OidcVerifier, token: str, issuer: Issuer) -> str:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(token, issuer.url)
    return str(info.value)


async def test_valid_tokens_of_either_algorithm_are_accepted(
    verifier: OidcVerifier, issuer: Issuer
) -> None:
    for key in (_RSA, _EC):
        principal = await verifier.verify(issuer.token(key, role="admin", sub="alice"), issuer.url)
        assert principal.org == "acme"
        assert principal.role is Role.ADMIN
        assert principal.subject == "alice"
        assert principal.method is AuthMethod.OIDC
        assert principal.expires_at is not None
    # The keys were found by discovery and fetched once for both tokens.
    assert issuer.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}
    assert verifier.fetches == 1


async def test_claims_are_checked(verifier: OidcVerifier, issuer: Issuer) -> None:
    now = int(time.time())
    other = "http://127.0.0.1:1"
    cases = {
        "Token has an unexpected issuer.": issuer.token(role="admin", iss=other),
        "Token is not meant for this API (audience).": issuer.token(aud="another-app"),
        "Token has expired.": issuer.token(exp=now - 60),
        "Token is not valid yet.": issuer.token(nbf=now + 60),
        "Token lacks the 'exp' claim.": issuer.token(exp=None),
        "Token lacks the 'sub' claim.": issuer.token(sub=None),
    }
    for message, token in cases.items():
        assert await refused(verifier, token, issuer) == message
    # A few seconds of clock skew are forgiven (LEEWAY_SECONDS).
    await verifier.verify(issuer.token(role="admin", exp=now - 3), issuer.url)
    await verifier.verify(issuer.token(role="admin", nbf=now + 3), issuer.url)


async def test_keys_and_algorithms_the_issuer_does_not_publish_are_refused(
    verifier: OidcVerifier, issuer: Issuer
) -> None:
    stranger = SigningKey.make("RS256")
    message = await refused(verifier, issuer.token(stranger), issuer)
    assert message == "Token is signed with a key its issuer does not publish."
    # The same kid as a published key, but another key's signature.
    impostor = SigningKey(_RSA.kid, "RS256", stranger.private)
    assert await refused(verifier, issuer.token(impostor), issuer) == "Token signature is invalid."
    # HS256 with the public key as the secret (key confusion), and alg none, are refused.
    claims = {"iss": issuer.url, "sub": "x", "aud": "billing-api", "exp": int(time.time()) + 60}
    hs256 = jwt.encode(
        claims, "public-key-bytes-" * 4, algorithm="HS256", headers={"kid": _RSA.kid}
    )
    assert "must be signed with RS256 or ES256" in await refused(verifier, hs256, issuer)
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert "must be signed with RS256 or ES256" in await refused(verifier, unsigned, issuer)
    # A token that says ES256 over an RSA key.
    mixed = issuer.token(_EC, headers={"kid": _RSA.kid})
    assert await refused(verifier, mixed, issuer) == "Token's algorithm does not match its key."


async def test_an_unknown_kid_refetches_once_and_rotation_is_followed(
    verifier: OidcVerifier, issuer: Issuer
) -> None:
    customer = await verifier.verify(issuer.token(), issuer.url)
    assert (customer.role, customer.subject, customer.actor) == (
        Role.CUSTOMER,
        CUSTOMER_ID,
        "user-1",
    )
    assert verifier.fetches == 1
    rotated = SigningKey.make("RS256")
    issuer.keys = [rotated, _EC]  # the issuer rotates: the old RSA key is gone
    principal = await verifier.verify(issuer.token(rotated, role="service"), issuer.url)
    assert principal.role is Role.SERVICE
    assert verifier.fetches == 2
    # Unknown kids do not make the issuer hammered: no other fetch within min_refetch_seconds.
    for _ in range(5):
        await refused(verifier, issuer.token(SigningKey.make("ES256")), issuer)
    assert verifier.fetches == 2
    # The rotated-out key is no longer trusted.
    assert "does not publish" in await refused(verifier, issuer.token(_RSA), issuer)


async def test_concurrent_first_requests_share_one_fetch(issuer: Issuer) -> None:
    verifier = OidcVerifier((config(issuer),), resolve_customer=_no_customers)
    try:
        tokens = [issuer.token(key, role="admin") for key in (_RSA, _EC) * 10]
        await asyncio.gather(*(verifier.verify(t, issuer.url) for t in tokens))
        assert verifier.fetches == 1
    finally:
        await verifier.close()


async def test_an_outage_of_the_issuer_is_tolerated_within_the_cache_lifetime(
    issuer: Issuer,
) -> None:
    verifier = OidcVerifier(
        (config(issuer, jwks_url=f"{issuer.url}/jwks"),),
        resolve_customer=_no_customers,
        cache_seconds=0.5,
        max_stale_seconds=1.0,
        min_refetch_seconds=0.1,
    )
    try:
        await verifier.verify(issuer.token(), issuer.url)
        assert "/.well-known/openid-configuration" not in issuer.hits  # a configured URL
        issuer.down = True
        # Fresh keys: no fetch at all.
        await verifier.verify(issuer.token(_EC), issuer.url)
        assert issuer.hits["/jwks"] == 1
        # Past the cache lifetime the keys held keep serving while refreshes fail.
        await asyncio.sleep(0.7)
        await verifier.verify(issuer.token(), issuer.url)
        await asyncio.sleep(0.2)
        assert issuer.hits["/jwks"] >= 2  # a refresh was tried (in the background)
        assert verifier.fetches == 1
        # Past the stale allowance, tokens are refused until the issuer answers again.
        await asyncio.sleep(1.0)
        message = await refused(verifier, issuer.token(), issuer)
        assert message == "The token's issuer cannot be reached to check its keys."
        issuer.down = False
        await asyncio.sleep(0.15)
        await verifier.verify(issuer.token(), issuer.url)
        assert verifier.fetches == 2
    finally:
        await verifier.close()


async def test_claims_map_to_the_organization_and_role_by_configuration(issuer: Issuer) -> None:
    keycloak = config(
        issuer,
        org=None,
        org_claim="tenant",
        role_claim="realm_access.roles",
        roles=(("billing-admin", "admin"), ("billing-backend", "service")),
        default_role=None,
    )
    verifier = OidcVerifier((keycloak,), resolve_customer=_no_customers)
    try:
        roles = {"roles": ["offline_access", "billing-backend", "billing-admin"]}
        token = issuer.token(tenant="globex", realm_access=roles)
        principal = await verifier.verify(token, issuer.url)
        assert (principal.org, principal.role) == ("globex", Role.ADMIN)  # the strongest wins
        no_role = issuer.token(tenant="globex", realm_access={"roles": ["offline_access"]})
        assert await refused(verifier, no_role, issuer) == "Token has no role this API knows."
        bad_org = issuer.token(tenant="Globex Inc", realm_access=roles)
        message = await refused(verifier, bad_org, issuer)
        assert message == "Token does not name a valid organization."
        # A role claim's value that is not mapped ("admin" itself here) gives nothing.
        assert "no role" in await refused(verifier, issuer.token(tenant="g", role="admin"), issuer)
    finally:
        await verifier.close()


# -- through the API ------------------------------------------------------------------------


@pytest.fixture
async def oidc_api(
    settings: Settings, issuer: Issuer
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    org = f"oidc{int(time.time() * 1000) % 10**9}"
    configured = settings.with_overrides(
        oidc_issuers=(config(issuer, org=org, customer_claim="sub"),)
    )
    async for http in running(create_app(configured)):
        yield http, org


async def test_oidc_tokens_sign_in_admins_and_customers_through_the_api(
    oidc_api: tuple[httpx.AsyncClient, str], issuer: Issuer
) -> None:
    http, _ = oidc_api
    admin = GraphQLClient(http, issuer.token(role="admin", sub="auth0|staff-1"))
    created = await admin.data(
        "mutation($input: CustomerCreateInput!) { customerCreate(input: $input) "
        "{ customer { id } errors { code } } }",
        {"input": {"email": "oidc@example.com", "externalRef": "auth0|user-42"}},
    )
    customer_id = created["customerCreate"]["customer"]["id"]
    # The audit log names the IdP's subject and how it signed in.
    log = await admin.data(
        '{ auditLog(action: "customerCreate") { edges { node { actor actorType role '
        "targetIds outcome } } } }"
    )
    assert log["auditLog"]["edges"] == [
        {
            "node": {
                "actor": "auth0|staff-1",
                "actorType": "OIDC",
                "role": "ADMIN",
                "targetIds": [customer_id],
                "outcome": "OK",
            }
        }
    ]
    # A token without a role is a customer: the one whose externalRef is its sub.
    customer = GraphQLClient(http, issuer.token(sub="auth0|user-42"))
    own = await customer.data("query($id: ID!) { customer(id: $id) { id } }", {"id": customer_id})
    assert own["customer"]["id"] == customer_id
    body = await customer("{ auditLog { totalCount } }")
    assert error_codes(body) == ["FORBIDDEN"]
    stranger = GraphQLClient(http, issuer.token(sub="auth0|nobody"))
    body = await stranger("{ customers { totalCount } }")
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert "externalRef" in body["errors"][0]["message"]
    # Expired, wrong-audience and other issuers' tokens are refused over HTTP too (a token of an
    # issuer not configured is checked as one of the service's own tokens, and fails there).
    for bad in (
        issuer.token(role="admin", exp=int(time.time()) - 60),
        issuer.token(aud="x"),
        issuer.token(role="admin", iss="https://elsewhere.example.com"),
    ):
        assert error_codes(await GraphQLClient(http, bad)("{ customers { totalCount } }")) == [
            "UNAUTHENTICATED"
        ]
