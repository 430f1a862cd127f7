-- Stripe webhook events that can never be applied (a signed event of the wrong shape, naming an
-- object that is not ours, or failing in a way a retry cannot fix) are acknowledged to Stripe,
-- so it stops retrying, and kept here as 'failed' with the reason, for an operator to see:
--
--   SELECT organization_id, event_id, type, attempts, received_at, error
--   FROM stripe_events WHERE state = 'failed' ORDER BY received_at DESC;
--
-- organization_id is '' when the event names no valid organization. A failed event is tried
-- again when it is delivered again (e.g. resent from the Stripe dashboard after a fix).

ALTER TABLE stripe_events
    DROP CONSTRAINT stripe_events_state_check,
    ADD CONSTRAINT stripe_events_state_check
        CHECK (state IN ('processing', 'processed', 'failed')),
    ADD COLUMN error text,
    ADD CONSTRAINT stripe_events_failure_has_error CHECK ((state = 'failed') = (error IS NOT NULL));

CREATE INDEX stripe_events_failed ON stripe_events (organization_id, received_at)
    WHERE state = 'failed';
