-- Subscriptions (our engine is the source of truth for billing; Stripe moves the money) and the
-- per-organization test clocks that drive them in test mode.

CREATE TABLE subscriptions (
    organization_id       text NOT NULL,
    id                    text NOT NULL CHECK (id LIKE 'sub\_%'),
    customer_id           text NOT NULL,
    plan_id               text NOT NULL,
    quantity              integer NOT NULL DEFAULT 1 CHECK (quantity BETWEEN 1 AND 1000000),
    status                text NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled',
                              'unpaid', 'incomplete', 'incomplete_expired', 'paused')),
    currency              char(3) NOT NULL,
    unit_amount           bigint NOT NULL CHECK (unit_amount >= 0),
    interval_unit         text NOT NULL CHECK (interval_unit IN ('day', 'week', 'month', 'year')),
    interval_count        integer NOT NULL CHECK (interval_count BETWEEN 1 AND 365),
    billing_anchor        timestamptz NOT NULL,
    period_index          integer,
    current_period_start  timestamptz NOT NULL,
    current_period_end    timestamptz NOT NULL CHECK (current_period_end > current_period_start),
    trial_start           timestamptz,
    trial_end             timestamptz,
    cancel_at_period_end  boolean NOT NULL DEFAULT false,
    canceled_at           timestamptz,
    ended_at              timestamptz,
    cancel_reason         text,
    cancel_feedback       text CHECK (cancel_feedback IS NULL OR length(cancel_feedback) <= 2000),
    paused_at             timestamptz,
    resumes_at            timestamptz,
    dunning_attempts      integer NOT NULL DEFAULT 0,
    next_retry_at         timestamptz,
    latest_invoice_id     text,
    next_action_at        timestamptz,
    leased_until          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id),
    FOREIGN KEY (organization_id, plan_id) REFERENCES plans (organization_id, id)
);

-- One customer cannot hold two live subscriptions to the same plan.
CREATE UNIQUE INDEX subscriptions_one_live_per_plan
    ON subscriptions (organization_id, customer_id, plan_id)
    WHERE status IN ('trialing', 'active', 'past_due', 'unpaid', 'incomplete', 'paused');

-- The worker's queue: rows with something due, claimed with FOR UPDATE SKIP LOCKED.
CREATE INDEX subscriptions_due ON subscriptions (next_action_at) WHERE next_action_at IS NOT NULL;
CREATE INDEX subscriptions_by_customer ON subscriptions (organization_id, customer_id, id);

CREATE TABLE test_clocks (
    organization_id  text PRIMARY KEY,
    frozen_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Proration lines created by a plan change with CREATE_PRORATIONS, waiting for the next renewal
-- invoice; taken_by is the billing key of the period that takes them.
CREATE TABLE subscription_pending_lines (
    organization_id  text NOT NULL,
    id               text NOT NULL,
    subscription_id  text NOT NULL,
    description      text NOT NULL,
    quantity         integer NOT NULL,
    amount           bigint NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    taken_by         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, subscription_id) REFERENCES subscriptions (organization_id, id)
);

CREATE INDEX subscription_pending_lines_open
    ON subscription_pending_lines (organization_id, subscription_id) WHERE taken_by IS NULL;
