"""Domain-free building blocks: money, ids, errors, clock, settings, auth, idempotency,
listing, pub/sub. Imported by module (``app.core.money``); nothing here knows a domain or a
framework.
"""
