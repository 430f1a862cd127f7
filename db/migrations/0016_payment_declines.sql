-- Declined charge attempts (docs/statistics.md, "Failed payments").
--
-- The statistics counted failed payments as payments *now* in the failed status. A charge that
-- is declined and then retried leaves that status (dunning cancels the declined payment before
-- it charges a new one; Stripe.js may retry the same PaymentIntent), and nothing else kept the
-- decline: the trigger of 0007 clears failed_at and the state machine clears failure_code when a
-- payment leaves FAILED. So a renewal declined and retried three times counted one failure
-- instead of four. From this release each decline is an event of its own, appended when the
-- payment's status becomes FAILED (app/stats_recorder.py, in the transaction that records it),
-- and failedPaymentCount counts these events.

CREATE TABLE payment_declines (
    organization_id  text NOT NULL,
    payment_id       text NOT NULL,
    -- Which attempt: the payment's operation key when the decline was recorded. For a
    -- confirmation, the prefix of the idempotency keys it sent to Stripe (the same for every
    -- retry of one request, different for every other request); for a refresh or webhook that
    -- found the decline, that refresh's own. 'create' for a payment inserted already failed;
    -- 'history' for a decline known only from a payment already failed when declines were
    -- first recorded (rows from before this table, bulk loads).
    attempt_key      text NOT NULL,
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    failure_code     text,
    -- The payment's failed_at: when the decline was recorded, by the organization's clock.
    declined_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, payment_id, attempt_key),
    FOREIGN KEY (organization_id, payment_id) REFERENCES payments (organization_id, id)
);

-- The ragged edges of a statistics range are read from here.
CREATE INDEX payment_declines_time ON payment_declines (organization_id, declined_at);

-- Every payment failed now was declined at least once, at its failed_at. (Declines of payments
-- that have left FAILED since were not kept anywhere and stay uncounted, as they were.)
INSERT INTO payment_declines
    (organization_id, payment_id, attempt_key, customer_id, currency, amount, failure_code,
     declined_at)
SELECT organization_id, id, 'history', customer_id, currency, amount, failure_code,
       coalesce(failed_at, updated_at)
FROM payments WHERE status = 'failed';

-- The rollups' failed counts are unchanged by this migration: they counted exactly the payments
-- now failed, by the bucket of failed_at, which are the rows just inserted. No rebuild needed.

-- Recompute every revenue rollup from the payments, declines and refunds. A failed payment with
-- no recorded decline (history loaded in bulk) first gets its 'history' one.
CREATE OR REPLACE FUNCTION stats_rebuild_revenue() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE revenue_rollups, revenue_totals IN EXCLUSIVE MODE;
    INSERT INTO payment_declines
        (organization_id, payment_id, attempt_key, customer_id, currency, amount, failure_code,
         declined_at)
    SELECT p.organization_id, p.id, 'history', p.customer_id, p.currency, p.amount,
           p.failure_code, coalesce(p.failed_at, p.updated_at)
    FROM payments p
    WHERE p.status = 'failed' AND NOT EXISTS (
        SELECT 1 FROM payment_declines d
        WHERE d.organization_id = p.organization_id AND d.payment_id = p.id)
    ON CONFLICT DO NOTHING;
    DELETE FROM revenue_rollups;
    DELETE FROM revenue_totals;
    INSERT INTO revenue_rollups
        (organization_id, currency, bucket, gross, payments, failed, refunded, refunds)
    SELECT organization_id, currency, bucket,
           sum(gross), sum(payments), sum(failed), sum(refunded), sum(refunds)
    FROM (
        SELECT organization_id, currency, stats_bucket(succeeded_at) AS bucket,
               amount_captured AS gross, 1 AS payments, 0 AS failed, 0 AS refunded, 0 AS refunds
        FROM payments WHERE status = 'succeeded'
        UNION ALL
        SELECT organization_id, currency, stats_bucket(declined_at), 0, 0, 1, 0, 0
        FROM payment_declines
        UNION ALL
        SELECT organization_id, currency, stats_bucket(succeeded_at), 0, 0, 0, amount, 1
        FROM refunds WHERE status = 'succeeded'
    ) parts
    GROUP BY organization_id, currency, bucket;
    INSERT INTO revenue_totals (organization_id, currency, gross, payments, failed, refunded, refunds)
    SELECT organization_id, currency, sum(gross), sum(payments), sum(failed), sum(refunded),
           sum(refunds)
    FROM revenue_rollups GROUP BY organization_id, currency;
END
$$;
