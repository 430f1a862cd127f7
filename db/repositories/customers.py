"""SQL for customers."""

from __future__ import annotations

import sqlalchemy as sa

from db.repositories.base import Filters
from db.repositories.stripe.mirror import StripeMirrorRepository
from db.tables import customers

__all__ = ["CustomerRepository"]


class CustomerRepository(StripeMirrorRepository):
    table = customers
    unique = ("external_ref",)

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        c = self._c
        if filters.get("email"):
            conditions.append(sa.func.lower(c.email) == filters["email"].lower())
        if filters.get("external_ref"):
            conditions.append(c.external_ref == filters["external_ref"])
        if filters.get("id"):
            conditions.append(c.id == filters["id"])
        return conditions
