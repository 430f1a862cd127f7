"""The per-request (per-event for subscriptions) context: who is asking, services and loaders.

Loaders are built here, never at module level: a loader caches, and a cache shared across
requests would leak one caller's data to another.
"""

from __future__ import annotations

from typing import Any

from aiodataloader import DataLoader

from app.auth import Principal, Role
from app.customers import Customer
from app.errors import Forbidden, Unauthenticated
from app.plans import Plan
from app.services import Services

__all__ = ["Context", "Loaders"]


class Loaders:
    """One set of batching loaders, scoped to one organization."""

    def __init__(self, services: Services, org: str) -> None:
        async def plans(ids: list[str]) -> list[Plan | None]:
            return await services.plans.read.by_ids(org, ids)

        async def customers(ids: list[str]) -> list[Customer | None]:
            return await services.customers.read.by_ids(org, ids)

        self.plan_by_id: DataLoader[str, Plan | None] = DataLoader(plans)
        self.customer_by_id: DataLoader[str, Customer | None] = DataLoader(customers)


class Context:
    def __init__(
        self,
        services: Services,
        *,
        principal: Principal | None = None,
        auth_error: Unauthenticated | None = None,
        request: Any = None,
    ) -> None:
        self.services = services
        self.request = request
        self.principal = principal
        self.auth_error = auth_error
        self.connection_params: dict[str, Any] | None = None  # set by graphql-transport-ws
        self._loaders: Loaders | None = None

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise self.auth_error or Unauthenticated(
                "Authentication required: send a bearer token."
            )
        return self.principal

    def require_role(self, *roles: Role) -> Principal:
        principal = self.require_principal()
        if principal.role not in roles:
            raise Forbidden(f"This operation needs the {' or '.join(r.value for r in roles)} role.")
        return principal

    def can_see_customer(self, customer_id: str) -> bool:
        """Admins and services see every customer of their organization; a customer token
        sees only itself."""
        principal = self.require_principal()
        return principal.customer_id in (None, customer_id)

    @property
    def org(self) -> str:
        return self.require_principal().org

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.services, self.org)
        return self._loaders

    def fresh_loaders(self) -> None:
        """Forget cached loads (a subscription calls this before each emitted event)."""
        self._loaders = None
