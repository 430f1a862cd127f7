"""SQLAlchemy Core descriptions of the tables created by ``db/migrations``.

The SQL files are the source of truth; a test checks that these descriptions match them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["customers", "metadata", "organizations", "plans", "rate_limit_windows"]

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
)

rate_limit_windows = sa.Table(
    "rate_limit_windows",
    metadata,
    sa.Column("organization_id", sa.Text, primary_key=True),
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
)
