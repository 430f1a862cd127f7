"""The layout rules of docs/architecture.md are executable: the import contract in pyproject.toml
(``[tool.importlinter]``) holds on the real tree, and the same contract fails on a tree that breaks
it (a miniature of the project's packages built in a temporary folder, with one bad import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

DOMAINS = [
    "catalog",
    "customers",
    "entitlements",
    "identity",
    "invoicing",
    "ledger",
    "live",
    "organizations",
    "outgoing_webhooks",
    "payments",
    "reconciliation",
    "rollups",
    "statistics",
    "subscriptions",
    "throttling",
    "usage",
]


def lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def contract_section() -> str:
    """The ``[tool.importlinter]`` tables of the real pyproject.toml, verbatim."""
    kept: list[str] = []
    inside = False
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            inside = line.startswith(("[tool.importlinter]", "[[tool.importlinter."))
        if inside:
            kept.append(line)
    return "\n".join(kept) + "\n"


def test_the_real_tree_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_app_has_at_most_a_dozen_modules_at_its_top() -> None:
    top = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert len(top) <= 12, top


def miniature(tmp_path: Path) -> Path:
    """The project's packages with one empty module each, under the real contract."""
    modules = [
        "app/cli.py",
        "app/context.py",
        "app/services.py",
        "app/worker.py",
        "app/core/money.py",
        "app/web/app.py",
        "app/demo/runner.py",
        "app/stripe/gateway.py",
        "schema/build.py",
        "resolvers/plans.py",
        "db/tables.py",
        *(f"app/{domain}/model.py" for domain in DOMAINS),
    ]
    for module in modules:
        path = tmp_path / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('"""Empty."""\n', encoding="utf-8")
        for package in [path.parent, *path.parent.parents]:
            if package == tmp_path:
                break
            (package / "__init__.py").touch()
    (tmp_path / "pyproject.toml").write_text(contract_section(), encoding="utf-8")
    return tmp_path


def lint_miniature(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return lint(root, env)


def test_the_contract_holds_on_a_miniature_that_follows_it(tmp_path: Path) -> None:
    root = miniature(tmp_path)
    (root / "app/subscriptions/model.py").write_text("import app.invoicing\n", encoding="utf-8")
    (root / "schema/build.py").write_text("import app.subscriptions\n", encoding="utf-8")
    result = lint_miniature(root)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        # core reaching up into the web layer
        ("app/core/money.py", "import app.web", "web -> schema -> resolvers"),
        # a lower domain using a higher one
        ("app/customers/model.py", "import app.invoicing", "A domain package uses only"),
        # a domain reaching into another one's submodule instead of its __init__
        (
            "app/subscriptions/model.py",
            "import app.invoicing.model",
            "Only app.invoicing itself imports its submodules",
        ),
    ],
)
def test_a_deliberate_violation_breaks_the_contract(
    tmp_path: Path, module: str, bad_import: str, broken: str
) -> None:
    root = miniature(tmp_path)
    (root / module).write_text(bad_import + "\n", encoding="utf-8")
    result = lint_miniature(root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    report = result.stdout.split("Broken contracts", 1)[1]
    assert broken in report
    assert bad_import.split()[-1] in report
