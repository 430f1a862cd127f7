"""Customers and their credit balances."""

from app.customers.balances import CreditBalances
from app.customers.loaders import CustomerLoaders
from app.customers.service import (
    UPDATABLE,
    Address,
    Customer,
    CustomerDraft,
    CustomerService,
    TaxExempt,
    TaxId,
)

__all__ = [
    "UPDATABLE",
    "Address",
    "CreditBalances",
    "Customer",
    "CustomerDraft",
    "CustomerLoaders",
    "CustomerService",
    "TaxExempt",
    "TaxId",
]
