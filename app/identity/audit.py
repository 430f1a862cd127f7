"""The audit log: one entry per mutation call of an authenticated caller, with who made it
(how it signed in, its subject or API key prefix, its role), the request id, the mutation, the
ids it named or returned, and how it ended. Admins read it; nothing changes or deletes it.

The entry is written after the mutation, in its own statement: a mutation's own transaction
has ended by then (each service manages its transactions), so a failure to write the entry is
logged as an error and cannot undo what the mutation did.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core.auth import AuthMethod, Principal, Role
from app.core.ids import new_id
from db.connection import Database, Row
from db.repositories.audit_log import AuditLogRepository

__all__ = ["AuditEntry", "AuditLog", "Outcome"]

log = logging.getLogger(__name__)

_MAX_TARGETS = 20


class Outcome(enum.Enum):
    OK = "ok"
    ERROR = "error"  # payload errors (their codes are kept)
    REFUSED = "refused"  # FORBIDDEN and other request errors
    FAILED = "failed"  # an unexpected error


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    org: str
    occurred_at: datetime
    actor_type: AuthMethod
    actor: str
    role: Role
    action: str
    target_ids: tuple[str, ...]
    outcome: Outcome
    error_codes: tuple[str, ...]
    request_id: str | None

    @classmethod
    def from_row(cls, row: Row) -> AuditEntry:
        return cls(
            id=row["id"],
            org=row["organization_id"],
            occurred_at=row["occurred_at"],
            actor_type=AuthMethod(row["actor_type"]),
            actor=row["actor"],
            role=Role(row["role"]),
            action=row["action"],
            target_ids=tuple(row["target_ids"]),
            outcome=Outcome(row["outcome"]),
            error_codes=tuple(row["error_codes"]),
            request_id=row["request_id"],
        )


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._entries = AuditLogRepository(db)
        self.failures = 0

    async def by_id(self, org: str, entry_id: str) -> AuditEntry | None:
        """An entry by id, for `node`."""
        (row,) = await self._entries.by_ids(org, [entry_id])
        return None if row is None else AuditEntry.from_row(row)

    async def record(
        self,
        principal: Principal,
        *,
        action: str,
        target_ids: Sequence[str],
        outcome: Outcome,
        error_codes: Sequence[str] = (),
        request_id: str | None,
    ) -> None:
        """Append an entry; a failure is logged (and counted), never raised."""
        targets = list(dict.fromkeys(target_ids))[:_MAX_TARGETS]
        try:
            await self._entries.add(
                {
                    "organization_id": principal.org,
                    "id": new_id("aud"),
                    "occurred_at": datetime.now(UTC),
                    "actor_type": principal.method.value,
                    "actor": principal.who,
                    "role": principal.role.value,
                    "action": action,
                    "target_ids": targets,
                    "outcome": outcome.value,
                    "error_codes": list(dict.fromkeys(error_codes)),
                    "request_id": request_id,
                }
            )
        except Exception as exc:  # noqa: BLE001 - the mutation is done; say so loudly
            self.failures += 1
            log.error(
                "audit entry not written for %s by %s in %s: %s",
                action,
                principal.who,
                principal.org,
                type(exc).__name__,
            )

    async def page(
        self,
        org: str,
        *,
        since: datetime | None,
        until: datetime | None,
        actor: str | None,
        action: str | None,
        first: int,
        after: str | None,
        newest: bool,
    ) -> tuple[list[AuditEntry], bool]:
        filters = _filters(since, until, actor, action) | {"newest_first": newest}
        found = await self._entries.page(org, filters, first=first, after=after)
        return [AuditEntry.from_row(row) for row in found.rows], found.has_next

    async def count(
        self,
        org: str,
        *,
        since: datetime | None,
        until: datetime | None,
        actor: str | None,
        action: str | None,
    ) -> int:
        return await self._entries.count(org, _filters(since, until, actor, action))


def _filters(
    since: datetime | None, until: datetime | None, actor: str | None, action: str | None
) -> dict[str, object]:
    return {"since": since, "until": until, "actor": actor, "action": action}
