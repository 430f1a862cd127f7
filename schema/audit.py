"""Every mutation is audited: a field extension wraps each field of the root ``Mutation`` type
(``audit_every_mutation``, applied when the schema is built, so a mutation added later is
covered without a line of its own; ``tests/security/test_audit.py`` walks the schema to prove
it). It is the outermost extension, so it also sees calls its permission refused.

What is recorded (app/identity/audit.py): the caller (how it signed in, its subject or API key
prefix, role, organization), the request id, the mutation's name, the ids the input named
(fields called ``id`` or ending in ``Id``) and the ids of the objects the payload returned, and
the outcome with the payload errors' codes. Never the input's other values (a key's secret, a
card, an address). Calls without a valid credential have no organization to be recorded in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types.base import StrawberryObjectDefinition

from app.context import Context
from app.core.errors import PublicError
from app.identity import Outcome

__all__ = ["AuditedMutation", "audit_every_mutation"]

_MAX_DEPTH = 3


def _ids_in(value: object, depth: int = 0) -> Iterator[str]:
    """Ids named by an input object: its ``id`` and ``…_id`` fields, also in nested inputs."""
    if depth > _MAX_DEPTH or value is None:
        return
    if isinstance(value, list):
        for item in value[:50]:
            yield from _ids_in(item, depth + 1)
        return
    names = [f.name for f in dataclasses.fields(value)] if dataclasses.is_dataclass(value) else []
    for name in names:
        item = getattr(value, name, None)
        if isinstance(item, str) and (name == "id" or name.endswith("_id")):
            yield item
        elif isinstance(item, list) and (name == "ids" or name.endswith("_ids")):
            yield from (i for i in item[:50] if isinstance(i, str))
        elif dataclasses.is_dataclass(item) or isinstance(item, list):
            yield from _ids_in(item, depth + 1)


def _returned_ids(payload: object) -> Iterator[str]:
    """Ids of the objects a payload returned (its fields other than ``errors``)."""
    for name, value in vars(payload).items() if hasattr(payload, "__dict__") else ():
        if name == "errors":
            continue
        found = getattr(value, "id", None)
        if isinstance(found, str):
            yield found


def _payload_codes(payload: object) -> list[str]:
    errors = getattr(payload, "errors", None)
    if not isinstance(errors, list):
        return []
    return [getattr(e.code, "value", str(e.code)) for e in errors if hasattr(e, "code")]


class AuditedMutation(FieldExtension):
    """Records one audit entry per call of the mutation it wraps."""

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: strawberry.Info[Context, None],
        **kwargs: Any,
    ) -> Any:
        try:
            result = await next_(source, info, **kwargs)
        except Exception as exc:
            code = exc.code if isinstance(exc, PublicError) else "INTERNAL"
            outcome = Outcome.REFUSED if isinstance(exc, PublicError) else Outcome.FAILED
            await self._record(info, kwargs, None, outcome, [code])
            raise
        codes = _payload_codes(result)
        await self._record(info, kwargs, result, Outcome.ERROR if codes else Outcome.OK, codes)
        return result

    @staticmethod
    async def _record(
        info: strawberry.Info[Context, None],
        arguments: dict[str, Any],
        result: object,
        outcome: Outcome,
        codes: list[str],
    ) -> None:
        context = info.context
        principal = context.principal
        if principal is None:
            return
        targets = [*_ids_in(list(arguments.values()))]
        if result is not None:
            targets += _returned_ids(result)
        await context.services.audit.record(
            principal,
            action=info.field_name,
            target_ids=targets,
            outcome=outcome,
            error_codes=codes,
            request_id=context.request_id,
        )


def audit_every_mutation(mutation: type) -> None:
    """Wrap every field of the root Mutation type in ``AuditedMutation`` (once; last in the
    list, which strawberry makes the outermost)."""
    definition = mutation.__strawberry_definition__  # type: ignore[attr-defined]
    assert isinstance(definition, StrawberryObjectDefinition)
    for field in definition.fields:
        if not any(isinstance(e, AuditedMutation) for e in field.extensions):
            field.extensions.append(AuditedMutation())
