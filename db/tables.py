"""SQLAlchemy Core descriptions of the tables created by ``db/migrations``.

The SQL files are the source of truth; a test checks that these descriptions match them.
One module on purpose (over 500 lines): it mirrors the migrated schema as a whole, and
``tests/db/test_migrations.py`` compares the two table by table.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

__all__ = [
    "api_keys",
    "audit_log",
    "billable_metrics",
    "coupons",
    "credit_note_lines",
    "credit_notes",
    "customer_balances",
    "customer_mrr_states",
    "customer_plan_families",
    "customers",
    "discount_redemptions",
    "discounts",
    "document_counters",
    "idempotency_keys",
    "invoice_lines",
    "invoice_settings",
    "invoices",
    "ledger_entries",
    "metadata",
    "metered_prices",
    "mrr_movement_days",
    "organizations",
    "payment_declines",
    "payments",
    "plans",
    "rate_limit_buckets",
    "reconciliation_repairs",
    "refunds",
    "revenue_rollups",
    "revenue_totals",
    "subscription_stat_days",
    "subscription_stat_events",
    "subscription_stat_states",
    "subscription_stat_totals",
    "tax_rates",
    "usage_charges",
    "usage_events",
    "usage_hourly",
    "usage_hourly_uniques",
    "usage_late_periods",
    "usage_period_uniques",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
    "websocket_connections",
]

metadata = sa.MetaData()


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("settings", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("interval_unit", sa.Text, nullable=False),
    sa.Column("interval_count", sa.Integer, nullable=False),
    sa.Column("trial_days", sa.Integer, nullable=False),
    sa.Column("features", JSONB, nullable=False),
    sa.Column("credits_included", sa.BigInteger, nullable=False),
    sa.Column("max_users", sa.Integer),
    sa.Column("max_storage_bytes", sa.BigInteger),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("stripe_product_id", sa.Text),
    sa.Column("stripe_price_id", sa.Text),
    *_timestamps(),
    sa.Column("archived_at", sa.DateTime(timezone=True)),
    sa.Column("family", sa.Text, nullable=False),
    sa.Column("stripe_sync_token", sa.Text),
    sa.Column("stripe_sync_until", sa.DateTime(timezone=True)),
    sa.Column("stripe_synced", sa.Boolean, nullable=False),
)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("external_ref", sa.Text),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("address", JSONB),
    sa.Column("preferred_currency", sa.CHAR(3)),
    sa.Column("tax_ids", JSONB, nullable=False),
    sa.Column("tax_exempt", sa.Text, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("stripe_customer_id", sa.Text),
    sa.Column("default_payment_method_id", sa.Text),
    *_timestamps(),
    sa.Column("stripe_sync_token", sa.Text),
    sa.Column("stripe_sync_until", sa.DateTime(timezone=True)),
    sa.Column("stripe_synced", sa.Boolean, nullable=False),
)

rate_limit_buckets = sa.Table(
    "rate_limit_buckets",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("available", sa.Double, nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("full_at", sa.DateTime(timezone=True), nullable=False),
)

websocket_connections = sa.Table(
    "websocket_connections",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("process_id", sa.Text, nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("capture_method", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text),
    sa.Column("subtotal_amount", sa.BigInteger),
    sa.Column("tax_amount", sa.BigInteger),
    sa.Column("shipping_amount", sa.BigInteger),
    sa.Column("discount_amount", sa.BigInteger),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("payment_method_id", sa.Text),
    sa.Column("stripe_payment_intent_id", sa.Text, nullable=False),
    sa.Column("client_secret", sa.Text),
    sa.Column("next_action", JSONB),
    sa.Column("amount_capturable", sa.BigInteger, nullable=False),
    sa.Column("amount_captured", sa.BigInteger, nullable=False),
    sa.Column("amount_refunded", sa.BigInteger, nullable=False),
    sa.Column("failure_code", sa.Text),
    sa.Column("failure_message", sa.Text),
    sa.Column("operation", sa.Text),
    sa.Column("operation_key", sa.Text),
    sa.Column("operation_amount", sa.BigInteger),
    sa.Column("lease_token", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.Column("succeeded_at", sa.DateTime(timezone=True)),
    sa.Column("failed_at", sa.DateTime(timezone=True)),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("payment_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("stripe_refund_id", sa.Text),
    sa.Column("stripe_idempotency_key", sa.Text),
    sa.Column("failure_reason", sa.Text),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("approved_by", sa.Text),
    sa.Column("approved_at", sa.DateTime(timezone=True)),
    sa.Column("rejected_by", sa.Text),
    sa.Column("rejected_at", sa.DateTime(timezone=True)),
    sa.Column("rejection_reason", sa.Text),
    sa.Column("lease_token", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.Column("succeeded_at", sa.DateTime(timezone=True)),
    sa.Column("credit_note_id", sa.Text),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("resource_id", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("response", JSONB),
    sa.Column("lease_token", sa.Text, nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("plan_id", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("unit_amount", sa.BigInteger, nullable=False),
    sa.Column("interval_unit", sa.Text, nullable=False),
    sa.Column("interval_count", sa.Integer, nullable=False),
    sa.Column("billing_anchor", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_index", sa.Integer),
    sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("trial_start", sa.DateTime(timezone=True)),
    sa.Column("trial_end", sa.DateTime(timezone=True)),
    sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
    sa.Column("canceled_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("cancel_reason", sa.Text),
    sa.Column("cancel_feedback", sa.Text),
    sa.Column("paused_at", sa.DateTime(timezone=True)),
    sa.Column("resumes_at", sa.DateTime(timezone=True)),
    sa.Column("dunning_attempts", sa.Integer, nullable=False),
    sa.Column("next_retry_at", sa.DateTime(timezone=True)),
    sa.Column("latest_invoice_id", sa.Text),
    sa.Column("next_action_at", sa.DateTime(timezone=True)),
    sa.Column("leased_until", sa.DateTime(timezone=True)),
    *_timestamps(),
)

# Every plan family a customer ever held a subscription on (db/migrations/0009).
customer_plan_families = sa.Table(
    "customer_plan_families",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("family", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

subscription_pending_lines = sa.Table(
    "subscription_pending_lines",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("taken_by", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

test_clocks = sa.Table(
    "test_clocks",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

invoice_settings = sa.Table(
    "invoice_settings",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("number_prefix", sa.Text, nullable=False),
    sa.Column("issuer_name", sa.Text, nullable=False),
    sa.Column("issuer_address", JSONB, nullable=False),
    sa.Column("days_until_due", sa.Integer),
    *_timestamps(),
)

document_counters = sa.Table(
    "document_counters",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("series", sa.Text, primary_key=True),
    sa.Column("last_number", sa.BigInteger, nullable=False),
)

tax_rates = sa.Table(
    "tax_rates",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("rate", sa.Integer, nullable=False),
    sa.Column("inclusive", sa.Boolean, nullable=False),
    sa.Column("country", sa.CHAR(2), nullable=False),
    sa.Column("region", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    *_timestamps(),
    sa.Column("archived_at", sa.DateTime(timezone=True)),
)

coupons = sa.Table(
    "coupons",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("percent_off", sa.Integer),
    sa.Column("amount_off", sa.BigInteger),
    sa.Column("currency", sa.CHAR(3)),
    sa.Column("duration", sa.Text, nullable=False),
    sa.Column("duration_periods", sa.Integer),
    sa.Column("max_redemptions", sa.Integer),
    sa.Column("times_redeemed", sa.Integer, nullable=False),
    sa.Column("redeem_by", sa.DateTime(timezone=True)),
    sa.Column("active", sa.Boolean, nullable=False),
    *_timestamps(),
    sa.Column("archived_at", sa.DateTime(timezone=True)),
)

discounts = sa.Table(
    "discounts",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("coupon_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("subscription_id", sa.Text),
    sa.Column("periods_used", sa.Integer, nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    *_timestamps(),
)

discount_redemptions = sa.Table(
    "discount_redemptions",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("discount_id", sa.Text, primary_key=True),
    sa.Column("period_key", sa.Text, primary_key=True),
    sa.Column("invoice_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("subscription_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("number", sa.Text),
    sa.Column("number_sequence", sa.BigInteger),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("due_date", sa.Date),
    sa.Column("period_start", sa.DateTime(timezone=True)),
    sa.Column("period_end", sa.DateTime(timezone=True)),
    sa.Column("subtotal", sa.BigInteger, nullable=False),
    sa.Column("discount_total", sa.BigInteger, nullable=False),
    sa.Column("taxable_amount", sa.BigInteger, nullable=False),
    sa.Column("tax_total", sa.BigInteger, nullable=False),
    sa.Column("tax_inclusive", sa.Boolean, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("balance_applied", sa.BigInteger, nullable=False),
    sa.Column("credit_to_balance", sa.BigInteger, nullable=False),
    sa.Column("credit_applied", sa.BigInteger, nullable=False),
    sa.Column("amount_credited", sa.BigInteger, nullable=False),
    sa.Column("amount_due", sa.BigInteger, nullable=False),
    sa.Column("amount_paid", sa.BigInteger, nullable=False),
    sa.Column("tax_rate_id", sa.Text),
    sa.Column("tax_name", sa.Text),
    sa.Column("tax_rate", sa.Integer),
    sa.Column("reverse_charge", sa.Boolean, nullable=False),
    sa.Column("discount_id", sa.Text),
    sa.Column("coupon_id", sa.Text),
    sa.Column("payment_id", sa.Text),
    sa.Column("payment_attempts", sa.Integer, nullable=False),
    sa.Column("last_payment_error_code", sa.Text),
    sa.Column("last_payment_error_message", sa.Text),
    sa.Column("payment_lease_token", sa.Text),
    sa.Column("payment_lease_until", sa.DateTime(timezone=True)),
    sa.Column("customer_snapshot", JSONB),
    sa.Column("issuer_snapshot", JSONB),
    sa.Column("status_reason", sa.Text),
    sa.Column("finalized_at", sa.DateTime(timezone=True)),
    sa.Column("paid_at", sa.DateTime(timezone=True)),
    sa.Column("voided_at", sa.DateTime(timezone=True)),
    sa.Column("marked_uncollectible_at", sa.DateTime(timezone=True)),
    *_timestamps(),
)

invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("invoice_id", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_amount", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("discount_amount", sa.BigInteger, nullable=False),
    sa.Column("taxable", sa.Boolean, nullable=False),
    sa.Column("tax_rate", sa.Integer),
    sa.Column("informational", sa.Boolean, nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True)),
    sa.Column("period_end", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("discountable", sa.Boolean, nullable=False),
)

credit_notes = sa.Table(
    "credit_notes",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("number", sa.Text, nullable=False),
    sa.Column("number_sequence", sa.BigInteger, nullable=False),
    sa.Column("invoice_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("settlement", sa.Text, nullable=False),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("subtotal", sa.BigInteger, nullable=False),
    sa.Column("tax_total", sa.BigInteger, nullable=False),
    sa.Column("tax_inclusive", sa.Boolean, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("applied_to_invoice", sa.BigInteger, nullable=False),
    sa.Column("credited_to_balance", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False),
    sa.Column("customer_snapshot", JSONB, nullable=False),
    sa.Column("issuer_snapshot", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

credit_note_lines = sa.Table(
    "credit_note_lines",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("credit_note_id", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_amount", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("tax_rate", sa.Integer),
    sa.Column("informational", sa.Boolean, nullable=False),
)

customer_balances = sa.Table(
    "customer_balances",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("transaction_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("invoice_id", sa.Text),
    sa.Column("payment_id", sa.Text),
    sa.Column("refund_id", sa.Text),
    sa.Column("credit_note_id", sa.Text),
    sa.Column("subscription_id", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

stripe_events = sa.Table(
    "stripe_events",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    # 0012_stripe_event_failures.sql: why a 'failed' event can never be applied
    sa.Column("error", sa.Text),
    # 0021_stripe_event_replay.sql: the verified body of a failed event, for stripeEventReplay
    sa.Column("payload", sa.Text),
)

# -- reconciliation with Stripe (db/migrations/0021_stripe_event_replay.sql) ---------------------

reconciliation_repairs = sa.Table(
    "reconciliation_repairs",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("object_id", sa.Text, nullable=False),
    sa.Column("status_before", sa.Text, nullable=False),
    sa.Column("status_after", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# -- outgoing webhooks (db/migrations/0020_outgoing_webhooks.sql) -------------------------------

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("event_types", ARRAY(sa.Text), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    sa.Column("last_success_at", sa.DateTime(timezone=True)),
    sa.Column("disabled_reason", sa.Text),
    *_timestamps(),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("api_version", sa.Text, nullable=False),
    sa.Column("object_id", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("dedupe_key", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("endpoint_id", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("retry_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    *_timestamps(),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
)

# -- statistics (db/migrations/0007_statistics.sql) ---------------------------------------------

revenue_rollups = sa.Table(
    "revenue_rollups",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("bucket", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("gross", sa.BigInteger, nullable=False),
    sa.Column("payments", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False),
    sa.Column("refunds", sa.BigInteger, nullable=False),
)

revenue_totals = sa.Table(
    "revenue_totals",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("gross", sa.BigInteger, nullable=False),
    sa.Column("payments", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("refunded", sa.BigInteger, nullable=False),
    sa.Column("refunds", sa.BigInteger, nullable=False),
)

# db/migrations/0016_payment_declines.sql: one row per declined charge attempt
payment_declines = sa.Table(
    "payment_declines",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("payment_id", sa.Text, primary_key=True),
    sa.Column("attempt_key", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("failure_code", sa.Text),
    sa.Column("declined_at", sa.DateTime(timezone=True), nullable=False),
)

subscription_stat_states = sa.Table(
    "subscription_stat_states",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("plan_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("mrr", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

customer_mrr_states = sa.Table(
    "customer_mrr_states",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("mrr", sa.BigInteger, nullable=False),
    sa.Column("episodes", sa.Integer, nullable=False),
)

subscription_stat_events = sa.Table(
    "subscription_stat_events",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("plan_before", sa.Text),
    sa.Column("status_before", sa.Text),
    sa.Column("mrr_before", sa.BigInteger, nullable=False),
    sa.Column("plan_after", sa.Text, nullable=False),
    sa.Column("status_after", sa.Text, nullable=False),
    sa.Column("mrr_after", sa.BigInteger, nullable=False),
    sa.Column("movement", sa.Text),
)

subscription_stat_totals = sa.Table(
    "subscription_stat_totals",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("plan_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("subscriptions", sa.BigInteger, nullable=False),
    sa.Column("mrr", sa.BigInteger, nullable=False),
)

subscription_stat_days = sa.Table(
    "subscription_stat_days",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("plan_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),
    sa.Column("subscriptions", sa.BigInteger, nullable=False),
    sa.Column("mrr", sa.BigInteger, nullable=False),
)

mrr_movement_days = sa.Table(
    "mrr_movement_days",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    *(
        sa.Column(name, sa.BigInteger, nullable=False)
        for name in (
            "new_mrr",
            "expansion_mrr",
            "contraction_mrr",
            "churned_mrr",
            "reactivation_mrr",
            "new_customers",
            "reactivated_customers",
            "churned_customers",
            "trials_started",
            "trials_ended",
            "trials_converted",
        )
    ),
)

billable_metrics = sa.Table(
    "billable_metrics",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("aggregation", sa.Text, nullable=False),
    sa.Column("property", sa.Text),
    sa.Column("filters", JSONB, nullable=False),
    sa.Column("archived_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

metered_prices = sa.Table(
    "metered_prices",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("plan_id", sa.Text, nullable=False),
    sa.Column("metric_id", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("unit_price", sa.Numeric),
    sa.Column("package_size", sa.BigInteger),
    sa.Column("tiers", JSONB, nullable=False),
    sa.Column("free_units", sa.Numeric, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

usage_events = sa.Table(
    "usage_events",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("metric_id", sa.Text, nullable=False),
    sa.Column("value", sa.Numeric, nullable=False),
    sa.Column("unique_key", sa.Text),
    sa.Column("properties", JSONB, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("counted", sa.Boolean, nullable=False),
)

usage_hourly = sa.Table(
    "usage_hourly",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, primary_key=True),
    sa.Column("metric_id", sa.Text, primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("events", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Numeric, nullable=False),
    sa.Column("maximum", sa.Numeric, nullable=False),
    sa.Column("latest_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("latest_value", sa.Numeric, nullable=False),
)

usage_hourly_uniques = sa.Table(
    "usage_hourly_uniques",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, primary_key=True),
    sa.Column("metric_id", sa.Text, primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("unique_key", sa.Text, primary_key=True),
)

usage_charges = sa.Table(
    "usage_charges",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, nullable=False),
    sa.Column("metric_id", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("quantity", sa.Numeric, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("tiers", JSONB, nullable=False),
    sa.Column("invoice_key", sa.Text, nullable=False),
    sa.Column("billed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("invoice_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

usage_late_periods = sa.Table(
    "usage_late_periods",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
)

usage_period_uniques = sa.Table(
    "usage_period_uniques",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("subscription_id", sa.Text, primary_key=True),
    sa.Column("metric_id", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("unique_key", sa.Text, primary_key=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("rolled_to", sa.Text),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor_type", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target_ids", sa.ARRAY(sa.Text), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("error_codes", sa.ARRAY(sa.Text), nullable=False),
    sa.Column("request_id", sa.Text),
)
