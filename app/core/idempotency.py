"""Idempotency keys for every mutation that moves money.

A key belongs to an organization. The first request with a key claims it (``in_flight``, with a
lease) before doing anything; the same key with the same input then gets the stored result, a
different input gets ``IDEMPOTENCY_KEY_REUSED``, and a request arriving while the first is still
in flight gets ``IDEMPOTENCY_KEY_IN_USE``. If the first request dies (process crash), its lease
expires and a retry takes the key over: it keeps the same resource id and the same Stripe
idempotency keys, and the domain code reads Stripe's state before acting again, so a crash
between Stripe's answer and our commit cannot charge twice. Keys are kept 24 hours after their
last use.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypedDict, TypeVar

from app.core.errors import DomainError, ErrorCode, ProviderUnreachable, ValidationFailed
from db.connection import Database, Row
from db.repositories.idempotency import IdempotencyRepository

__all__ = [
    "DEFAULT_LEASE",
    "RETENTION",
    "Claim",
    "IdempotencyKeys",
    "Stored",
    "validate_key",
]

T = TypeVar("T")

# Longer than a Stripe call can take with the SDK's timeout and retries, so a slow request is
# not taken over while alive (if it is, row leases and Stripe's own state still keep it safe).
DEFAULT_LEASE = timedelta(minutes=5)
RETENTION = timedelta(hours=24)
_FIELD = ("input", "idempotencyKey")


def validate_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not key.isprintable() or key != key.strip():
        raise DomainError(
            ErrorCode.INVALID,
            "An idempotency key is 1-255 printable characters without surrounding spaces "
            "(a UUID is a good choice).",
            field=_FIELD,
        )
    return key


@dataclass
class Claim:
    """This request holds the key (until its lease ends)."""

    org: str
    key: str
    token: str
    resource_id: str
    attempt: int
    completed: bool = False

    @property
    def retried(self) -> bool:
        """An earlier request with this key was interrupted; it may have reached Stripe."""
        return self.attempt > 1

    def stripe_key(self, step: str) -> str:
        """The idempotency key forwarded to Stripe for one step of this request: the same for
        every retry with our key, different for every other key and organization."""
        digest = hashlib.sha256(f"{self.org}\x00{self.key}".encode()).hexdigest()[:40]
        return f"billing-{digest}-{step}"


@dataclass(frozen=True)
class Stored:
    """The result of an earlier request with the same key and input."""

    resource_id: str
    error: DomainError | None


class _Fresh(TypedDict):
    operation: str
    request_hash: str
    resource_id: str
    token: str
    lease: timedelta
    retention: timedelta


def _request_hash(operation: str, request: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"operation": operation, "request": request},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(row: Row) -> Stored:
    response: dict[str, Any] = row["response"]
    error = response.get("error")
    if error is None:
        return Stored(response["resource_id"], None)
    field = tuple(error["field"]) if error.get("field") else None
    return Stored(
        response["resource_id"],
        DomainError(
            ErrorCode(error["code"]), error["message"], field=field, details=error.get("details")
        ),
    )


class IdempotencyKeys:
    def __init__(
        self, db: Database, *, lease: timedelta = DEFAULT_LEASE, retention: timedelta = RETENTION
    ) -> None:
        if retention < RETENTION:
            raise ValueError("idempotency keys are kept at least 24 hours")
        self._keys = IdempotencyRepository(db)
        self.lease = lease
        self._retention = retention

    async def run(
        self,
        org: str,
        key: str,
        *,
        operation: str,
        request: Mapping[str, Any],
        resource_id: str,
        work: Callable[[Claim], Awaitable[T]],
        replay: Callable[[Stored], Awaitable[T]],
    ) -> T:
        """Run ``work`` once per key. ``work`` must call ``complete`` in the transaction that
        records its outcome. A caller-fixable error raised before that frees the key (nothing
        happened); an unknown outcome at Stripe leaves it for an immediate retry to take over."""
        outcome = await self.begin(
            org, key, operation=operation, request=request, resource_id=resource_id
        )
        if isinstance(outcome, Stored):
            return await replay(outcome)
        try:
            return await work(outcome)
        except ProviderUnreachable:
            if not outcome.completed:
                await self._keys.abandon(org, key, token=outcome.token)
            raise
        except (DomainError, ValidationFailed):
            if not outcome.completed:
                await self._keys.release(org, key, token=outcome.token)
            raise

    async def begin(
        self,
        org: str,
        key: str,
        *,
        operation: str,
        request: Mapping[str, Any],
        resource_id: str,
    ) -> Claim | Stored:
        validate_key(key)
        request_hash = _request_hash(operation, request)
        token = secrets.token_hex(16)
        fresh = _Fresh(
            operation=operation,
            request_hash=request_hash,
            resource_id=resource_id,
            token=token,
            lease=self.lease,
            retention=self._retention,
        )
        # A few rounds: the key can be released or expire between our statements.
        for _ in range(5):
            row = await self._keys.claim(org, key, **fresh)
            if row is None:
                row = await self._keys.get(org, key)
                if row is None:
                    continue
                if row["expired"] and row["lease_expired"]:
                    row = await self._keys.replace_expired(org, key, **fresh)
                    if row is None:
                        continue
                elif row["request_hash"] != request_hash:
                    raise DomainError(
                        ErrorCode.IDEMPOTENCY_KEY_REUSED,
                        "This idempotency key was already used with a different request; "
                        "use a new key for a new request.",
                        field=_FIELD,
                    )
                elif row["state"] == "completed":
                    return _stored(row)
                elif not row["lease_expired"]:
                    raise DomainError(
                        ErrorCode.IDEMPOTENCY_KEY_IN_USE,
                        "A request with this idempotency key is still being processed; "
                        "retry it later to get its result.",
                        field=_FIELD,
                    )
                else:
                    row = await self._keys.take_over(
                        org, key, request_hash=request_hash, token=token, lease=self.lease
                    )
                    if row is None:
                        continue
            return Claim(
                org=org,
                key=key,
                token=token,
                resource_id=row["resource_id"],
                attempt=row["attempts"],
            )
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_IN_USE,
            "A request with this idempotency key is still being processed; retry it later.",
            field=_FIELD,
        )

    async def complete(self, claim: Claim, *, error: DomainError | None = None) -> None:
        """Store the outcome (call inside the transaction that records it). Raises when a retry
        took the key over meanwhile, which rolls that transaction back: the retry records it."""
        response: dict[str, Any] = {"resource_id": claim.resource_id, "error": None}
        if error is not None:
            response["error"] = {
                "code": error.code.value,
                "message": error.message,
                "field": list(error.field) if error.field else None,
                "details": error.details,
            }
        done = await self._keys.complete(
            claim.org, claim.key, token=claim.token, response=response, retention=self._retention
        )
        if not done:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_IN_USE,
                "This request outlived its lease and a retry with the same idempotency key "
                "took over; that retry reports the result.",
                field=_FIELD,
            )
        claim.completed = True

    async def completed(self, org: str, key: str) -> Stored | None:
        """The stored outcome of ``key`` when a request with it completed; else None. Lets a
        retry that took over an interrupted request find the steps it had finished."""
        row = await self._keys.get(org, key)
        if row is None or row["state"] != "completed":
            return None
        return _stored(row)

    async def purge_expired(self) -> int:
        """Delete keys past their retention (run periodically by a worker)."""
        return await self._keys.purge_expired()
