"""Organization API keys and the audit log (docs/security.md, "API keys", "Audit log")."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import strawberry

from app.core.auth import AuthMethod, Role
from app.identity import MAX_GRACE_SECONDS, Outcome
from app.identity import ApiKey as DomainApiKey
from app.identity import AuditEntry as DomainAuditEntry
from resolvers import identity as resolve
from schema.base import INPUT, Info
from schema.errors import UserError, attempt
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    ORDER_BY,
    Connection,
    ListOrder,
    newest_first,
    to_connection,
    window,
)
from schema.permissions import AdminOnly

__all__ = ["IdentityMutations", "IdentityQueries"]


@strawberry.enum(description="What an API key may do.")
class ApiKeyRole(enum.Enum):
    ADMIN = strawberry.enum_value(
        "admin", description="Everything an admin token may do, API keys included."
    )
    SERVICE = strawberry.enum_value(
        "service",
        description="What a back end needs (customers, payments, subscriptions, invoices); "
        "not the catalog, statistics, approvals, organization settings or API keys.",
    )


@strawberry.enum(description="Whether an API key works.")
class ApiKeyStatus(enum.Enum):
    ACTIVE = strawberry.enum_value("active", description="It signs requests in.")
    EXPIRED = strawberry.enum_value(
        "expired", description="Past `expiresAt` (or a roll's grace period): refused."
    )
    REVOKED = strawberry.enum_value("revoked", description="Revoked: refused everywhere.")


@strawberry.enum(description="How a caller signed in.")
class ActorType(enum.Enum):
    TOKEN = strawberry.enum_value(
        AuthMethod.TOKEN.value,
        description="A JWT signed with the service's JWT_SECRET or JWT_PUBLIC_KEY "
        "(`billing token`); `actor` is its `sub`.",
    )
    API_KEY = strawberry.enum_value(
        AuthMethod.API_KEY.value, description="An API key; `actor` is its prefix."
    )
    OIDC = strawberry.enum_value(
        AuthMethod.OIDC.value,
        description="A token of a configured OpenID Connect issuer; `actor` is its `sub`.",
    )


@strawberry.enum(description="The role a caller had.")
class CallerRole(enum.Enum):
    ADMIN = strawberry.enum_value(Role.ADMIN.value, description="Staff.")
    SERVICE = strawberry.enum_value(Role.SERVICE.value, description="A back end.")
    CUSTOMER = strawberry.enum_value(Role.CUSTOMER.value, description="A customer.")


@strawberry.enum(description="How a mutation call ended.")
class AuditOutcome(enum.Enum):
    OK = strawberry.enum_value(Outcome.OK.value, description="It did what was asked.")
    ERROR = strawberry.enum_value(
        Outcome.ERROR.value,
        description="Payload errors (their codes in `errorCodes`); nothing was changed.",
    )
    REFUSED = strawberry.enum_value(
        Outcome.REFUSED.value,
        description="Refused before it ran, e.g. `FORBIDDEN` for the caller's role "
        "(the code in `errorCodes`).",
    )
    FAILED = strawberry.enum_value(
        Outcome.FAILED.value, description="An unexpected error (`INTERNAL`)."
    )


@strawberry.type(
    description="An organization API key for a back end. The key itself is shown once, by "
    "`apiKeyCreate` or `apiKeyRoll`; only its SHA-256 is stored."
)
class ApiKey(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `key_…`.")

    is_type_of = serves(DomainApiKey)
    prefix: str = strawberry.field(
        description="The key's first 20 characters (`bk_live_…` / `bk_test_…`), to recognize "
        "it; the audit log names keys by it."
    )
    name: str = strawberry.field(description="What it is for (1-100 characters).")
    created_by: str = strawberry.field(
        description="Who made it: a token's subject or an API key's prefix."
    )
    created_at: datetime = strawberry.field(description="When it was made (UTC).")
    expires_at: datetime | None = strawberry.field(
        description="When it stops working by itself (UTC); null: never."
    )
    revoked_at: datetime | None = strawberry.field(description="When it was revoked, if so.")
    last_used_at: datetime | None = strawberry.field(
        description="The last request it signed in, to within about a minute (uses are "
        "written in batches); null if never used."
    )
    rolled_to: strawberry.ID | None = strawberry.field(
        description="The key that replaced it (`apiKeyRoll`), if any."
    )

    @strawberry.field(description="ADMIN or SERVICE.")
    def role(self, root: strawberry.Parent[DomainApiKey]) -> ApiKeyRole:
        return ApiKeyRole(root.role.value)

    @strawberry.field(description="Whether it works now.")
    def status(self, root: strawberry.Parent[DomainApiKey]) -> ApiKeyStatus:
        return ApiKeyStatus(root.status().value)


@strawberry.type(description="One mutation call: who made it, on what, and how it ended.")
class AuditEntry(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `aud_…` (sorts by time).")

    is_type_of = serves(DomainAuditEntry)
    occurred_at: datetime = strawberry.field(description="When the call ended (UTC).")
    actor: str = strawberry.field(
        description="Who: a token's `sub`, an OIDC token's `sub` or an API key's prefix."
    )
    action: str = strawberry.field(description="The mutation, e.g. `refundApprove`.")
    target_ids: list[strawberry.ID] = strawberry.field(
        description="The ids the call named in its input or returned (at most 20)."
    )
    error_codes: list[str] = strawberry.field(
        description="The payload errors' codes, or the refusal's (`FORBIDDEN`), if any."
    )
    request_id: str | None = strawberry.field(
        description="The HTTP request's X-Request-ID; null for a call over WebSocket."
    )

    @strawberry.field(description="How the caller signed in.")
    def actor_type(self, root: strawberry.Parent[DomainAuditEntry]) -> ActorType:
        return ActorType(root.actor_type.value)

    @strawberry.field(description="The caller's role.")
    def role(self, root: strawberry.Parent[DomainAuditEntry]) -> CallerRole:
        return CallerRole(root.role.value)

    @strawberry.field(description="How the call ended.")
    def outcome(self, root: strawberry.Parent[DomainAuditEntry]) -> AuditOutcome:
        return AuditOutcome(root.outcome.value)


@strawberry.input(description="A new API key.")
class ApiKeyCreateInput:
    name: str = strawberry.field(description="What it is for, 1-100 characters.")
    role: ApiKeyRole = strawberry.field(
        description="ADMIN or SERVICE; never more than the caller's own role."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When it stops working by itself (future); null: never."
    )


@strawberry.input(description="The API key to revoke.")
class ApiKeyRevokeInput:
    id: strawberry.ID = strawberry.field(description="`key_…`")


@strawberry.input(description="The API key to replace.")
class ApiKeyRollInput:
    id: strawberry.ID = strawberry.field(description="`key_…`, an active key not rolled yet.")
    grace_period_seconds: int = strawberry.field(
        default=0,
        description=f"How long the old key keeps working, 0-{MAX_GRACE_SECONDS} seconds "
        "(7 days; default 0: it stops at once). Never past its own `expiresAt`.",
    )


@strawberry.type(description="Result of `apiKeyCreate` and `apiKeyRoll`.")
class ApiKeySecretPayload:
    api_key: DomainApiKey | None = strawberry.field(
        graphql_type=ApiKey | None, description="The new key; null on errors."
    )
    key: str | None = strawberry.field(
        description="The key itself, to send as `Authorization: Bearer <key>`. Shown only "
        "here, once: store it in your secret manager."
    )
    previous: DomainApiKey | None = strawberry.field(
        default=None,
        graphql_type=ApiKey | None,
        description="`apiKeyRoll`: the old key, with its new `expiresAt`.",
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type(description="Result of `apiKeyRevoke`.")
class ApiKeyPayload:
    api_key: DomainApiKey | None = strawberry.field(
        graphql_type=ApiKey | None, description="The key; null on errors."
    )
    errors: list[UserError] = strawberry.field(description="Why nothing was changed, if so.")


@strawberry.type
class IdentityQueries:
    @strawberry.field(
        description="The organization's API keys (never the keys themselves). Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Connection[ApiKey],
    )
    async def api_keys(
        self,
        info: Info,
        include_revoked: Annotated[
            bool, strawberry.argument(description="Also list revoked keys (default false).")
        ] = False,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        order_by: Annotated[ListOrder, strawberry.argument(description=ORDER_BY)] = (
            ListOrder.OLDEST_FIRST
        ),
    ) -> Connection[DomainApiKey]:
        page = window(first, after, last, before)
        nodes, has_next, count = await resolve.api_keys(
            info.context,
            include_revoked=include_revoked,
            first=page.size,
            after=page.cursor,
            newest=newest_first(order_by, page),
        )
        return to_connection(nodes, has_next, count, page)

    @strawberry.field(
        description="Who called which mutation, on what, and how it ended: every mutation "
        "call of a signed-in caller, refused ones included. Admin only.",
        permission_classes=[AdminOnly],
        graphql_type=Connection[AuditEntry],
    )
    async def audit_log(
        self,
        info: Info,
        from_: Annotated[
            datetime | None,
            strawberry.argument(name="from", description="Entries at or after this."),
        ] = None,
        to: Annotated[datetime | None, strawberry.argument(description="Entries before this.")] = (
            None
        ),
        actor: Annotated[
            str | None,
            strawberry.argument(description="Only this actor (a `sub` or an API key prefix)."),
        ] = None,
        action: Annotated[
            str | None,
            strawberry.argument(description="Only this mutation, e.g. `apiKeyRevoke`."),
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        order_by: Annotated[ListOrder, strawberry.argument(description=ORDER_BY)] = (
            ListOrder.OLDEST_FIRST
        ),
    ) -> Connection[DomainAuditEntry]:
        page = window(first, after, last, before)
        nodes, has_next, count = await resolve.audit_log(
            info.context,
            since=from_,
            until=to,
            actor=actor,
            action=action,
            first=page.size,
            after=page.cursor,
            newest=newest_first(order_by, page),
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class IdentityMutations:
    @strawberry.mutation(
        description="Make an API key for a back end; the payload's `key` is the only time the "
        "key is shown. A key never has more power than its maker. Admin only (service keys "
        "and tokens cannot manage keys).",
        permission_classes=[AdminOnly],
    )
    async def api_key_create(
        self,
        info: Info,
        input: Annotated[ApiKeyCreateInput, strawberry.argument(description=INPUT)],
    ) -> ApiKeySecretPayload:
        made, errors = await attempt(
            resolve.create_key(
                info.context,
                name=input.name,
                role=Role(input.role.value),
                expires_at=input.expires_at,
            )
        )
        if made is None:
            return ApiKeySecretPayload(api_key=None, key=None, errors=errors)
        return ApiKeySecretPayload(api_key=made[0], key=made[1], errors=[])

    @strawberry.mutation(
        description="Revoke an API key: every process refuses it within about a second, and "
        "WebSockets it opened are closed (4401). Revoking a revoked key changes nothing. "
        "Admin only.",
        permission_classes=[AdminOnly],
    )
    async def api_key_revoke(
        self,
        info: Info,
        input: Annotated[ApiKeyRevokeInput, strawberry.argument(description=INPUT)],
    ) -> ApiKeyPayload:
        revoked, errors = await attempt(resolve.revoke_key(info.context, input.id))
        return ApiKeyPayload(api_key=revoked, errors=errors)

    @strawberry.mutation(
        description="Replace an API key with a new one (same name, role and expiry); the old "
        "key keeps working for `gracePeriodSeconds`, so back ends can switch without downtime. "
        "Admin only.",
        permission_classes=[AdminOnly],
    )
    async def api_key_roll(
        self,
        info: Info,
        input: Annotated[ApiKeyRollInput, strawberry.argument(description=INPUT)],
    ) -> ApiKeySecretPayload:
        rolled, errors = await attempt(
            resolve.roll_key(info.context, input.id, input.grace_period_seconds)
        )
        if rolled is None:
            return ApiKeySecretPayload(api_key=None, key=None, errors=errors)
        made, key, previous = rolled
        return ApiKeySecretPayload(api_key=made, key=key, previous=previous, errors=[])
