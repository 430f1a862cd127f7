"""Rate-limit state shared by every process through PostgreSQL: token buckets of query-cost
points, and leases on WebSocket connection slots."""

from __future__ import annotations

from dataclasses import dataclass

from db.connection import Database

__all__ = ["BucketState", "ConnectionSlotRepository", "RateLimitRepository"]

# The bucket refills at `rate` points per second up to `maximum`; points refunded by this
# process since its last spend are added first. The spend is granted only when the refilled
# bucket holds `cost` points; either way the refill is recorded. One statement, atomic.
_COST, _MAXIMUM = "CAST(:cost AS float8)", "CAST(:maximum AS float8)"
_RATE, _REFUND = "CAST(:rate AS float8)", "CAST(:refund AS float8)"
_REFILLED = (
    f"least({_MAXIMUM}, b.available + {_REFUND}"
    f" + {_RATE} * extract(epoch FROM now() - b.updated_at)::float8)"
)
_LEFT = f"CASE WHEN {_REFILLED} >= {_COST} THEN {_REFILLED} - {_COST} ELSE {_REFILLED} END"
_SPEND = f"""
INSERT INTO rate_limit_buckets AS b
    (organization_id, bucket, available, granted, updated_at, full_at)
VALUES (
    :org, :bucket,
    CASE WHEN {_COST} <= {_MAXIMUM} THEN {_MAXIMUM} - {_COST} ELSE {_MAXIMUM} END,
    {_COST} <= {_MAXIMUM},
    now(),
    now() + make_interval(
        secs => CASE WHEN {_COST} <= {_MAXIMUM} THEN {_COST} ELSE 0 END / {_RATE}
    )
)
ON CONFLICT (organization_id, bucket) DO UPDATE SET
    available = {_LEFT},
    granted = {_REFILLED} >= {_COST},
    updated_at = now(),
    full_at = now() + make_interval(secs => ({_MAXIMUM} - {_LEFT}) / {_RATE})
RETURNING available, granted
"""

# A bucket that has refilled completely is the same as no row at all.
_PRUNE = "DELETE FROM rate_limit_buckets WHERE full_at < now()"

_ACQUIRE_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtextextended(CAST(:org AS text) || '/' || CAST(:bucket AS text), 7))"
)
_ACQUIRE = """
INSERT INTO websocket_connections (organization_id, bucket, id, process_id, lease_until)
SELECT :org, :bucket, :id, :process, now() + make_interval(secs => :lease)
WHERE (
    SELECT count(*) FROM websocket_connections
    WHERE organization_id = :org AND bucket = :bucket AND lease_until > now()
) < :cap
RETURNING id
"""
_RELEASE = (
    "DELETE FROM websocket_connections "
    "WHERE organization_id = :org AND bucket = :bucket AND id = :id"
)
_RENEW = (
    "UPDATE websocket_connections SET lease_until = now() + make_interval(secs => :lease) "
    "WHERE process_id = :process"
)
_RELEASE_PROCESS = "DELETE FROM websocket_connections WHERE process_id = :process"
_PRUNE_CONNECTIONS = "DELETE FROM websocket_connections WHERE lease_until < now()"


@dataclass(frozen=True, slots=True)
class BucketState:
    available: float
    granted: bool


class RateLimitRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def spend(
        self,
        org: str,
        bucket: str,
        *,
        cost: int,
        maximum: int,
        rate: float,
        refund: int = 0,
    ) -> BucketState:
        """Take ``cost`` points from the bucket if it holds them (after refilling it)."""
        row = await self._db.fetch_one(
            _SPEND,
            {
                "org": org,
                "bucket": bucket,
                "cost": cost,
                "maximum": maximum,
                "rate": rate,
                "refund": refund,
            },
        )
        assert row is not None
        return BucketState(available=float(row["available"]), granted=bool(row["granted"]))

    async def prune(self) -> None:
        await self._db.execute(_PRUNE)


class ConnectionSlotRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def acquire(
        self, org: str, bucket: str, *, slot_id: str, process: str, cap: int, lease: int
    ) -> bool:
        """Take one of ``cap`` slots of the bucket (live leases only); False when all are
        taken. Serialized per bucket by an advisory lock, so concurrent connects from any
        number of processes never exceed the cap."""
        async with self._db.transaction():
            await self._db.execute(_ACQUIRE_LOCK, {"org": org, "bucket": bucket})
            row = await self._db.fetch_one(
                _ACQUIRE,
                {
                    "org": org,
                    "bucket": bucket,
                    "id": slot_id,
                    "process": process,
                    "cap": cap,
                    "lease": lease,
                },
            )
        return row is not None

    async def release(self, org: str, bucket: str, slot_id: str) -> None:
        await self._db.execute(_RELEASE, {"org": org, "bucket": bucket, "id": slot_id})

    async def renew(self, process: str, lease: int) -> None:
        """Extend every slot this process holds (its heartbeat); a process that dies stops
        renewing and its slots lapse."""
        await self._db.execute(_RENEW, {"process": process, "lease": lease})
        await self._db.execute(_PRUNE_CONNECTIONS)

    async def release_process(self, process: str) -> None:
        await self._db.execute(_RELEASE_PROCESS, {"process": process})
