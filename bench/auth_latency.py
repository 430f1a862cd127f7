"""What signing in adds to a request, per way of signing in, on a trivial query.

Starts a `billing serve` process on loopback (its own database on DATABASE_URL's server, or an
embedded PostgreSQL; a localstripe emulator), a local OpenID Connect issuer on loopback (an
RSA and an EC key, discovery and JWKS), and sends `{ serviceInfo { name } }` one request at a
time over keep-alive HTTP, in alternating rounds, with:

  - no credential (the baseline),
  - a development token (HS256, JWT_SECRET; `billing token`),
  - an API key (bk_test_…; cached per process, so no database read per request),
  - an OIDC token signed RS256, and one signed ES256 (keys cached after the first fetch).

Prints p50 and p99 per method and what each adds to the baseline's p50; then the cost of each
verifier alone, in process: checking the credential every time, and as the service runs (a
verified JWT is remembered for 30 s; API keys come from their own cache either way).

    .venv/bin/python bench/auth_latency.py            # 5 rounds of 400 requests per method
    .venv/bin/python bench/auth_latency.py --smoke    # seconds: what CI runs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import jwt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.auth import Principal, Role, mint_token  # noqa: E402
from app.core.pubsub import EventBroker  # noqa: E402
from app.core.settings import OidcIssuer, Settings  # noqa: E402
from app.identity import ApiKeys, Authenticator, OidcVerifier  # noqa: E402
from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator, free_port  # noqa: E402
from db.connection import Database  # noqa: E402
from db.embedded import EmbeddedPostgres  # noqa: E402
from db.migrate import apply_migrations  # noqa: E402
from tests.identity.oidc_issuer import SigningKey, local_issuer  # noqa: E402

QUERY = {"query": "{ serviceInfo { name } }"}
SECRET = "bench-secret-" + uuid.uuid4().hex + uuid.uuid4().hex
METHODS = ("no credential", "dev JWT (HS256)", "API key", "OIDC RS256", "OIDC ES256")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh database on DATABASE_URL's server (dropped after), or an embedded server."""
    server = os.environ.get("DATABASE_URL")
    if not server:
        with tempfile.TemporaryDirectory(prefix="billing-bench-") as folder:
            postgres = EmbeddedPostgres(Path(folder) / "pg")
            try:
                yield postgres.start()
            finally:
                postgres.stop()
        return
    name = f"bench_auth_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base, _, query = server.partition("?")
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def spawn(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--no-migrate",
                "--no-worker",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def server(process: subprocess.Popen[bytes], url: str, log: str) -> AsyncIterator[str]:
    """``url`` once the process answers /ready; stopped on exit."""
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"billing serve did not start; see {log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/ready", timeout=1)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def measure(http: httpx.AsyncClient, headers: dict[str, str], requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await http.post("/graphql", json=QUERY, headers=headers)
        elapsed = time.perf_counter() - started
        body = response.json()
        if response.status_code != 200 or "errors" in body:
            raise SystemExit(f"unexpected answer: {response.status_code} {body}")
        samples.append(elapsed * 1000)
    return samples


async def run(
    url: str,
    issuer_url: str,
    keys: list[SigningKey],
    org: str,
    settings: Settings,
    rounds: int,
    requests: int,
) -> dict[str, list[float]]:
    dev = mint_token(settings, org=org, role=Role.ADMIN, subject="bench", ttl_seconds=3600)
    now = int(time.time())

    def oidc(key: SigningKey) -> str:
        claims = {
            "iss": issuer_url,
            "sub": "bench-staff",
            "aud": "billing-bench",
            "role": "admin",
            "iat": now,
            "exp": now + 3600,
        }
        return jwt.encode(claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid})

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        made = await http.post(
            "/graphql",
            json={
                "query": 'mutation { apiKeyCreate(input: {name: "bench", role: ADMIN}) '
                "{ key errors { code } } }"
            },
            headers={"authorization": f"Bearer {dev}"},
        )
        api_key = made.json()["data"]["apiKeyCreate"]["key"]
        headers = {
            METHODS[0]: {},
            METHODS[1]: {"authorization": f"Bearer {dev}"},
            METHODS[2]: {"authorization": f"Bearer {api_key}"},
            METHODS[3]: {"authorization": f"Bearer {oidc(keys[0])}"},
            METHODS[4]: {"authorization": f"Bearer {oidc(keys[1])}"},
        }
        for method in METHODS:  # warm up: connections, caches, the issuer's keys
            await measure(http, headers[method], 20)
        samples: dict[str, list[float]] = {m: [] for m in METHODS}
        for _ in range(rounds):
            for method in METHODS:
                samples[method] += await measure(http, headers[method], requests)
    return samples


async def in_process(
    url: str, issuer_url: str, keys: list[SigningKey], settings: Settings, calls: int
) -> dict[str, tuple[float, float]]:
    """Microseconds per ``Authenticator.authenticate`` call, without HTTP or GraphQL: checking
    the credential every time, and as the service runs (a verified JWT remembered)."""
    db = Database(url, min_size=1, max_size=2)
    await db.connect()
    try:
        api_keys = ApiKeys(db, EventBroker(url), mode="test")
        _, api_key = await api_keys.create(
            Principal("bench", "benchorg", Role.ADMIN), name="x", role=Role.ADMIN, expires_at=None
        )
        config = OidcIssuer(issuer=issuer_url, audience="billing-bench", org="benchorg")

        async def nobody(org: str, reference: str) -> str | None:
            return None

        oidc = OidcVerifier((config,), resolve_customer=nobody)
        remembering = Authenticator(settings, api_keys, oidc)
        checking = Authenticator(settings, api_keys, oidc, remember_seconds=0)
        now = int(time.time())
        claims = {"iss": issuer_url, "sub": "s", "aud": "billing-bench", "role": "admin"}
        claims |= {"iat": now, "exp": now + 3600}
        credentials = {
            METHODS[1]: mint_token(settings, org="benchorg", role=Role.ADMIN, subject="bench"),
            METHODS[2]: api_key,
            **{
                METHODS[3 + n]: jwt.encode(
                    claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid}
                )
                for n, key in enumerate(keys)
            },
        }
        timings: dict[str, tuple[float, float]] = {}
        for method, credential in credentials.items():
            found = []
            for auth in (checking, remembering):
                for _ in range(20):
                    await auth.authenticate(credential)
                started = time.perf_counter()
                for _ in range(calls):
                    await auth.authenticate(credential)
                found.append((time.perf_counter() - started) / calls * 1e6)
            timings[method] = (found[0], found[1])
        await oidc.close()
        return timings
    finally:
        await db.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="per method and round")
    parser.add_argument("--smoke", action="store_true", help="1 round of 30 requests")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rounds, requests = (1, 30) if args.smoke else (args.rounds, args.requests)
    org = f"bench{uuid.uuid4().hex[:8]}"
    keys = [SigningKey.make("RS256"), SigningKey.make("ES256")]
    emulator = StripeEmulator()
    emulator.start()
    try:
        with (
            database() as url,
            local_issuer(*keys) as issuer,
            tempfile.TemporaryDirectory() as home,
        ):
            asyncio.run(apply_migrations(url))
            settings = Settings(env="test", jwt_secret=SECRET)
            env = {
                **os.environ,
                "BILLING_ENV": "test",
                "BILLING_HOME": home,
                "DATABASE_URL": url,
                "STRIPE_API_KEY": EMULATOR_API_KEY,
                "STRIPE_API_BASE": emulator.base_url,
                "JWT_SECRET": SECRET,
                "OIDC_ISSUER": issuer.url,
                "OIDC_AUDIENCE": "billing-bench",
                "OIDC_ORG": org,
                "RATE_LIMIT_RESTORE_RATE": "0",
                "RATE_LIMIT_ANONYMOUS_RESTORE_RATE": "0",
                "LOG_LEVEL": "warning",
            }

            log = Path(home) / "serve.log"
            process, address = spawn(env, log)

            async def go() -> dict[str, list[float]]:
                async with server(process, address, str(log)) as base:
                    return await run(base, issuer.url, keys, org, settings, rounds, requests)

            samples = asyncio.run(go())
            fetches = issuer.hits["/jwks"]
            alone = asyncio.run(
                in_process(url, issuer.url, keys, settings, 50 if args.smoke else 2000)
            )
    finally:
        emulator.stop()
    baseline = statistics.median(samples[METHODS[0]])
    rows = []
    print(f"{{ serviceInfo {{ name }} }} over loopback HTTP, {rounds} x {requests} per method")
    print(f"{'method':<18} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'x none':>7}")
    for method in METHODS:
        p50, p99 = statistics.median(samples[method]), percentile(samples[method], 0.99)
        rows.append(
            {
                "method": method,
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "added_p50_ms": round(p50 - baseline, 3),
                "ratio": round(p50 / baseline, 3),
            }
        )
        print(f"{method:<18} {p50:>8.3f} {p99:>8.3f} {p50 - baseline:>8.3f} {p50 / baseline:>7.2f}")
    print(f"JWKS fetched {fetches} time(s) by the server")
    print("verification alone, in process (Authenticator.authenticate), us per call:")
    print(f"  {'method':<18} {'checked':>8} {'as run':>8}")
    for method, (checked, as_run) in alone.items():
        print(f"  {method:<18} {checked:>8.1f} {as_run:>8.1f}")
        row = next(r for r in rows if r["method"] == method)
        row["verify_us"], row["verify_remembered_us"] = round(checked, 1), round(as_run, 1)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
