"""Authorization rules, declared on every root field (a test fails for a field without one).

Each rule raises ``Unauthenticated`` (no or bad token) or ``Forbidden`` (wrong role); data
scoping to the token's organization and customer happens in the resolvers and services.
"""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission

from app.core.auth import Role

__all__ = ["RULES", "AdminOnly", "AdminOrService", "AnyRole", "Public"]


class _RoleRule(BasePermission):
    roles: ClassVar[tuple[Role, ...]] = ()

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        info.context.require_role(*self.roles)
        return True


class Public(BasePermission):
    """No token needed (service metadata only)."""

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return True


class AnyRole(_RoleRule):
    """Any valid token; customer tokens see only their own customer's data."""

    roles = (Role.ADMIN, Role.SERVICE, Role.CUSTOMER)


class AdminOrService(_RoleRule):
    """Admins and back-end services."""

    roles = (Role.ADMIN, Role.SERVICE)


class AdminOnly(_RoleRule):
    """Admins only (catalog management, approvals, statistics)."""

    roles = (Role.ADMIN,)


RULES = (Public, AnyRole, AdminOrService, AdminOnly)
