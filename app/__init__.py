"""Billing service: application, domain services and adapters."""

__version__ = "0.1.0"
