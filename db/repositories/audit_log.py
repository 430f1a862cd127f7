"""SQL for the audit log (who called which mutation, and how it ended)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from db.repositories.base import Filters, TableRepository
from db.tables import audit_log

__all__ = ["AuditLogRepository"]


class AuditLogRepository(TableRepository):
    table = audit_log

    async def add(self, values: Mapping[str, Any]) -> None:
        await self._db.execute(sa.insert(audit_log).values(**values))

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        c = audit_log.c
        if filters.get("since") is not None:
            conditions.append(c.occurred_at >= filters["since"])
        if filters.get("until") is not None:
            conditions.append(c.occurred_at < filters["until"])
        if filters.get("actor"):
            conditions.append(c.actor == filters["actor"])
        if filters.get("action"):
            conditions.append(c.action == filters["action"])
        return conditions
