"""SQL for customers."""

from __future__ import annotations

import sqlalchemy as sa

from db.repositories.base import Filters, TableRepository
from db.tables import customers

__all__ = ["CustomerRepository"]


class CustomerRepository(TableRepository):
    table = customers
    unique = ("external_ref",)

    def conditions(self, org: str, filters: Filters) -> list[sa.ColumnElement[bool]]:
        conditions = super().conditions(org, filters)
        if filters.get("email"):
            conditions.append(sa.func.lower(customers.c.email) == filters["email"].lower())
        if filters.get("external_ref"):
            conditions.append(customers.c.external_ref == filters["external_ref"])
        if filters.get("id"):
            conditions.append(customers.c.id == filters["id"])
        return conditions
