-- Organizations (tenants) and the plan catalog.
-- Every table carries organization_id and every primary/unique key includes it, so the schema can be
-- distributed by organization (Citus) without change.

CREATE TABLE organizations (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL DEFAULT '',
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plans (
    organization_id    text NOT NULL,
    id                 text NOT NULL CHECK (id LIKE 'plan\_%'),
    code               text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name               text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description        text NOT NULL DEFAULT '',
    tier               text NOT NULL CHECK (tier IN ('free', 'basic', 'pro', 'enterprise', 'custom')),
    amount             bigint NOT NULL CHECK (amount >= 0),
    currency           char(3) NOT NULL,
    interval_unit      text NOT NULL CHECK (interval_unit IN ('day', 'week', 'month', 'year', 'one_time')),
    interval_count     integer NOT NULL DEFAULT 1 CHECK (interval_count BETWEEN 1 AND 365),
    trial_days         integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 730),
    features           jsonb NOT NULL DEFAULT '{}'::jsonb,
    credits_included   bigint NOT NULL DEFAULT 0 CHECK (credits_included >= 0),
    max_users          integer CHECK (max_users IS NULL OR max_users > 0),
    max_storage_bytes  bigint CHECK (max_storage_bytes IS NULL OR max_storage_bytes > 0),
    active             boolean NOT NULL DEFAULT true,
    stripe_product_id  text,
    stripe_price_id    text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    archived_at        timestamptz,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, code),
    CHECK (interval_unit <> 'one_time' OR interval_count = 1),
    CHECK (active OR archived_at IS NOT NULL)
);

CREATE INDEX plans_list ON plans (organization_id, active, tier, id);
