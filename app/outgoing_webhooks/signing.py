"""Signatures of outgoing webhooks: HMAC-SHA256 over ``"{timestamp}.{body}"`` with the
endpoint's secret, sent as ``Billing-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`` (a second
``v1`` while a rotated-out secret is still valid). ``verify`` is what a receiver does."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "new_secret",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Billing-Signature"
EVENT_ID_HEADER = "Billing-Event-Id"
EVENT_TYPE_HEADER = "Billing-Event-Type"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A signing secret: 256 random bits."""
    return "whsec_" + secrets.token_urlsafe(32)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets_: Iterable[str], timestamp: int, body: bytes) -> str:
    """The signature header's value: one ``v1`` per secret, current secret first."""
    return ",".join([f"t={timestamp}", *(f"v1={_digest(s, timestamp, body)}" for s in secrets_)])


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when ``header`` carries a valid signature of ``body`` by ``secret`` made within
    ``tolerance`` seconds of now (the docs show the same in five lines)."""
    pairs = [item.split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [v for k, v in pairs if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(v, expected) for k, v in pairs if k == "v1")
