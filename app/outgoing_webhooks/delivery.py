"""Delivery by the workers: claim due deliveries (FOR UPDATE SKIP LOCKED, with a lease), sign,
POST, record the attempt, and schedule the next try with exponential back-off and jitter until
WEBHOOK_MAX_AGE (3 days) has passed. An endpoint whose every attempt failed for that long is
disabled, with the reason recorded, a warning logged and a ``webhook_endpoint.disabled`` event.

At least once, per endpoint, in no particular order: a worker killed after the receiver got a
delivery but before it recorded the answer sends it again when its lease ends, and retries
overtake newer events. Receivers de-duplicate on the event id (``Billing-Event-Id``)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.outgoing_webhooks.addresses import Refused, check_url, resolve
from app.outgoing_webhooks.envelope import api_view
from app.outgoing_webhooks.model import WebhookEndpoint
from app.outgoing_webhooks.outbox import emit
from app.outgoing_webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    sign,
)
from db.connection import Database, Row
from db.repositories.outgoing_webhooks import (
    WebhookDeliveryRepository,
    WebhookEndpointRepository,
)

__all__ = ["DeliveryPolicy", "WebhookSender", "backoff"]

log = logging.getLogger(__name__)

_MAX_ERROR = 500
_MAX_ANSWER_BYTES = 64 * 1024
_USER_AGENT = "billing-webhooks/1"


class DeliveryPolicy:
    """Timings of delivery (settings ``WEBHOOK_*``)."""

    def __init__(
        self,
        *,
        retry_base: timedelta = timedelta(seconds=30),
        retry_cap: timedelta = timedelta(hours=6),
        max_age: timedelta = timedelta(days=3),
        lease: timedelta = timedelta(seconds=60),
        timeout_seconds: float = 10.0,
    ) -> None:
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_age = max_age
        self.lease = lease
        self.timeout_seconds = timeout_seconds


def backoff(
    attempt: int, base: timedelta, cap: timedelta, rng: random.Random | None = None
) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, …): base·2^(attempt-1), capped,
    then a random half of it dropped ("equal jitter"), so failing receivers are not hit by
    every worker in step."""
    full: timedelta = min(base * (2 ** min(attempt - 1, 30)), cap)
    share = (rng or random).random()
    return full / 2 + (full / 2) * share


class WebhookSender:
    def __init__(
        self,
        db: Database,
        *,
        production: bool,
        policy: DeliveryPolicy | None = None,
        concurrency: int = 8,
    ) -> None:
        self._db = db
        self._production = production
        self._policy = policy or DeliveryPolicy()
        self._deliveries = WebhookDeliveryRepository(db)
        self._endpoints = WebhookEndpointRepository(db)
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: the checked address is used
                limits=httpx.Limits(max_connections=self._concurrency * 2),
            )
        return self._client

    async def deliver_due(self, limit: int | None = None, *, org: str | None = None) -> int:
        """Claim up to ``limit`` due deliveries (of ``org`` only, if given) and attempt each
        once. Returns how many. The default, twice the concurrency, keeps a round within two
        request timeouts, well inside the lease: a claim is not taken over while it waits."""
        size = 2 * self._concurrency if limit is None else limit
        rows = await self._deliveries.claim(size, self._policy.lease, org)
        if not rows:
            return 0
        gate = asyncio.Semaphore(self._concurrency)

        async def one(row: Row) -> None:
            async with gate:
                try:
                    await self._attempt(row)
                except Exception as exc:  # noqa: BLE001 - the lease brings it back
                    log.error("webhook delivery %s: %s", row["id"], type(exc).__name__)

        await asyncio.gather(*(one(row) for row in rows))
        return len(rows)

    async def _attempt(self, row: Row) -> None:
        started = datetime.now(UTC)
        clock = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        if not row["enabled"]:
            await self._finish(row, started, 0, None, "The endpoint is disabled.", final=True)
            return
        try:
            status_code = await self._post(row)
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except Refused as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR] if str(exc) else type(exc).__name__
        duration_ms = int((time.perf_counter() - clock) * 1000)
        await self._finish(row, started, duration_ms, status_code, error, final=False)

    async def _post(self, row: Row) -> int:
        target = check_url(row["url"], production=self._production)
        address = await resolve(target, production=self._production)
        body = row["payload"].encode()
        secrets = [row["secret"]] + ([row["previous"]] if row["previous"] else [])
        host = f"[{address}]" if ":" in address else address
        name = f"[{target.host}]" if ":" in target.host else target.host  # an IPv6 literal
        default = 443 if target.scheme == "https" else 80
        headers = {
            "Host": name if target.port == default else f"{name}:{target.port}",
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            SIGNATURE_HEADER: sign(secrets, int(time.time()), body),
            EVENT_ID_HEADER: row["event_id"],
            EVENT_TYPE_HEADER: row["event_type"],
        }
        extensions: dict[str, Any] = {
            "timeout": httpx.Timeout(self._policy.timeout_seconds).as_dict()
        }
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host  # TLS checks the name, not the address
        request = self._http().build_request(
            "POST",
            f"{target.scheme}://{host}:{target.port}{target.path}",
            content=body,
            headers=headers,
            extensions=extensions,
        )
        response = await self._http().send(request, stream=True)
        try:
            # Only the status counts. A short answer is read to its end, so the connection is
            # kept for the next delivery; a long one is cut off (and its connection closed).
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > _MAX_ANSWER_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code

    async def _finish(
        self,
        row: Row,
        started: datetime,
        duration_ms: int,
        status_code: int | None,
        error: str | None,
        *,
        final: bool,
    ) -> None:
        org, attempt = row["organization_id"], row["attempts"]
        now = datetime.now(UTC)
        values: Mapping[str, Any]
        if error is None:
            values = {
                "status": "succeeded",
                "delivered_at": now,
                "last_status_code": status_code,
                "last_error": None,
            }
        elif final or now >= row["retry_from"] + self._policy.max_age:
            values = {"status": "failed", "last_status_code": status_code, "last_error": error}
        else:
            wait = backoff(attempt, self._policy.retry_base, self._policy.retry_cap)
            values = {
                "next_attempt_at": now + wait,
                "last_status_code": status_code,
                "last_error": error,
            }
        logged = {
            "organization_id": org,
            "delivery_id": row["id"],
            "attempt": attempt,
            "started_at": started,
            "duration_ms": duration_ms,
            "status_code": status_code,
            "error": error,
        }
        if final or error is None:  # one statement
            succeeded = row["endpoint_id"] if error is None else None
            await self._deliveries.finish(logged, values, endpoint_id=succeeded)
            return
        async with self._db.transaction():
            await self._deliveries.finish(logged, values)
            disabled = await self._endpoints.failed(
                org, row["endpoint_id"], self._policy.max_age, row["retry_from"]
            )
            if disabled is not None:
                endpoint = WebhookEndpoint.from_row(disabled)
                log.warning(
                    "webhook endpoint %s of %s disabled: %s",
                    endpoint.id,
                    org,
                    endpoint.disabled_reason,
                )
                await emit(
                    self._db,
                    org,
                    "webhook_endpoint.disabled",
                    api_view(endpoint, typename="WebhookEndpoint", hide=_HIDDEN),
                )


_HIDDEN = frozenset({"failing_since", "previous_secret_expires_at"})
