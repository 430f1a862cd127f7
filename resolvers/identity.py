"""API keys (admins manage them) and the audit log (admins read it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from app.context import Context
from app.core.auth import Role
from app.identity import ApiKey, AuditEntry

__all__ = ["api_keys", "audit_log", "create_key", "revoke_key", "roll_key"]


async def create_key(
    ctx: Context, *, name: str, role: Role, expires_at: datetime | None
) -> tuple[ApiKey, str]:
    return await ctx.services.identity.api_keys.create(
        ctx.require_principal(), name=name, role=role, expires_at=expires_at
    )


async def revoke_key(ctx: Context, key_id: str) -> ApiKey:
    return await ctx.services.identity.api_keys.revoke(ctx.require_principal(), key_id)


async def roll_key(ctx: Context, key_id: str, grace_seconds: int) -> tuple[ApiKey, str, ApiKey]:
    return await ctx.services.identity.api_keys.roll(
        ctx.require_principal(), key_id, grace_seconds=grace_seconds
    )


async def api_keys(
    ctx: Context, *, include_revoked: bool, first: int, after: str | None, newest: bool
) -> tuple[list[ApiKey], bool, Callable[[], Awaitable[int]]]:
    keys, org = ctx.services.identity.api_keys, ctx.org
    nodes, has_next = await keys.page(
        org, include_revoked=include_revoked, first=first, after=after, newest=newest
    )
    return nodes, has_next, lambda: keys.count(org, include_revoked=include_revoked)


async def audit_log(
    ctx: Context,
    *,
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    action: str | None,
    first: int,
    after: str | None,
    newest: bool,
) -> tuple[list[AuditEntry], bool, Callable[[], Awaitable[int]]]:
    audit, org = ctx.services.audit, ctx.org
    nodes, has_next = await audit.page(
        org,
        since=since,
        until=until,
        actor=actor,
        action=action,
        first=first,
        after=after,
        newest=newest,
    )

    def count() -> Awaitable[int]:
        return audit.count(org, since=since, until=until, actor=actor, action=action)

    return nodes, has_next, count
