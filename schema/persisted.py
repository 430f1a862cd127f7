"""Persisted queries: a front end sends the SHA-256 hash of a document instead of its text.

Two ways of knowing a hash, both keyed by the lowercase hex SHA-256 of the document's exact
text (what Apollo Client's persisted-queries link and Relay's ``persistConfig`` with
``algorithm: "SHA256"`` compute):

- **Automatic** (Apollo's protocol): a request carries ``extensions.persistedQuery =
  {version: 1, sha256Hash}``. Without ``query``, the hash is looked up; unknown, the answer is
  the error ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``) and the client sends
  the hash again with the text, which is checked against the hash and remembered (a bounded
  LRU per process: a miss on another process costs the client one more round trip).
- **Registered**: the operations of a manifest (``PERSISTED_QUERIES_FILE``), known to every
  process from the start. With ``PERSISTED_QUERIES_ONLY`` nothing else runs, over HTTP or
  WebSocket, by hash or by text (code ``PERSISTED_QUERY_NOT_IN_LIST``): the allow-list of a
  production API that serves only its own front ends.

``PersistedQueryLookup`` is the schema extension that puts the text in place before parsing,
so caching, validation, costing and execution are the same for a hash and for a text.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.core.persisted_queries import persisted_hash

__all__ = ["NOT_FOUND", "PersistedQueries", "PersistedQueryLookup"]

NOT_FOUND = "PersistedQueryNotFound"
"""The message Apollo Client's link (and others) look for before sending the text."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PersistedQueries:
    """Known documents by hash: the registered ones, then (unless only registered ones are
    allowed) a bounded LRU of those clients registered automatically. Thread-safe."""

    def __init__(
        self,
        registered: Mapping[str, str] | None = None,
        *,
        only_registered: bool = False,
        max_automatic: int = 2_000,
    ) -> None:
        self.registered = dict(registered or {})
        self.only_registered = only_registered
        self._max_automatic = max_automatic
        self._automatic: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, sha256: str) -> str | None:
        found = self.registered.get(sha256)
        if found is not None or self.only_registered:
            return found
        with self._lock:
            found = self._automatic.get(sha256)
            if found is not None:
                self._automatic.move_to_end(sha256)
            return found

    def remember(self, sha256: str, query: str) -> None:
        if self.only_registered or sha256 in self.registered:
            return
        with self._lock:
            self._automatic[sha256] = query
            self._automatic.move_to_end(sha256)
            if len(self._automatic) > self._max_automatic:
                self._automatic.popitem(last=False)

    def resolve(self, query: str | None, extensions: Mapping[str, object] | None) -> str:
        """The document to run, or a GraphQLError the client can act on."""
        sha256 = _requested_hash(extensions)
        if sha256 is None:
            if query is None:
                raise GraphQLError(
                    "No GraphQL query found in the request.", extensions={"code": "BAD_REQUEST"}
                )
            if self.only_registered and persisted_hash(query) not in self.registered:
                raise _not_in_list()
            return query
        if query is None:
            found = self.find(sha256)
            if found is None:
                if self.only_registered:
                    raise _not_in_list()
                raise GraphQLError(NOT_FOUND, extensions={"code": "PERSISTED_QUERY_NOT_FOUND"})
            return found
        if persisted_hash(query) != sha256:
            raise GraphQLError(
                "provided sha does not match query: `persistedQuery.sha256Hash` must be the "
                "lowercase hex SHA-256 of the exact `query` text.",
                extensions={"code": "PERSISTED_QUERY_HASH_MISMATCH"},
            )
        if self.only_registered and sha256 not in self.registered:
            raise _not_in_list()
        self.remember(sha256, query)
        return query


def _not_in_list() -> GraphQLError:
    return GraphQLError(
        "This server runs only registered operations, and this is not one of them.",
        extensions={"code": "PERSISTED_QUERY_NOT_IN_LIST"},
    )


def _requested_hash(extensions: Mapping[str, object] | None) -> str | None:
    """``extensions.persistedQuery.sha256Hash``, checked, or None when there is none."""
    if not extensions or extensions.get("persistedQuery") is None:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, Mapping):
        raise _malformed("`extensions.persistedQuery` must be an object.")
    if persisted.get("version") != 1:
        raise _malformed("`extensions.persistedQuery.version` must be 1.")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise _malformed("`extensions.persistedQuery.sha256Hash` must be 64 hex digits.")
    return sha256.lower()


def _malformed(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_REQUEST"})


class PersistedQueryLookup(SchemaExtension):
    """Puts the document a persisted-query hash names in place before anything parses it, and
    refuses unregistered documents when only registered ones may run.

    A refusal is reported as a validation error of the request, not raised: raised, it would
    break strawberry's WebSocket path, which runs the operation hook outside its error
    handling. So the operation gets a placeholder document, and ``on_validate`` replaces its
    (absent) validation errors with the refusal; the cost extension charges it as any refused
    document, and nothing executes."""

    _PLACEHOLDER = "{ __typename }"

    def __init__(self, queries: PersistedQueries) -> None:
        super().__init__()
        self._queries = queries
        self._refusal: GraphQLError | None = None

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None:
            try:
                context.query = self._queries.resolve(context.query, context.operation_extensions)
            except GraphQLError as refusal:
                self._refusal = refusal
                context.query = self._PLACEHOLDER
        yield

    def on_validate(self) -> Iterator[None]:
        if self._refusal is not None:
            # CachedValidation leaves errors that are already there in place.
            self.execution_context.pre_execution_errors = [self._refusal]
        yield
