"""Endpoint management (admins of an organization): register, list, change, rotate the
signing secret, delete; plus the reads behind ``webhookDeliveries`` and ``events`` and the
``webhookRedeliver`` action."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.ids import has_prefix, new_id
from app.core.listing import Listing
from app.outgoing_webhooks.addresses import Refused, check_url, resolve
from app.outgoing_webhooks.envelope import NAMES
from app.outgoing_webhooks.model import (
    DeliveryAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.outgoing_webhooks.signing import new_secret
from db.connection import Database, Row
from db.repositories.outgoing_webhooks import (
    WebhookDeliveryRepository,
    WebhookEndpointRepository,
    WebhookEventRepository,
)

__all__ = ["EndpointChange", "EndpointDraft", "WebhookEndpoints"]

MAX_ENDPOINTS = 16
_DELIVERY_ID = re.compile(r"whd_[0-9a-z]{26}_[0-9a-z]{26}")
MAX_ROTATION_GRACE = timedelta(days=7)


@dataclass(frozen=True)
class EndpointDraft:
    url: str
    event_types: Sequence[str]
    description: str = ""


@dataclass(frozen=True)
class EndpointChange:
    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    enabled: bool | None = None


class WebhookEndpoints:
    def __init__(self, db: Database, *, production: bool) -> None:
        self._db = db
        self._production = production
        self._endpoints = WebhookEndpointRepository(db)
        self._deliveries_repo = WebhookDeliveryRepository(db)
        self.events = Listing(WebhookEventRepository(db), WebhookEvent.from_row)
        self.deliveries = Listing(self._deliveries_repo, WebhookDelivery.from_row)
        self.read = Listing(self._endpoints, WebhookEndpoint.from_row)

    async def all_of(self, org: str) -> list[WebhookEndpoint]:
        return [WebhookEndpoint.from_row(r) for r in await self._endpoints.list_all(org)]

    async def create(self, org: str, draft: EndpointDraft) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret (shown this once)."""
        errors: list[DomainError] = []
        url = await self._url(draft.url, errors)
        types = self._types(draft.event_types, errors)
        description = self._description(draft.description, errors)
        if errors:
            raise ValidationFailed(errors)
        secret = new_secret()
        now = datetime.now(UTC)
        async with self._db.transaction():
            if len(await self._endpoints.list_all(org)) >= MAX_ENDPOINTS:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    f"An organization may have at most {MAX_ENDPOINTS} endpoints.",
                    field=("input",),
                )
            row = await self._endpoints.insert(
                {
                    "organization_id": org,
                    "id": new_id("we"),
                    "url": url,
                    "description": description,
                    "event_types": types,
                    "enabled": True,
                    "secret": secret,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        assert row is not None
        return WebhookEndpoint.from_row(row), secret

    async def update(self, org: str, endpoint_id: str, change: EndpointChange) -> WebhookEndpoint:
        await self.get(org, endpoint_id)
        errors: list[DomainError] = []
        values: dict[str, Any] = {}
        if change.url is not None:
            values["url"] = await self._url(change.url, errors)
        if change.event_types is not None:
            values["event_types"] = self._types(change.event_types, errors)
        if change.description is not None:
            values["description"] = self._description(change.description, errors)
        if change.enabled is not None:
            values["enabled"] = change.enabled
            if change.enabled:  # enabled again: a fresh start
                values.update(disabled_reason=None, failing_since=None)
            else:
                values["disabled_reason"] = "Disabled by an admin."
        if errors:
            raise ValidationFailed(errors)
        row = await self._endpoints.update(org, endpoint_id, values)
        if row is None:
            raise NotFound("WebhookEndpoint", ("input", "endpointId"))
        return WebhookEndpoint.from_row(row)

    async def rotate_secret(
        self, org: str, endpoint_id: str, grace: timedelta
    ) -> tuple[WebhookEndpoint, str]:
        """A new secret; the current one keeps signing too (a second ``v1``) for ``grace``."""
        if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
            raise DomainError(
                ErrorCode.INVALID,
                "The grace period must be between 0 and 168 hours.",
                field=("input", "graceHours"),
            )
        secret = new_secret()
        async with self._db.transaction():
            current = (
                await self._endpoints.lock(org, endpoint_id) if self._is_id(endpoint_id) else None
            )
            if current is None:
                raise NotFound("WebhookEndpoint", ("input", "endpointId"))
            keep = grace > timedelta(0)
            row = await self._endpoints.update(
                org,
                endpoint_id,
                {
                    "secret": secret,
                    "previous_secret": current["secret"] if keep else None,
                    "previous_secret_expires_at": datetime.now(UTC) + grace if keep else None,
                },
            )
        assert row is not None
        return WebhookEndpoint.from_row(row), secret

    async def delete(self, org: str, endpoint_id: str) -> WebhookEndpoint:
        """Delete the endpoint with its delivery log (the events stay: ``events``)."""
        row = await self._endpoints.delete(org, endpoint_id) if self._is_id(endpoint_id) else None
        if row is None:
            raise NotFound("WebhookEndpoint", ("input", "endpointId"))
        return WebhookEndpoint.from_row(row)

    async def get(self, org: str, endpoint_id: str) -> WebhookEndpoint:
        (found,) = (
            await self.read.by_ids(org, [endpoint_id]) if self._is_id(endpoint_id) else [None]
        )
        if found is None:
            raise NotFound("WebhookEndpoint", ("input", "endpointId"))
        return found

    async def redeliver(self, org: str, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again as soon as a worker is free, with a fresh retry window."""
        row = (
            await self._deliveries_repo.redeliver(org, delivery_id)
            if _DELIVERY_ID.fullmatch(delivery_id)
            else None
        )
        if row is None:
            raise NotFound("WebhookDelivery", ("input", "deliveryId"))
        return WebhookDelivery.from_row(row)

    async def figures(self) -> tuple[Sequence[Row], Sequence[Row]]:
        """For /metrics, over every organization: the backlog per endpoint (pending, age of
        the oldest) and the last hour's attempts per endpoint and outcome (count, mean
        seconds)."""
        return await self._deliveries_repo.backlog(), await self._deliveries_repo.recent_attempts()

    async def attempts_of(
        self, org: str, delivery_ids: Sequence[str]
    ) -> list[list[DeliveryAttempt]]:
        grouped: dict[str, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
        for row in await self._deliveries_repo.attempts_of(org, delivery_ids):
            grouped[row["delivery_id"]].append(DeliveryAttempt.from_row(row))
        return [grouped[i] for i in delivery_ids]

    # -- validation ---------------------------------------------------------------------------

    @staticmethod
    def _is_id(endpoint_id: str) -> bool:
        return has_prefix(endpoint_id, "we")

    async def _url(self, url: str, errors: list[DomainError]) -> str:
        try:
            target = check_url(url, production=self._production)
            if self._production:
                await resolve(target, production=True)
        except Refused as exc:
            errors.append(DomainError(ErrorCode.INVALID, str(exc), field=("input", "url")))
            return url
        return target.url

    @staticmethod
    def _types(types: Sequence[str], errors: list[DomainError]) -> list[str]:
        unknown = [t for t in types if t not in NAMES]
        if unknown or not types:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    f"Unknown event types: {', '.join(unknown)}."
                    if unknown
                    else "Name at least one event type.",
                    field=("input", "eventTypes"),
                )
            )
        return sorted(set(types))

    @staticmethod
    def _description(text: str, errors: list[DomainError]) -> str:
        if len(text) > 1000:
            errors.append(
                DomainError(
                    ErrorCode.INVALID,
                    "The description is longer than 1000 characters.",
                    field=("input", "description"),
                )
            )
        return text.strip()
