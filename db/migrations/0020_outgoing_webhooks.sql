-- Outgoing webhooks: events for other back ends, written to an outbox in the transaction of the
-- change they describe, and delivered (signed) by the workers. See docs/webhooks.md.

-- The endpoints an organization's admins registered. The signing secret is kept in clear: it
-- signs every delivery. After a rotation the previous secret keeps signing (a second signature)
-- until previous_secret_expires_at.
CREATE TABLE webhook_endpoints (
    organization_id             text NOT NULL,
    id                          text NOT NULL CHECK (id LIKE 'we\_%'),
    url                         text NOT NULL CHECK (length(url) <= 2048),
    description                 text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    event_types                 text[] NOT NULL CHECK (cardinality(event_types) > 0),
    enabled                     boolean NOT NULL DEFAULT true,
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    -- Failing since: the time of the oldest event not acknowledged since the last success
    -- (set by the first failed attempt after it). The endpoint is disabled once this is
    -- WEBHOOK_MAX_AGE old, i.e. when nothing was acknowledged for the whole retry window.
    failing_since               timestamptz,
    last_success_at             timestamptz,
    disabled_reason             text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- The outbox. payload is the exact JSON envelope that is signed and sent (text, not jsonb, so
-- every redelivery sends the same bytes). dedupe_key makes an event that a sweep may find twice
-- (subscription.trial_will_end) be written once.
CREATE TABLE webhook_events (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'evt\_%'),
    type             text NOT NULL,
    api_version      text NOT NULL,
    object_id        text NOT NULL,
    payload          text NOT NULL,
    dedupe_key       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, dedupe_key)
);
CREATE INDEX webhook_events_by_type ON webhook_events (organization_id, type, created_at);
CREATE INDEX webhook_events_by_time ON webhook_events (organization_id, created_at);

-- One row per (event, endpoint), made in the same statement as the event for every enabled
-- endpoint that wants its type. Its id is derived from both ('whd_' + event part + '_' +
-- endpoint part), so it sorts by event time. next_attempt_at doubles as the lease: a worker that
-- claims a delivery moves it WEBHOOK_LEASE_SECONDS ahead, so a killed worker's claim lapses.
CREATE TABLE webhook_deliveries (
    organization_id   text NOT NULL,
    id                text NOT NULL CHECK (id LIKE 'whd\_%'),
    endpoint_id       text NOT NULL,
    event_id          text NOT NULL,
    event_type        text NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- retries go on until WEBHOOK_MAX_AGE after this (the event's time; a redelivery's)
    retry_from        timestamptz NOT NULL DEFAULT now(),
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, endpoint_id, event_id),
    FOREIGN KEY (organization_id, endpoint_id)
        REFERENCES webhook_endpoints (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, event_id) REFERENCES webhook_events (organization_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (organization_id, endpoint_id, id);

-- The log: one row per attempt (status_code NULL when no HTTP answer came back).
CREATE TABLE webhook_attempts (
    organization_id  text NOT NULL,
    delivery_id      text NOT NULL,
    attempt          integer NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      integer NOT NULL,
    status_code      integer,
    error            text,
    PRIMARY KEY (organization_id, delivery_id, attempt),
    FOREIGN KEY (organization_id, delivery_id)
        REFERENCES webhook_deliveries (organization_id, id) ON DELETE CASCADE
);
