"""Fixed-window request counters shared by every process through PostgreSQL."""

from __future__ import annotations

from db.connection import Database

__all__ = ["RateLimitRepository"]

_HIT = """
INSERT INTO rate_limit_windows AS w (organization_id, bucket, window_start, hits)
VALUES (:org, :bucket, date_trunc('minute', now()), 1)
ON CONFLICT (organization_id, bucket, window_start) DO UPDATE SET hits = w.hits + 1
RETURNING hits, 60 - extract(epoch FROM now() - w.window_start)::int AS retry_after
"""

_PRUNE = "DELETE FROM rate_limit_windows WHERE window_start < now() - interval '5 minutes'"


class RateLimitRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def hit(self, org: str, bucket: str) -> tuple[int, int]:
        """Count one request; return the hits in this minute and seconds until it ends."""
        row = await self._db.fetch_one(_HIT, {"org": org, "bucket": bucket})
        assert row is not None
        return int(row["hits"]), max(1, int(row["retry_after"]))

    async def prune(self) -> None:
        await self._db.execute(_PRUNE)
