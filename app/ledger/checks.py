"""``billing verify``: recompute every money invariant over the whole database (or one
organization) and report each violation (docs/ledger.md lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.connection import Database
from db.repositories.ledger.audit import CHECKS, LedgerAudit

__all__ = ["Violation", "verify"]


@dataclass(frozen=True, slots=True)
class Violation:
    check: str
    rule: str
    row: dict[str, Any]

    def __str__(self) -> str:
        detail = ", ".join(f"{k}={v}" for k, v in self.row.items())
        return f"{self.check}: {detail}"


async def verify(db: Database, org: str | None = None) -> list[Violation]:
    """Every violation of every invariant; an empty list when the books hold."""
    audit = LedgerAudit(db)
    found: list[Violation] = []
    for name, (rule, _) in CHECKS.items():
        for row in await audit.violations(name, org):
            found.append(Violation(name, rule, dict(row)))
    return found
