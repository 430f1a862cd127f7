"""Opaque, prefixed, time-sortable identifiers (``plan_01jd…``).

48 bits of milliseconds followed by 80 random bits, in lower-case Crockford base32, so ids sort
by creation time as plain strings and a stray id in a log says what it is.
"""

from __future__ import annotations

import os
import re
import time

__all__ = ["PREFIXES", "has_prefix", "monotonic_ids", "new_id"]

PREFIXES = {
    "plan": "plan",
    "customer": "cus",
    "subscription": "sub",
    "payment": "pay",
    "invoice": "inv",
    "invoice_line": "il",
    "refund": "re",
    "usage": "use",
    "billable_metric": "bm",
    "metered_price": "mp",
    "usage_charge": "uc",
    "credit_note": "cn",
    "coupon": "coup",
    "tax_rate": "txr",
    "event": "evt",
    "api_key": "key",
    "audit_entry": "aud",
    "webhook_endpoint": "we",
    "webhook_delivery": "whd",
    "reconciliation_repair": "rcn",  # whd_<event body>_<endpoint body>: one per (event, endpoint)
}

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = [_ALPHABET[n >> 5] + _ALPHABET[n & 31] for n in range(1024)]
_BODY = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")


def new_id(prefix: str, *, at_ms: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return _encode(prefix, (ms << 80) | int.from_bytes(os.urandom(10), "big"))


_last_monotonic = 0


def monotonic_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids that sort after every id this process made with this function before, in
    the order given (ids made in the same millisecond count up from a random start), so rows
    written one after the other list in that order."""
    global _last_monotonic
    value = (time.time_ns() // 1_000_000 << 80) | int.from_bytes(os.urandom(8), "big")
    value = max(value, _last_monotonic + 1)
    _last_monotonic = value + count - 1
    # The same as ``_encode`` for each, faster for a batch (usage ingestion makes a thousand at
    # a time): the last 4 characters (20 bits) from a table, the other 22 encoded once per run.
    ids = []
    head_value, head = -1, ""
    for v in range(value, value + count):
        if v >> 20 != head_value:
            head_value = v >> 20
            head = _encode(prefix, v)[:-4]
        ids.append(head + _PAIRS[(v >> 10) & 1023] + _PAIRS[v & 1023])
    return ids


def _encode(prefix: str, value: int) -> str:
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return f"{prefix}_{''.join(reversed(chars))}"


def has_prefix(value: str, prefix: str) -> bool:
    """True when ``value`` is shaped like an id we issue with ``prefix``."""
    head, sep, body = value.partition("_")
    return sep == "_" and head == prefix and bool(_BODY.match(body))
