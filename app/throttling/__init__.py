"""Cost budgets per caller (rate limits), shared by HTTP, WebSocket and PDF downloads."""

from app.throttling.budget import Budget, Caller, ConnectionSlots, Throttle, ThrottleStatus

__all__ = ["Budget", "Caller", "ConnectionSlots", "Throttle", "ThrottleStatus"]
