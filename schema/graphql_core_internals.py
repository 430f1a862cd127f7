"""The one place that touches graphql-core's private names (pinned: graphql-core 3.3.2, through
strawberry-graphql 0.341.2).

graphql-core has no public way to give a per-event executor its own memo of collected
subfields (``Executor.collect_subfields`` is marked private and reads ``_relevant_sub_fields``),
so this module writes the attribute. ``tests/test_library_internals.py`` checks on every run
that the attribute still exists with the shape relied on here and is what ``collect_subfields``
reads, so an upgrade that changes it fails there, naming this module.
"""

from __future__ import annotations

from typing import Any

from graphql.execution import Executor

__all__ = ["give_own_subfield_memo"]


def give_own_subfield_memo(executor: Executor[Any]) -> None:
    """Replace the memo of collected subfields the executor shares with the executor it was
    copied from (``build_per_event_executor`` makes shallow copies) by an empty one of its
    own."""
    executor._relevant_sub_fields = {}
