"""Service metadata."""

from __future__ import annotations

import strawberry

from app import __version__
from schema.base import Info
from schema.permissions import AdminOrService, Public

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


_STAFF = "Needs an admin or service token (UNAUTHENTICATED / FORBIDDEN otherwise): "


@strawberry.type(
    description=(
        "What this deployment is and what it can do. `name` and `capabilities` are public; "
        "the release and environment details are for staff (admin or service tokens) only."
    )
)
class ServiceInfo:
    name: str = strawberry.field(description="Service name. Public.")
    capabilities: list[str] = strawberry.field(
        description="Feature areas this deployment serves. Public."
    )
    version: str | None = strawberry.field(
        description=_STAFF + "the release version.", permission_classes=[AdminOrService]
    )
    environment: str | None = strawberry.field(
        description=_STAFF + "development, test or production.",
        permission_classes=[AdminOrService],
    )
    stripe_mode: str | None = strawberry.field(
        description=_STAFF
        + "`emulator` (localstripe or another local base URL), `test` or `live`.",
        permission_classes=[AdminOrService],
    )


@strawberry.type
class ServiceQueries:
    @strawberry.field(
        description=(
            "Service metadata; needs no token for `name` and `capabilities` (the other fields "
            "need an admin or service token)."
        ),
        permission_classes=[Public],
    )
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
