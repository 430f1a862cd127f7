"""How fast an abusive GraphQL document is refused, next to a normal small query.

Runs the app in-process against DATABASE_URL (or an embedded PostgreSQL it starts) with a local
Stripe emulator, and times, in one run:
  - a small authenticated query (`serviceInfo` + `plans(first: 5)`),
  - a document over the cost limit (nested connections),
  - a document over the alias limit,
  - a document over the depth limit,
  - a document over the token limit.
Prints the median and p99 of each and its ratio to the small query.

    .venv/bin/python bench/abuse.py [iterations]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.core.auth import Role, mint_token
from app.core.settings import Settings
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from app.web.app import create_app
from db.embedded import EmbeddedPostgres
from db.migrate import apply_migrations

DOCUMENTS = {
    "small query": "{ serviceInfo { name } plans(first: 5) { edges { node { id } } } }",
    "over cost": "{ plans(first: 100) { edges { node { id code name tier active } } } }",
    "over aliases": "{ " + " ".join(f"a{i}: serviceInfo {{ name }}" for i in range(200)) + " }",
    "over depth": "{ plans { edges { node { price { currency } } } } }",
    "over tokens": "{ serviceInfo { " + " ".join(["name"] * 5000) + " } }",
}


async def main(iterations: int) -> None:
    folder = tempfile.mkdtemp(prefix="billing-bench-")
    postgres = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        postgres = EmbeddedPostgres(Path(folder) / "pg")
        url = postgres.start()
    emulator = StripeEmulator()
    emulator.start()
    try:
        await apply_migrations(url)
        settings = Settings(
            env="test",
            home=Path(folder),
            database_url=url,
            stripe_api_key=EMULATOR_API_KEY,
            stripe_api_base=emulator.base_url,
            jwt_secret="b" * 48,
            graphql_max_cost=300,
            graphql_max_depth=3,
            rate_limit_restore_rate=0,
            rate_limit_anonymous_restore_rate=0,
        )
        app = create_app(settings)
        bearer = mint_token(settings, org="bench", role=Role.ADMIN, subject="bench")
        headers = {"authorization": f"Bearer {bearer}"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                timings: dict[str, list[float]] = {}
                for name, document in DOCUMENTS.items():
                    samples = []
                    for _ in range(iterations):
                        started = time.perf_counter()
                        response = await http.post(
                            "/graphql", json={"query": document}, headers=headers
                        )
                        samples.append((time.perf_counter() - started) * 1000)
                        refused = "errors" in response.json()
                        if refused != (name != "small query"):
                            raise SystemExit(f"{name}: unexpected outcome {response.text[:200]}")
                    timings[name] = sorted(samples)
        base = statistics.median(timings["small query"])
        print(f"{'document':<14} {'median ms':>10} {'p99 ms':>8} {'x small':>8}")
        for name, samples in timings.items():
            median = statistics.median(samples)
            p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            print(f"{name:<14} {median:>10.2f} {p99:>8.2f} {median / base:>8.2f}")
    finally:
        emulator.stop()
        if postgres is not None:
            postgres.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
