"""Service metadata."""

from __future__ import annotations

import strawberry

from app import __version__
from schema.base import Info
from schema.permissions import Public

__all__ = ["ServiceQueries"]

CAPABILITIES = (
    "plans",
    "customers",
    "payments",
    "refunds",
    "invoices",
    "credit_notes",
    "tax_rates",
    "coupons",
    "subscriptions",
    "billing_worker",
    "statistics",
    "live",
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
            capabilities=[
                *CAPABILITIES,
                *(["webhooks"] if settings.stripe_webhook_secret else []),
                *(["test_clocks"] if settings.test_clocks else []),
            ],
        )
