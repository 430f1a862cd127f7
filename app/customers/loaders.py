"""Customers' batching loaders, scoped to one organization (assembled by `app.context`)."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.core.money import Money
from app.customers.balances import CreditBalances
from app.customers.service import Customer, CustomerService

__all__ = ["CustomerLoaders"]


class CustomerLoaders:
    """Customers by id and their credit balances: one statement per batch."""

    def __init__(self, customers: CustomerService, balances: CreditBalances, org: str) -> None:
        async def customers_by_ids(ids: list[str]) -> list[Customer | None]:
            return await customers.read.by_ids(org, ids)

        async def balances_of_customers(customer_ids: list[str]) -> list[list[Money]]:
            return await balances.of_customers(org, customer_ids)

        self.customer_by_id: DataLoader[str, Customer | None] = DataLoader(customers_by_ids)
        self.balances_by_customer_id: DataLoader[str, list[Money]] = DataLoader(
            balances_of_customers
        )
