"""The usage benchmark runs end to end in its smoke size: a real server process ingests events
through usageRecordBatch and POST /usage/events, a COPY of the same rows is timed next to them,
events are loaded for the queries, and every result is checked against the stored events (the
benchmark exits non-zero otherwise). No timing is asserted; the benchmark proper is
`bench/usage.py` (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[1]


def test_usage_ingestion_and_queries_are_measured_and_correct(
    server_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "usage.json"
    env = {**os.environ, "DATABASE_URL": server_url}
    done = subprocess.run(
        [sys.executable, "bench/usage.py", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["checks"] == {"passed": True, "problems": []}
    ingestion = result["ingestion"]
    for rate in ("graphql_events_per_s", "http_events_per_s", "copy_events_per_s"):
        assert ingestion[rate] > 0
    assert ingestion["http_over_copy"] > 0
    assert ingestion["graphql_over_copy"] > 0
    assert result["config"]["events"] == 20_000
    assert result["config"]["stored"] == 200_000
    assert result["current_usage"]["requests"] >= 100
    assert result["current_usage"]["p99_ms"] > 0
    assert result["usage_by_day"]["buckets"] == 30
