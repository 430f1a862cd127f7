"""Which verifier a credential goes to, and how long a verified JWT is remembered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.core.auth import AuthMethod, Role
from app.core.errors import Unauthenticated
from app.core.settings import Settings
from app.identity import Authenticator, OidcVerifier
from tests.support import token


async def test_a_verified_token_is_remembered_for_a_bounded_time(
    settings: Settings, app_services: Any
) -> None:
    async def nobody(org: str, reference: str) -> str | None:
        return None

    auth = Authenticator(
        settings,
        app_services.identity.api_keys,
        OidcVerifier((), resolve_customer=nobody),
        remember_seconds=0.3,
    )
    signed = token(settings, "acme", "admin")
    principal = await auth.authenticate(signed)
    assert (principal.org, principal.role, principal.method) == (
        "acme",
        Role.ADMIN,
        AuthMethod.TOKEN,
    )
    # While remembered the signature is not checked again: even a secret changed since (which
    # takes a restart in real life) is noticed only once the memory lapses.
    auth._settings = settings.with_overrides(jwt_secret="another-secret-" + "y" * 40)
    assert await auth.authenticate(signed) is principal
    await asyncio.sleep(0.35)
    with pytest.raises(Unauthenticated, match=r"Token signature is invalid\."):
        await auth.authenticate(signed)
    # A refused token is never remembered, and API keys are not remembered here at all.
    with pytest.raises(Unauthenticated):
        await auth.authenticate(signed)
    with pytest.raises(Unauthenticated, match=r"API key is not valid\."):
        await auth.authenticate("bk_test_" + "Q" * 44)
