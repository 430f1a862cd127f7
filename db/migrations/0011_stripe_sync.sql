-- The Stripe mirror of customers and plans is written without holding a transaction (or a pooled
-- connection) across the call to Stripe: the row is reserved with a lease in one short statement,
-- Stripe is called, and the answer is recorded in another. These columns are that lease and what
-- it leaves behind.
--
--   stripe_sync_token / stripe_sync_until: who is writing the row's Stripe object, until when.
--     A lease still running means a call is in flight (others wait for it); one that expired
--     means its holder died or gave up without knowing what Stripe did.
--   stripe_synced: Stripe holds the row's mirrored values (false after an unknown outcome, such
--     as a timeout, until the next write to Stripe repairs it). A row whose Stripe id is still
--     null has no Stripe object yet: it is created on demand with the row's idempotency key.

ALTER TABLE customers
    ADD COLUMN stripe_sync_token text,
    ADD COLUMN stripe_sync_until timestamptz,
    ADD COLUMN stripe_synced boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT customers_stripe_sync_lease
        CHECK ((stripe_sync_token IS NULL) = (stripe_sync_until IS NULL));

ALTER TABLE plans
    ADD COLUMN stripe_sync_token text,
    ADD COLUMN stripe_sync_until timestamptz,
    ADD COLUMN stripe_synced boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT plans_stripe_sync_lease
        CHECK ((stripe_sync_token IS NULL) = (stripe_sync_until IS NULL));
