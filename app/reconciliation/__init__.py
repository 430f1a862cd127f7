"""Reconciliation with Stripe: what a crash or a lost webhook left behind is read again from
Stripe and repaired (``billing reconcile``, and the worker every RECONCILE_EVERY_SECONDS)."""

from app.reconciliation.stripe_state import Reconciler, ReconcileReport, Repair

__all__ = ["ReconcileReport", "Reconciler", "Repair"]
