"""SQL for outgoing webhooks: endpoints, the event outbox, deliveries and their attempt log
(db/migrations/0020_outgoing_webhooks.sql)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from db.connection import Row
from db.repositories.base import Filters, TableRepository
from db.tables import webhook_deliveries, webhook_endpoints, webhook_events

__all__ = [
    "WebhookDeliveryRepository",
    "WebhookEndpointRepository",
    "WebhookEventRepository",
]

# The event and one delivery per enabled endpoint that wants its type, in one statement (one
# round trip in the writing transaction). A repeated dedupe_key writes nothing.
_RECORD = """
WITH event AS (
    INSERT INTO webhook_events
        (organization_id, id, type, api_version, object_id, payload, dedupe_key, created_at)
    VALUES (:org, :id, :type, :api_version, :object_id, :payload, :dedupe_key, :created_at)
    ON CONFLICT (organization_id, dedupe_key) DO NOTHING
    RETURNING organization_id, id, type, created_at
)
INSERT INTO webhook_deliveries
    (organization_id, id, endpoint_id, event_id, event_type, next_attempt_at, retry_from,
     created_at, updated_at)
SELECT event.organization_id, 'whd_' || substr(event.id, 5) || '_' || substr(w.id, 4),
       w.id, event.id, event.type, event.created_at, event.created_at, event.created_at,
       event.created_at
FROM event JOIN webhook_endpoints w
    ON w.organization_id = event.organization_id AND w.enabled AND event.type = ANY(w.event_types)
"""

# Old events whose deliveries are all finished; SKIP LOCKED so workers purge side by side. The
# deliveries go in the same statement (their attempts by ON DELETE CASCADE); the foreign key
# from deliveries to events is checked at the statement's end, when both are gone.
_PURGE = """
WITH doomed AS (
    SELECT e.organization_id, e.id FROM webhook_events e
    WHERE e.created_at < :before
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries d
          WHERE d.organization_id = e.organization_id AND d.event_id = e.id
            AND d.status = 'pending')
    ORDER BY e.created_at
    LIMIT :limit
    FOR UPDATE OF e SKIP LOCKED
), deliveries AS (
    DELETE FROM webhook_deliveries d USING doomed
    WHERE d.organization_id = doomed.organization_id AND d.event_id = doomed.id
)
DELETE FROM webhook_events e USING doomed
WHERE e.organization_id = doomed.organization_id AND e.id = doomed.id
RETURNING e.id
"""

# Due deliveries, each claimed by moving next_attempt_at one lease ahead: a worker killed in
# the middle of a delivery leaves it due again when the lease ends. SKIP LOCKED lets any
# number of workers claim side by side.
_CLAIM = """
WITH due AS (
    SELECT organization_id, id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (CAST(:org AS text) IS NULL OR organization_id = :org)
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET next_attempt_at = now() + CAST(:lease AS interval), attempts = d.attempts + 1,
    updated_at = now()
FROM due, webhook_events e, webhook_endpoints w
WHERE d.organization_id = due.organization_id AND d.id = due.id
  AND e.organization_id = d.organization_id AND e.id = d.event_id
  AND w.organization_id = d.organization_id AND w.id = d.endpoint_id
RETURNING d.organization_id, d.id, d.attempts, d.retry_from, d.event_id, d.event_type,
          e.payload, w.id AS endpoint_id, w.url, w.enabled, w.secret,
          CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous
"""


# An endpoint answered 2xx: it is failing no more. A success within the last minute is recent
# enough, so not every delivery writes the endpoint's row (concurrent deliveries would queue).
_SUCCEEDED = """
UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = now()
WHERE organization_id = :org AND id = CAST(:endpoint AS text)
  AND (failing_since IS NOT NULL OR last_success_at IS NULL
       OR last_success_at < now() - interval '1 minute')
"""


class WebhookEndpointRepository(TableRepository):
    table = webhook_endpoints

    async def list_all(self, org: str) -> Sequence[Row]:
        return await self._db.fetch_all(
            sa.select(self.table).where(self._c.organization_id == org).order_by(self._c.id)
        )

    async def delete(self, org: str, endpoint_id: str) -> Row | None:
        return await self._db.fetch_one(
            sa.delete(self.table)
            .where(self._c.organization_id == org, self._c.id == endpoint_id)
            .returning(*self.table.c)
        )

    async def failed(
        self, org: str, endpoint_id: str, max_age: timedelta, since: datetime
    ) -> Row | None:
        """Note a failed attempt of a delivery whose retry window began at ``since``; the
        endpoint's row when nothing was acknowledged for ``max_age`` and this call disabled it
        (None otherwise)."""
        await self._db.execute(
            "UPDATE webhook_endpoints SET failing_since = GREATEST("
            "CAST(:since AS timestamptz), COALESCE(last_success_at, CAST(:since AS timestamptz))) "
            "WHERE organization_id = :org AND id = :id AND failing_since IS NULL",
            {"org": org, "id": endpoint_id, "since": since},
        )
        return await self._db.fetch_one(
            "UPDATE webhook_endpoints SET enabled = false, updated_at = now(), "
            "disabled_reason = 'Every delivery failed since ' || "
            "to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
            "WHERE organization_id = :org AND id = :id AND enabled "
            "AND failing_since <= now() - CAST(:max_age AS interval) RETURNING *",
            {"org": org, "id": endpoint_id, "max_age": max_age},
        )


class WebhookEventRepository(TableRepository):
    table = webhook_events

    async def record(self, values: Mapping[str, Any]) -> None:
        await self._db.execute(_RECORD, dict(values))

    async def purge_before(self, before: datetime, *, limit: int = 1_000) -> int:
        """Delete up to ``limit`` events (oldest first) created before ``before`` with no
        delivery still pending, with their deliveries and attempts; returns how many events."""
        return len(await self._db.fetch_all(_PURGE, {"before": before, "limit": limit}))

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        where = [self._c.organization_id == org]
        if filters.get("types"):
            where.append(self._c.type == sa.any_(sa.literal(list(filters["types"]), _TEXTS)))
        if filters.get("from") is not None:
            where.append(self._c.created_at >= filters["from"])
        if filters.get("to") is not None:
            where.append(self._c.created_at < filters["to"])
        return where


_TEXTS = sa.ARRAY(sa.Text)


class WebhookDeliveryRepository(TableRepository):
    table = webhook_deliveries

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        where = [self._c.organization_id == org]
        for key in ("endpoint_id", "event_type", "status", "event_id"):
            if filters.get(key) is not None:
                where.append(self._c[key] == filters[key])
        return where

    async def claim(self, limit: int, lease: timedelta, org: str | None = None) -> Sequence[Row]:
        return await self._db.fetch_all(_CLAIM, {"limit": limit, "lease": lease, "org": org})

    async def finish(
        self,
        attempt: Mapping[str, Any],
        values: Mapping[str, Any],
        *,
        endpoint_id: str | None = None,
    ) -> bool:
        """Log an attempt and record its outcome on the delivery, and with ``endpoint_id`` (a
        success) the endpoint's success: one statement. The outcome is recorded only while
        this attempt still holds the delivery (a redelivery or another worker's later attempt
        wins). True when it was."""
        sets = ", ".join(f"{name} = :v_{name}" for name in values)
        row = await self._db.fetch_one(
            "WITH logged AS (INSERT INTO webhook_attempts (organization_id, delivery_id, "
            "attempt, started_at, duration_ms, status_code, error) VALUES (:org, :id, :attempt, "
            ":started_at, :duration_ms, :status_code, :error) ON CONFLICT DO NOTHING), "
            f"succeeded AS ({_SUCCEEDED}) "
            f"UPDATE webhook_deliveries SET {sets}, updated_at = now() "
            "WHERE organization_id = :org AND id = :id AND attempts = :attempt "
            "AND status = 'pending' RETURNING id",
            {
                "org": attempt["organization_id"],
                "id": attempt["delivery_id"],
                "attempt": attempt["attempt"],
                "started_at": attempt["started_at"],
                "duration_ms": attempt["duration_ms"],
                "status_code": attempt["status_code"],
                "error": attempt["error"],
                "endpoint": endpoint_id,
                **{f"v_{name}": value for name, value in values.items()},
            },
        )
        return row is not None

    async def attempts_of(self, org: str, delivery_ids: Sequence[str]) -> Sequence[Row]:
        return await self._db.fetch_all(
            "SELECT * FROM webhook_attempts WHERE organization_id = :org "
            "AND delivery_id = ANY(:ids) ORDER BY delivery_id, attempt",
            {"org": org, "ids": list(delivery_ids)},
        )

    async def redeliver(self, org: str, delivery_id: str) -> Row | None:
        """Due again now, with a fresh retry window (WEBHOOK_MAX_AGE from now)."""
        return await self._db.fetch_one(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), "
            "retry_from = now(), updated_at = now() "
            "WHERE organization_id = :org AND id = :id RETURNING *",
            {"org": org, "id": delivery_id},
        )

    async def backlog(self) -> Sequence[Row]:
        """Pending deliveries per endpoint and the age of the oldest, for /metrics."""
        return await self._db.fetch_all(
            "SELECT endpoint_id, count(*) AS pending, "
            "extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds "
            "FROM webhook_deliveries WHERE status = 'pending' GROUP BY endpoint_id"
        )

    async def recent_attempts(self) -> Sequence[Row]:
        """Attempts of the last hour per endpoint and outcome, with their mean duration."""
        return await self._db.fetch_all(
            "SELECT d.endpoint_id, "
            "CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'succeeded' ELSE 'failed' END "
            "AS outcome, count(*) AS attempts, avg(a.duration_ms)::float8 / 1000 AS seconds "
            "FROM webhook_attempts a JOIN webhook_deliveries d "
            "ON d.organization_id = a.organization_id AND d.id = a.delivery_id "
            "WHERE a.started_at > now() - interval '1 hour' GROUP BY 1, 2"
        )
