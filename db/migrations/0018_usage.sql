-- Usage-based billing (docs/usage.md): billable metrics, metered prices on plans, the
-- append-only usage events, their hourly pre-aggregates, and what each period's usage billed.

CREATE TABLE billable_metrics (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'bm\_%'),
    code             text NOT NULL,
    name             text NOT NULL,
    aggregation      text NOT NULL
                     CHECK (aggregation IN ('count', 'sum', 'max', 'unique_count', 'latest')),
    -- The event property aggregated: a number for sum, max and latest (null: the event's
    -- value), any scalar for unique_count (required); null for count.
    property         text,
    -- Only events whose properties match count: {"name": ["allowed", "values"], ...}.
    filters          jsonb NOT NULL DEFAULT '{}',
    archived_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, code),
    CHECK (aggregation <> 'count' OR property IS NULL),
    CHECK (aggregation <> 'unique_count' OR property IS NOT NULL)
);

-- A plan's metered components, fixed with the plan (like its price). Prices are exact decimals
-- of the currency's minor units (0.04 = 0.0004 USD); an amount is rounded once per line.
CREATE TABLE metered_prices (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'mp\_%'),
    plan_id          text NOT NULL,
    metric_id        text NOT NULL,
    position         integer NOT NULL,
    model            text NOT NULL CHECK (model IN ('per_unit', 'package', 'graduated', 'volume')),
    unit_price       numeric CHECK (unit_price >= 0),
    package_size     bigint CHECK (package_size > 0),
    -- [{"up_to": "1000" | null, "unit_price": "0.5", "flat_amount": 0}, ...], ascending.
    tiers            jsonb NOT NULL DEFAULT '[]',
    free_units       numeric NOT NULL DEFAULT 0 CHECK (free_units >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, plan_id, metric_id),
    FOREIGN KEY (organization_id, plan_id) REFERENCES plans (organization_id, id),
    FOREIGN KEY (organization_id, metric_id) REFERENCES billable_metrics (organization_id, id)
);

-- Every event as received. Append-only: a correction is a new event (a negative value for a
-- sum). `value` is what the metric aggregates (1 for a count), `unique_key` what a unique count
-- counts; events that do not match the metric's filters are kept with counted = false. The
-- idempotency key is the natural key; `id` (`use_…`, unique by construction) is what the API
-- shows, and is not indexed: every index costs ingestion about a third of its time.
CREATE TABLE usage_events (
    organization_id  text NOT NULL,
    id               text NOT NULL,
    idempotency_key  text NOT NULL,
    subscription_id  text NOT NULL,
    customer_id      text NOT NULL,
    metric_id        text NOT NULL,
    value            numeric NOT NULL,
    unique_key       text,
    properties       jsonb NOT NULL DEFAULT '{}',
    occurred_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    counted          boolean NOT NULL,
    PRIMARY KEY (organization_id, idempotency_key)
);
CREATE INDEX usage_events_window
    ON usage_events (organization_id, subscription_id, metric_id, occurred_at) WHERE counted;

CREATE FUNCTION usage_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'usage events are append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER usage_events_append_only
    BEFORE UPDATE OR DELETE ON usage_events
    FOR EACH ROW EXECUTE FUNCTION usage_events_append_only();

-- Pre-aggregates per subscription, metric and hour, written in the transaction that inserts
-- the events: a window's aggregate reads its whole hours here and only its partial first and
-- last hours from usage_events. latest_value: the value of the latest event (ties: the largest).
CREATE TABLE usage_hourly (
    organization_id  text NOT NULL,
    subscription_id  text NOT NULL,
    metric_id        text NOT NULL,
    hour             timestamptz NOT NULL,
    events           bigint NOT NULL,
    total            numeric NOT NULL,
    maximum          numeric NOT NULL,
    latest_at        timestamptz NOT NULL,
    latest_value     numeric NOT NULL,
    PRIMARY KEY (organization_id, subscription_id, metric_id, hour)
);

-- The distinct values a unique count counts, per hour.
CREATE TABLE usage_hourly_uniques (
    organization_id  text NOT NULL,
    subscription_id  text NOT NULL,
    metric_id        text NOT NULL,
    hour             timestamptz NOT NULL,
    unique_key       text NOT NULL,
    PRIMARY KEY (organization_id, subscription_id, metric_id, hour, unique_key)
);

-- The distinct values a unique count counts, per billing period (the period the event falls in,
-- as the subscription's periods stood when it was recorded): `currentUsage` counts one row per
-- value instead of one per value and hour (docs/usage.md, "Storage for volume").
CREATE TABLE usage_period_uniques (
    organization_id  text NOT NULL,
    subscription_id  text NOT NULL,
    metric_id        text NOT NULL,
    period_start     timestamptz NOT NULL,
    unique_key       text NOT NULL,
    PRIMARY KEY (organization_id, subscription_id, metric_id, period_start, unique_key)
);

-- What usage billed: per period and metric the rated line (kind 'usage'), the included
-- credits (kind 'credit', no metric) and later corrections for late events ('adjustment'),
-- each reserved by the key of the invoice that bills it (a retry finds its lines here).
CREATE TABLE usage_charges (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'uc\_%'),
    subscription_id  text NOT NULL,
    metric_id        text,
    kind             text NOT NULL CHECK (kind IN ('usage', 'credit', 'adjustment')),
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL CHECK (period_end > period_start),
    quantity         numeric NOT NULL,
    amount           bigint NOT NULL,
    -- The rated breakdown: [{"tier": 1, "from": "0", "to": "1000", "units": "...",
    -- "unit_price": "...", "flat_amount": 0, "amount": 123}, ...].
    tiers            jsonb NOT NULL DEFAULT '[]',
    invoice_key      text NOT NULL,
    -- When it was billed, by the organization's clock (the end of the invoice's period), and
    -- the invoice, once issued: revenueStats' usageBilled counts it there unless it is void.
    billed_at        timestamptz NOT NULL,
    invoice_id       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CHECK ((kind = 'credit') = (metric_id IS NULL) OR kind = 'adjustment')
);
CREATE INDEX usage_charges_subscription
    ON usage_charges (organization_id, subscription_id, metric_id, period_start);
CREATE INDEX usage_charges_invoice_key ON usage_charges (organization_id, invoice_key);

-- Billed periods that received late events since (organization setting late_usage = adjust):
-- the next invoice re-rates them and bills the difference.
CREATE TABLE usage_late_periods (
    organization_id  text NOT NULL,
    subscription_id  text NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    PRIMARY KEY (organization_id, subscription_id, period_start)
);

CREATE INDEX usage_charges_billed ON usage_charges (organization_id, billed_at);
