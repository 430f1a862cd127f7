"""Organization API keys: made, listed, rolled and revoked by admins; verified on every request
without a database round trip.

A key is ``bk_live_`` or ``bk_test_`` (the deployment's Stripe mode), 12 random characters that
find it (its *prefix*, shown to admins) and 32 more (190 bits) that only its holder knows. Only
the SHA-256 of the whole key is stored; a presented key's hash is compared in constant time.

Each process keeps what it read about a prefix for ``cache_seconds`` at most. Every change to a
key (made, revoked, rolled) is announced with ``pg_notify`` in the transaction that makes it
(``app.core.pubsub``), and every process drops what it knew of that prefix when the
announcement arrives, so a revoked key stops working everywhere as soon as the notification is
delivered; the time limit is the backstop for a notification that never arrives (a listener
that lost its connection also clears the whole cache when it reconnects). Open WebSockets
signed in with a key are told of the change and check the key again (``watch``).

Uses are remembered in memory and written at most once per ``flush_seconds`` per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import logging
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.auth import AuthMethod, Principal, Role
from app.core.errors import DomainError, ErrorCode, NotFound, Unauthenticated
from app.core.ids import new_id
from app.core.pubsub import RESYNC, Event, EventBroker, publish
from db.connection import Database, Row
from db.repositories.api_keys import ApiKeyRepository

__all__ = [
    "MAX_GRACE_SECONDS",
    "ApiKey",
    "ApiKeyStatus",
    "ApiKeys",
    "is_api_key",
]

log = logging.getLogger(__name__)

_ALPHABET = string.ascii_letters + string.digits
_LOOKUP_CHARS = 12
_SECRET_CHARS = 32  # 32 * log2(62) ≈ 190 bits
_HEAD = len("bk_live_")
_KEY_CHARS = _HEAD + _LOOKUP_CHARS + _SECRET_CHARS
_EVENT_KIND = "api_key"
_CACHE_ENTRIES = 10_000
MAX_GRACE_SECONDS = 7 * 86_400
_NAME_CHARS = 100
# Power, for "a key cannot make a key with more power than the caller has".
_RANK = {Role.CUSTOMER: 0, Role.SERVICE: 1, Role.ADMIN: 2}


def is_api_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (it may still be a bad one)."""
    return token.startswith(("bk_live_", "bk_test_"))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


class ApiKeyStatus(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    org: str
    prefix: str
    name: str
    role: Role
    mode: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rolled_to: str | None
    secret_hash: str

    @classmethod
    def from_row(cls, row: Row) -> ApiKey:
        return cls(
            id=row["id"],
            org=row["organization_id"],
            prefix=row["prefix"],
            name=row["name"],
            role=Role(row["role"]),
            mode=row["mode"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            last_used_at=row["last_used_at"],
            rolled_to=row["rolled_to"],
            secret_hash=row["secret_hash"],
        )

    def status(self, now: datetime | None = None) -> ApiKeyStatus:
        if self.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE


@dataclass(slots=True)
class _Entry:
    keys: tuple[ApiKey, ...]
    loaded: float


class ApiKeys:
    """Key management (admins) and verification (every request that sends a key)."""

    def __init__(
        self,
        db: Database,
        events: EventBroker,
        *,
        mode: str,
        enabled: bool = True,
        cache_seconds: float = 60,
        flush_seconds: float = 30,
    ) -> None:
        self._db = db
        self._events = events
        self._keys = ApiKeyRepository(db)
        self.mode = mode
        self.enabled = enabled
        self.cache_seconds = cache_seconds
        self._flush_seconds = flush_seconds
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._loading: dict[str, asyncio.Future[tuple[ApiKey, ...]]] = {}
        # Bumped by every invalidation: a lookup that started before one does not cache what
        # it read (it may be from before the change).
        self._generation = 0
        self._used: dict[tuple[str, str], datetime] = {}
        self._watchers: dict[str, set[Callable[[], None]]] = {}
        self.lookups = 0  # database reads of a prefix (tests and the benchmark count them)
        self.invalidations = 0

    # -- verification ------------------------------------------------------------------------

    async def verify(self, key: str) -> Principal:
        """The principal of a valid key; ``Unauthenticated`` with a safe reason otherwise."""
        if not self.enabled:
            raise Unauthenticated("API keys are turned off on this deployment (API_KEYS=off).")
        if len(key) != _KEY_CHARS or not key.isascii() or not key[_HEAD:].isalnum():
            raise Unauthenticated("API key is malformed.")
        digest = _digest(key)
        found = None
        for candidate in await self._lookup(key[: _HEAD + _LOOKUP_CHARS]):
            # Constant time: how much of a guessed key matched must not show in the timing.
            if hmac.compare_digest(candidate.secret_hash, digest):
                found = candidate
        if found is None:
            raise Unauthenticated("API key is not valid.")
        now = datetime.now(UTC)
        status = found.status(now)
        if status is ApiKeyStatus.REVOKED:
            raise Unauthenticated("API key has been revoked.")
        if status is ApiKeyStatus.EXPIRED:
            raise Unauthenticated("API key has expired.")
        if found.mode != self.mode:
            raise Unauthenticated(
                f"This is a {found.mode} key; this deployment takes bk_{self.mode}_ keys."
            )
        self._used[(found.org, found.id)] = now
        return Principal(
            subject=found.prefix,
            org=found.org,
            role=found.role,
            expires_at=found.expires_at,
            method=AuthMethod.API_KEY,
            key_id=found.id,
        )

    async def current(self, prefix: str, key_id: str) -> ApiKey | None:
        """What this process knows of a key now (through the cache), or None."""
        for candidate in await self._lookup(prefix):
            if candidate.id == key_id:
                return candidate
        return None

    async def _lookup(self, prefix: str) -> tuple[ApiKey, ...]:
        entry = self._cache.get(prefix)
        if entry is not None and time.monotonic() - entry.loaded < self.cache_seconds:
            return entry.keys
        pending = self._loading.get(prefix)
        if pending is None:
            pending = asyncio.ensure_future(self._load(prefix))
            self._loading[prefix] = pending
            pending.add_done_callback(lambda _: self._loading.pop(prefix, None))
        return await asyncio.shield(pending)

    async def _load(self, prefix: str) -> tuple[ApiKey, ...]:
        generation = self._generation
        started = time.monotonic()
        self.lookups += 1
        keys = tuple(ApiKey.from_row(row) for row in await self._keys.by_prefix(prefix))
        if generation == self._generation:
            self._cache[prefix] = _Entry(keys, started)
            self._cache.move_to_end(prefix)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return keys

    # -- invalidation across processes -------------------------------------------------------

    def watch(self, key_id: str, changed: Callable[[], None]) -> Callable[[], None]:
        """Call ``changed`` whenever the key may have changed (an open WebSocket then checks it
        again); returns the function that stops watching."""
        self._watchers.setdefault(key_id, set()).add(changed)

        def stop() -> None:
            watchers = self._watchers.get(key_id)
            if watchers is not None:
                watchers.discard(changed)
                if not watchers:
                    del self._watchers[key_id]

        return stop

    def _invalidate(self, event: Event) -> None:
        self._generation += 1
        self.invalidations += 1
        if event is RESYNC:
            self._cache.clear()
            targets = [w for watchers in self._watchers.values() for w in watchers]
        else:
            self._cache.pop(event.id, None)
            ids = event.data.get("ids")
            named = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
            targets = [w for key_id in named for w in self._watchers.get(key_id, ())]
        for changed in targets:
            changed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While open: hear of changes made by any process, and write uses in batches."""
        listening = asyncio.create_task(self._listen(), name="api-key-invalidations")
        flushing = asyncio.create_task(self._flush_forever(), name="api-key-last-used")
        try:
            yield
        finally:
            for task in (listening, flushing):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await self.flush()

    async def _listen(self) -> None:
        async for event in self._events.events(lambda e: e.kind == _EVENT_KIND):
            self._invalidate(event)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - retried at the next round
                log.warning("could not record API key uses: %s", type(exc).__name__)

    async def flush(self) -> int:
        """Write the uses seen since the last flush (one statement per key used)."""
        used, self._used = self._used, {}
        for (org, key_id), at in used.items():
            await self._keys.touch(org, key_id, at)
        return len(used)

    @staticmethod
    def _event(key: ApiKey) -> Event:
        return Event(key.org, _EVENT_KIND, key.prefix, {"ids": [key.id]})

    async def _announce(self, key: ApiKey, *others: ApiKey) -> None:
        """Tell every process to forget these keys' prefix; in the transaction of the change,
        so it is delivered only once the change is visible."""
        for item in (key, *others):
            await publish(self._db, self._event(item))

    def _forget(self, *keys: ApiKey) -> None:
        """This process forgets at once, without waiting for its own notification."""
        for key in keys:
            self._invalidate(self._event(key))

    # -- management --------------------------------------------------------------------------

    def _new_secret(self) -> tuple[str, str]:
        body = "".join(secrets.choice(_ALPHABET) for _ in range(_LOOKUP_CHARS + _SECRET_CHARS))
        key = f"bk_{self.mode}_{body}"
        return key, key[: _HEAD + _LOOKUP_CHARS]

    @staticmethod
    def _check_power(creator: Principal, role: Role) -> None:
        if creator.role is not Role.ADMIN:
            raise DomainError(ErrorCode.NOT_PERMITTED, "Only admins manage API keys.")
        if role not in (Role.ADMIN, Role.SERVICE):
            raise DomainError(
                ErrorCode.INVALID, "An API key's role is ADMIN or SERVICE.", field=("role",)
            )
        if _RANK[role] > _RANK[creator.role]:
            raise DomainError(
                ErrorCode.NOT_PERMITTED,
                f"A {creator.role.value} cannot make a key with the {role.value} role.",
                field=("role",),
            )

    def _require_enabled(self) -> None:
        if not self.enabled:
            raise DomainError(
                ErrorCode.NOT_PERMITTED,
                "API keys are turned off on this deployment (API_KEYS=off).",
            )

    async def create(
        self, creator: Principal, *, name: str, role: Role, expires_at: datetime | None
    ) -> tuple[ApiKey, str]:
        """A new key of ``creator``'s organization and the key itself (shown only now)."""
        self._require_enabled()
        self._check_power(creator, role)
        name = name.strip()
        if not 1 <= len(name) <= _NAME_CHARS or not name.isprintable():
            raise DomainError(
                ErrorCode.INVALID,
                f"A key's name is 1-{_NAME_CHARS} printable characters.",
                field=("name",),
            )
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise DomainError(
                ErrorCode.INVALID, "expiresAt must be in the future.", field=("expiresAt",)
            )
        async with self._db.transaction():
            key, made = await self._insert(creator, name, role, expires_at)
            await self._announce(made)
        self._forget(made)
        return made, key

    async def _insert(
        self, creator: Principal, name: str, role: Role, expires_at: datetime | None
    ) -> tuple[str, ApiKey]:
        key, prefix = self._new_secret()
        row = await self._keys.add(
            {
                "organization_id": creator.org,
                "id": new_id("key"),
                "prefix": prefix,
                "secret_hash": _digest(key),
                "name": name,
                "role": role.value,
                "mode": self.mode,
                "created_by": creator.who,
                "created_at": datetime.now(UTC),
                "expires_at": expires_at,
            }
        )
        return key, ApiKey.from_row(row)

    async def revoke(self, actor: Principal, key_id: str) -> ApiKey:
        """Revoke a key at once, in every process (revoking a revoked key changes nothing)."""
        self._require_enabled()
        if actor.role is not Role.ADMIN:
            raise DomainError(ErrorCode.NOT_PERMITTED, "Only admins manage API keys.")
        async with self._db.transaction():
            row = await self._keys.lock(actor.org, key_id)
            if row is None:
                raise NotFound("API key")
            if row["revoked_at"] is not None:
                return ApiKey.from_row(row)
            changed = await self._keys.change(actor.org, key_id, {"revoked_at": datetime.now(UTC)})
            assert changed is not None
            revoked = ApiKey.from_row(changed)
            await self._announce(revoked)
        self._forget(revoked)
        return revoked

    async def roll(
        self, actor: Principal, key_id: str, *, grace_seconds: int
    ) -> tuple[ApiKey, str, ApiKey]:
        """A new key with the same name, role and expiry; the old one keeps working for
        ``grace_seconds`` (0: it stops now). Returns the new key, its secret and the old key."""
        self._require_enabled()
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise DomainError(
                ErrorCode.INVALID,
                f"gracePeriodSeconds must be between 0 and {MAX_GRACE_SECONDS} (7 days).",
                field=("gracePeriodSeconds",),
            )
        async with self._db.transaction():
            row = await self._keys.lock(actor.org, key_id)
            if row is None:
                raise NotFound("API key")
            old = ApiKey.from_row(row)
            self._check_power(actor, old.role)
            if old.status() is not ApiKeyStatus.ACTIVE:
                raise DomainError(
                    ErrorCode.INVALID_STATE, f"This key is {old.status().value}; make a new one."
                )
            if old.rolled_to is not None:
                raise DomainError(
                    ErrorCode.INVALID_STATE,
                    f"This key was rolled already (to {old.rolled_to}); roll that one instead.",
                )
            key, made = await self._insert(actor, old.name, old.role, old.expires_at)
            ends = datetime.now(UTC) + timedelta(seconds=grace_seconds)
            if old.expires_at is not None:
                ends = min(ends, old.expires_at)
            changed = await self._keys.change(
                actor.org, key_id, {"expires_at": ends, "rolled_to": made.id}
            )
            assert changed is not None
            rolled = ApiKey.from_row(changed)
            await self._announce(rolled, made)
        self._forget(rolled, made)
        return made, key, rolled

    async def page(
        self, org: str, *, include_revoked: bool, first: int, after: str | None, newest: bool
    ) -> tuple[list[ApiKey], bool]:
        filters = {"include_revoked": include_revoked, "newest_first": newest}
        found = await self._keys.page(org, filters, first=first, after=after)
        return [ApiKey.from_row(row) for row in found.rows], found.has_next

    async def by_id(self, org: str, key_id: str) -> ApiKey | None:
        """A key by id (revoked ones included), for `node`."""
        (row,) = await self._keys.by_ids(org, [key_id])
        return None if row is None else ApiKey.from_row(row)

    async def count(self, org: str, *, include_revoked: bool) -> int:
        return await self._keys.count(org, {"include_revoked": include_revoked})
