"""Node.js projects for the client tests: installed once per lock file, built once per source.

`npm ci` runs in a copy of the project under the cache folder (``BILLING_NODE_CACHE``, else
``$XDG_CACHE_HOME/billing-node``, else ``~/.cache/billing-node``), in a folder named by the hash
of package.json and package-lock.json, so the work tree gets no node_modules and a second run
installs nothing. The copy keeps the project's path relative to the repository (with
schema.graphql at its root), so relative paths such as the portal's ``../../schema.graphql``
hold. Without node/npm the tests are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

__all__ = [
    "REPO",
    "build_portal",
    "cache_root",
    "installed",
    "require_node",
    "source_digest",
]

REPO = Path(__file__).resolve().parents[2]
IGNORED = {"node_modules", "dist", "__generated__", ".vite"}


def require_node() -> tuple[str, str]:
    """Paths of node and npm; skips the test without them (fails it when CI=true)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    reason = "node and npm are needed (apt-get install -y nodejs npm)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def cache_root() -> Path:
    configured = os.environ.get("BILLING_NODE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "billing-node"


def _files(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not IGNORED.intersection(relative.parts):
            yield path


def source_digest(folder: Path, *extra: Path) -> str:
    """A hash of the project's own files (not node_modules, builds or generated code)."""
    digest = hashlib.sha256()
    for path in [*_files(folder), *extra]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], cwd: Path, timeout: float, what: str) -> float:
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr}")
    return time.monotonic() - started


def installed(project: Path) -> Path:
    """A copy of ``project`` (a folder of the repository with package.json and
    package-lock.json) whose node_modules `npm ci` installed; the copy's folder is returned."""
    _, npm = require_node()
    manifest = project / "package.json"
    digest = hashlib.sha256(
        manifest.read_bytes() + b"\0" + (project / "package-lock.json").read_bytes()
    ).hexdigest()[:16]
    relative = project.relative_to(REPO)
    root = cache_root() / f"{relative.name}-{digest}"
    target = root / relative
    with _locked(cache_root() / f"{relative.name}-{digest}.lock"):
        if not (target / "node_modules" / ".billing-installed").exists():
            shutil.rmtree(root, ignore_errors=True)
            target.mkdir(parents=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy2(project / name, target / name)
            seconds = _run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                target,
                600,
                f"npm ci in {relative}",
            )
            (target / "node_modules" / ".billing-installed").write_text(f"{seconds:.1f}\n")
            print(f"\nnpm ci {relative}: {seconds:.1f} s")
    return target


def _sync(project: Path, target: Path) -> None:
    """Make ``target``'s own files those of ``project`` (node_modules stays)."""
    for path in target.iterdir():
        if path.name not in ("node_modules", "package.json", "package-lock.json"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in _files(project):
        destination = target / path.relative_to(project)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def build_portal() -> Path:
    """examples/portal built (`npm run build`: relay-compiler, then vite build) against
    schema.graphql; the folder of the copy that holds ``dist/`` and the vite config. Reused
    while examples/portal and schema.graphql are unchanged."""
    project = REPO / "examples" / "portal"
    schema = REPO / "schema.graphql"
    target = installed(project)
    root = target.parents[1]
    digest = source_digest(project, schema)
    with _locked(root.with_suffix(".lock")):
        stamp = target / "dist" / ".billing-source"
        if stamp.exists() and stamp.read_text() == digest:
            return target
        _sync(project, target)
        shutil.copy2(schema, root / "schema.graphql")
        _, npm = require_node()
        seconds = _run([npm, "run", "build"], target, 600, "npm run build in examples/portal")
        stamp.write_text(digest)
        print(f"\nportal build: {seconds:.1f} s")
    return target
