"""The benchmarks run end to end in their smoke size. The GraphQL-next-to-baseline one: both
servers start on one database, answer the same `data` for every request (the benchmark checks
that itself and exits non-zero otherwise), and each request gets a rate. No timing is asserted;
the benchmarks proper are `bench/graphql_vs_baseline.py` and `bench/outbox.py`
(docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[1]


def test_graphql_and_the_hand_written_baseline_answer_the_same_and_are_measured(
    server_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "DATABASE_URL": server_url}
    done = subprocess.run(
        [sys.executable, "bench/graphql_vs_baseline.py", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [row["request"] for row in rows] == [
        "plan(id) with price",
        "plans(first: 20)",
        "payments(first: 100) with customer and refunds",
    ]
    for row in rows:
        assert row["graphql_rps"] > 0
        assert row["baseline_rps"] > 0
        assert row["ratio"] > 0


def test_the_sign_in_latency_benchmark_measures_every_way_of_signing_in(
    server_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "auth.json"
    env = {**os.environ, "DATABASE_URL": server_url}
    done = subprocess.run(
        [sys.executable, "bench/auth_latency.py", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [row["method"] for row in rows] == [
        "no credential",
        "dev JWT (HS256)",
        "API key",
        "OIDC RS256",
        "OIDC ES256",
    ]
    for row in rows:
        assert row["p50_ms"] > 0
        assert row["p99_ms"] >= row["p50_ms"]
    # The server fetched the issuer's keys once for every OIDC request it verified.
    assert "JWKS fetched 1 time(s)" in done.stdout


def test_the_outbox_benchmark_delivers_everything_and_measures_both_parts(
    server_url: str, tmp_path: Path
) -> None:
    """bench/outbox.py in its smoke size: every event written is delivered to the loopback
    receiver (it exits non-zero otherwise), and both parts report figures."""
    out = tmp_path / "outbox.json"
    env = {**os.environ, "DATABASE_URL": server_url}
    done = subprocess.run(
        [sys.executable, "bench/outbox.py", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["transaction"]) == {"without outbox", "with outbox"}
    assert result["transaction"]["with outbox"]["p50_ms"] > 0
    assert result["throughput"]["events"] == 100
    assert result["throughput"]["outbox_events_per_second"] > 0
    assert result["throughput"]["bare_posts_per_second"] > 0
