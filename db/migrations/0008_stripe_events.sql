-- Stripe webhook events, recorded once per (organization, event id): deliveries are
-- at-least-once, so a repeated or concurrent delivery of a processed event does nothing.

CREATE TABLE stripe_events (
    organization_id  text NOT NULL,
    event_id         text NOT NULL CHECK (event_id LIKE 'evt\_%'),
    type             text NOT NULL,
    state            text NOT NULL CHECK (state IN ('processing', 'processed')),
    attempts         integer NOT NULL DEFAULT 1,
    lease_until      timestamptz,
    received_at      timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    PRIMARY KEY (organization_id, event_id)
);
