"""Assemble the root types and the schema with its protective extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from schema.customers import CustomerMutations, CustomerQueries
from schema.errors import should_mask_error
from schema.plans import PlanMutations, PlanQueries
from schema.scalars import SCALARS
from schema.service import Live, ServiceQueries

__all__ = ["Mutation", "Query", "build_schema", "schema"]


@strawberry.type(description="Read operations. Every list is a keyset-paginated connection.")
class Query(ServiceQueries, PlanQueries, CustomerQueries):
    pass


@strawberry.type(
    description="Write operations: noun-first names, one `input`, a payload with `errors`."
)
class Mutation(PlanMutations, CustomerMutations):
    pass


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Live,
        config=StrawberryConfig(scalar_map=dict(SCALARS)),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=10),
            lambda: MaxAliasesLimiter(max_alias_count=30),
            lambda: MaxTokensLimiter(max_token_count=2000),
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            lambda: MaskErrors(should_mask_error=should_mask_error),
        ],
    )


schema = build_schema()
