"""What posting to the ledger adds to the transaction that records a payment.

In one run, against DATABASE_URL (or an embedded PostgreSQL it starts), alternating:
  - baseline: a transaction that writes one row (a payment's status change stands for it),
  - direct: the same plus the ledger posting of a payment without an invoice (one INSERT),
  - invoice: the same plus the posting of a payment of an invoice (the invoice's position is
    read first, for a written-off debt, then one INSERT).
Prints p50 / p99 of each in milliseconds and what the ledger adds at the median.

    .venv/bin/python bench/ledger_cost.py [iterations]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.core.ids import new_id
from app.ledger.postings import Ledger, Refs
from db.connection import Database
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

WARMUP = 50


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def run(url: str, iterations: int) -> dict[str, list[float]]:
    await apply_migrations(url)
    db = Database(url, min_size=1, max_size=2)
    await db.connect()
    ledger = Ledger(db)
    org, customer = f"bench{uuid.uuid4().hex[:8]}", new_id("cus")
    await db.execute(
        "INSERT INTO customers (organization_id, id, email, name) "
        "VALUES (:org, :id, 'bench@example.com', 'Bench')",
        {"org": org, "id": customer},
    )
    touch = "UPDATE customers SET updated_at = now() WHERE organization_id = :org AND id = :id"

    async def baseline() -> None:
        async with db.transaction():
            await db.execute(touch, {"org": org, "id": customer})

    async def direct() -> None:
        async with db.transaction():
            await db.execute(touch, {"org": org, "id": customer})
            refs = Refs(customer, "USD", payment_id=new_id("pay"))
            await ledger.payment_succeeded(org, refs, 1999)

    async def invoice() -> None:
        async with db.transaction():
            await db.execute(touch, {"org": org, "id": customer})
            refs = Refs(customer, "USD", payment_id=new_id("pay"), invoice_id=new_id("inv"))
            await ledger.payment_succeeded(org, refs, 1999)

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "baseline": baseline,
        "direct payment": direct,
        "invoice payment": invoice,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for n in range(WARMUP + iterations):
            for name, variant in variants.items():
                started = time.perf_counter()
                await variant()
                if n >= WARMUP:
                    samples[name].append((time.perf_counter() - started) * 1000)
    finally:
        await db.disconnect()
    return samples


def report(samples: dict[str, list[float]]) -> None:
    base = statistics.median(samples["baseline"])
    print(f"{'transaction':<18}{'p50 ms':>9}{'p99 ms':>9}{'added ms':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        added = "" if name == "baseline" else f"{median - base:10.3f}"
        print(f"{name:<18}{median:9.3f}{percentile(values, 0.99):9.3f}{added}")


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    url = os.environ.get("DATABASE_URL")
    if url:
        report(asyncio.run(run(url, iterations)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data")
        try:
            report(asyncio.run(run(server.start(), iterations)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
