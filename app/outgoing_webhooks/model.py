"""Endpoints, events and deliveries as the rest of the application sees them."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.connection import Row

__all__ = [
    "DeliveryAttempt",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]


class DeliveryStatus(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    organization_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> WebhookEndpoint:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            url=row["url"],
            description=row["description"],
            event_types=list(row["event_types"]),
            enabled=row["enabled"],
            disabled_reason=row["disabled_reason"],
            failing_since=row["failing_since"],
            previous_secret_expires_at=row["previous_secret_expires_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    organization_id: str
    type: str
    api_version: str
    object_id: str
    payload: str
    created_at: datetime

    @property
    def envelope(self) -> Any:
        return json.loads(self.payload)

    @classmethod
    def from_row(cls, row: Row) -> WebhookEvent:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            type=row["type"],
            api_version=row["api_version"],
            object_id=row["object_id"],
            payload=row["payload"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None

    @classmethod
    def from_row(cls, row: Row) -> DeliveryAttempt:
        return cls(
            attempt=row["attempt"],
            started_at=row["started_at"],
            duration_ms=row["duration_ms"],
            status_code=row["status_code"],
            error=row["error"],
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: str
    organization_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> WebhookDelivery:
        status = DeliveryStatus(row["status"])
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            endpoint_id=row["endpoint_id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            status=status,
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"] if status is DeliveryStatus.PENDING else None,
            last_status_code=row["last_status_code"],
            last_error=row["last_error"],
            delivered_at=row["delivered_at"],
            created_at=row["created_at"],
        )
