"""A small run of bench/stats_queries.py: it loads, builds the rollups, and finds the same figures
from the rollups as from plain aggregate queries over the raw tables (it asserts that itself).
No timing is asserted; the benchmark proper is a separate command."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.once

BENCH = Path(__file__).resolve().parents[1] / "bench" / "stats_queries.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_statistics", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_the_statistics_benchmark_runs_small_and_agrees_with_raw_queries(
    server_url: str,
) -> None:
    bench = _bench()
    report = await bench.run(server_url, payments=3000, subscriptions=600, runs=1)
    assert [row.name.split(",")[0].split(" (")[0] for row in report.rows] == [
        "revenueStats",
        "revenueStats",
        "subscriptionStats",
        "dashboard snapshot",
    ]
    assert report.rollup_rows["subscription_stat_events"] == 600
    assert "raw/rollups" in report.table()
