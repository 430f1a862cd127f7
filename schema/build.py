"""Assemble the root types and the schema with its protective extensions."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

import strawberry
from graphql import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors, MaxTokensLimiter, ParserCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from schema.audit import audit_every_mutation
from schema.catalog.coupons import CouponMutations, CouponQueries
from schema.catalog.plans import PlanMutations, PlanQueries
from schema.catalog.tax_rates import TaxRateMutations, TaxRateQueries
from schema.customers import CustomerMutations, CustomerQueries
from schema.entitlements import EntitlementQueries
from schema.errors import is_unexpected, should_mask_error
from schema.identity import IdentityMutations, IdentityQueries
from schema.invoicing.credit_notes import CreditNoteMutations, CreditNoteQueries
from schema.invoicing.invoices import InvoiceMutations, InvoiceQueries
from schema.ledger import LedgerQueries
from schema.limits import max_mutations_rule
from schema.live import Live, PerEventExecutor
from schema.node import NodeQueries
from schema.organizations import OrganizationMutations, OrganizationQueries
from schema.outgoing_webhooks import WebhookMutations, WebhookQueries
from schema.payments import PaymentMutations, PaymentQueries
from schema.persisted import PersistedQueries, PersistedQueryLookup
from schema.previews import PreviewQueries
from schema.refunds import RefundMutations, RefundQueries
from schema.scalars import SCALARS
from schema.service import ServiceQueries
from schema.statistics import StatisticsQueries
from schema.subscriptions import SubscriptionMutations, SubscriptionQueries
from schema.text_rules import StorableStrings
from schema.throttling import QueryCost
from schema.usage import UsageMutations, UsageQueries
from schema.validation import CachedValidation, ValidationResults, validation_rules

__all__ = ["Limits", "Mutation", "Query", "build_schema", "schema"]

log = logging.getLogger("billing.graphql")


@strawberry.type(description="Read operations. Every list is a keyset-paginated connection.")
class Query(
    ServiceQueries,
    PlanQueries,
    CustomerQueries,
    PaymentQueries,
    RefundQueries,
    OrganizationQueries,
    InvoiceQueries,
    CreditNoteQueries,
    TaxRateQueries,
    CouponQueries,
    SubscriptionQueries,
    StatisticsQueries,
    LedgerQueries,
    UsageQueries,
    PreviewQueries,
    EntitlementQueries,
    IdentityQueries,
    WebhookQueries,
    NodeQueries,
):
    pass


@strawberry.type(
    description="Write operations: noun-first names, one `input`, a payload with `errors`."
)
class Mutation(
    PlanMutations,
    CustomerMutations,
    PaymentMutations,
    RefundMutations,
    OrganizationMutations,
    InvoiceMutations,
    CreditNoteMutations,
    TaxRateMutations,
    CouponMutations,
    SubscriptionMutations,
    UsageMutations,
    IdentityMutations,
    WebhookMutations,
):
    pass


audit_every_mutation(Mutation)


class BillingSchema(strawberry.Schema):
    """Logs errors without tracebacks or messages of unexpected errors: those can carry SQL,
    parameters or keys. The log line names the exception type and where it was raised."""

    validation_results: ValidationResults  # what CachedValidation validated (set by build)
    persisted_queries: PersistedQueries  # the documents known by hash (set by build)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            if original is None or not is_unexpected(error):
                log.debug("client error: %s", error.message)
                continue
            frame = (
                traceback.extract_tb(original.__traceback__)[-1:] if original.__traceback__ else []
            )
            where = f"{frame[0].filename}:{frame[0].lineno}" if frame else "unknown"
            log.error(
                "unexpected %s in %s at %s",
                type(original).__name__,
                ".".join(str(p) for p in error.path or []),
                where,
            )


@dataclass(frozen=True)
class Limits:
    """Per-document limits, checked before execution (defaults documented in docs/security.md)."""

    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    max_cost: int = 25_000
    max_mutations: int = 5


def build_schema(
    limits: Limits | None = None,
    *,
    production: bool = False,
    persisted: PersistedQueries | None = None,
) -> strawberry.Schema:
    """The schema with its protective extensions. Production also hides introspection and
    "did you mean" suggestions, which map the API for an attacker. ``persisted``: the known
    persisted queries (by default none registered, automatic registration on)."""
    limits = limits or Limits()
    persisted = persisted or PersistedQueries()
    extra: list[type[ASTValidationRule]] = [
        max_mutations_rule(limits.max_mutations),
        StorableStrings,
    ]
    if production:
        extra.append(NoSchemaIntrospectionCustomRule)
    # Built once: every request validates with these same classes, so a query text validated
    # before is not validated again (schema/validation.py).
    validated = ValidationResults(
        validation_rules(max_depth=limits.max_depth, max_aliases=limits.max_aliases, extra=extra)
    )
    built = BillingSchema(
        query=Query,
        mutation=Mutation,
        subscription=Live,
        execution_context_class=PerEventExecutor,
        config=StrawberryConfig(scalar_map=dict(SCALARS), disable_field_suggestions=production),
        extensions=[
            lambda: PersistedQueryLookup(persisted),
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            lambda: QueryCost(limits.max_cost),
            lambda: ParserCache(maxsize=512),
            lambda: CachedValidation(validated),
            lambda: MaskErrors(should_mask_error=should_mask_error),
        ],
    )
    built.validation_results = validated
    built.persisted_queries = persisted
    return built


schema = build_schema()
