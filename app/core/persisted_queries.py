"""Persisted-query manifests: the operations a front end registers ahead of time, by the
SHA-256 of their text (``schema/persisted.py`` serves them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["load_manifest", "persisted_hash"]


def persisted_hash(query: str) -> str:
    """The id of a document: lowercase hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(query.encode("utf-8")).hexdigest()


def load_manifest(path: str | Path) -> dict[str, str]:
    """The operations of a manifest file, by hash. Accepted formats: Apollo's persisted query
    manifest (``{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body",
    ...}]}``) and a plain object of hash to document (Relay's ``persistConfig`` output).
    Every id must be the SHA-256 of its document: a manifest made with another algorithm
    would never match what clients send, so it is refused with the first wrong entry."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the manifest {str(path)!r}: {exc}") from None
    if isinstance(raw, dict) and raw.get("format") == "apollo-persisted-query-manifest":
        entries = raw.get("operations")
        if not isinstance(entries, list):
            raise ValueError("an Apollo manifest needs an `operations` list")
        pairs = [(item.get("id"), item.get("body")) for item in entries if isinstance(item, dict)]
        if len(pairs) != len(entries):
            raise ValueError("every operation of an Apollo manifest is an object")
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise ValueError("a manifest is a JSON object")
    operations: dict[str, str] = {}
    for key, body in pairs:
        if not isinstance(key, str) or not isinstance(body, str):
            raise ValueError("every operation has a string id and a string document")
        if persisted_hash(body) != key.lower():
            raise ValueError(
                f"the id {key!r} is not the SHA-256 of its document; generate the manifest "
                "with SHA-256 (Relay: persistConfig algorithm SHA256)"
            )
        operations[key.lower()] = body
    return operations
