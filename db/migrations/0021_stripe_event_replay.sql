-- Incoming Stripe events that failed to apply keep their verified payload, so an admin can
-- replay them (stripeEventReplay) once the cause is fixed, without waiting for Stripe to resend.
ALTER TABLE stripe_events ADD COLUMN payload text;

-- What reconciliation with Stripe repaired (billing reconcile, the worker's periodic task): one
-- row per record whose state was brought in line with Stripe's, for an operator and /metrics.
CREATE TABLE reconciliation_repairs (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'rcn\_%'),
    kind             text NOT NULL CHECK (kind IN ('payment', 'refund')),
    object_id        text NOT NULL,
    status_before    text NOT NULL,
    status_after     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX reconciliation_repairs_by_object ON reconciliation_repairs (organization_id, object_id);

-- What reconciliation reads: payments short of a final status, refunds pending at Stripe.
CREATE INDEX payments_not_final ON payments (created_at)
    WHERE status NOT IN ('succeeded', 'canceled');
CREATE INDEX refunds_pending_at_stripe ON refunds (created_at)
    WHERE status = 'pending' AND stripe_refund_id IS NOT NULL;
