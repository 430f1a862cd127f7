"""Service metadata and the `Live` root subscription type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Annotated

import strawberry

from app import __version__
from schema.base import Info
from schema.permissions import AnyRole, Public

__all__ = ["Live", "ServiceQueries"]

CAPABILITIES = (
    "plans",
    "customers",
    "payments",
    "refunds",
    "invoices",
    "credit_notes",
    "tax_rates",
    "coupons",
)


@strawberry.type(description="What this deployment is and what it can do.")
class ServiceInfo:
    name: str = strawberry.field(description="Service name.")
    version: str = strawberry.field(description="Release version.")
    environment: str = strawberry.field(description="development, test or production.")
    stripe_mode: str = strawberry.field(
        description="`emulator` (localstripe or another local base URL), `test` or `live`."
    )
    capabilities: list[str] = strawberry.field(description="Feature areas this release serves.")


@strawberry.type
class ServiceQueries:
    @strawberry.field(description="Service metadata; needs no token.", permission_classes=[Public])
    def service_info(self, info: Info) -> ServiceInfo:
        settings = info.context.services.settings
        return ServiceInfo(
            name="billing",
            version=__version__,
            environment=settings.env,
            stripe_mode=settings.stripe_mode,
            capabilities=list(CAPABILITIES),
        )


@strawberry.type(description="Live event streams over WebSocket (graphql-transport-ws).")
class Live:
    @strawberry.subscription(
        description="Server time every `intervalSeconds` (1-60): a liveness signal for clients.",
        permission_classes=[AnyRole],
    )
    async def heartbeat(
        self,
        info: Info,
        interval_seconds: Annotated[
            int, strawberry.argument(description="Seconds between beats, clamped to 1-60.")
        ] = 15,
    ) -> AsyncGenerator[datetime, None]:
        interval = min(max(interval_seconds, 1), 60)
        while True:
            yield datetime.now(UTC)
            await asyncio.sleep(interval)
