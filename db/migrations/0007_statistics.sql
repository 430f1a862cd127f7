-- Statistics (docs/statistics.md).
--
-- 1. When a payment or refund reached the status that counts (succeeded, failed), stamped on the
--    row by a trigger with the organization's clock.
-- 2. Revenue rollups: per organization, currency and 15-minute UTC bucket (and over all time),
--    kept up to date by app/stats_recorder.py in the transaction that records each payment or
--    refund change.
-- 3. Subscription statistics: each subscription's last recorded state, each customer's MRR per
--    currency, an append-only ledger of changes with their MRR movement, and rollups of it
--    (current totals, per-day changes), written in the transaction of each subscription change.
-- 4. The MRR definition (stats_subscription_mrr) and one-off builders used by this migration and
--    by bulk loads (bench/statistics.py).

-- The organization's clock: its test clock when one is set, else the transaction's now() (the
-- rule the billing worker's claim query uses).
CREATE FUNCTION organization_clock(org text) RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT frozen_at FROM test_clocks WHERE organization_id = org), now())
$$;

-- The 15-minute UTC bucket of an instant. Every time zone in use today is offset from UTC by a
-- multiple of 15 minutes, so local days, weeks and months are unions of whole buckets.
CREATE FUNCTION stats_bucket(at timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00:00+00')
$$;

-- 1. Event times -------------------------------------------------------------------------------

ALTER TABLE payments
    ADD COLUMN succeeded_at timestamptz,
    ADD COLUMN failed_at timestamptz;
ALTER TABLE refunds ADD COLUMN succeeded_at timestamptz;

-- Rows written before this release get the best time they still tell: a succeeded payment was
-- last changed when it succeeded unless a refund changed it since (refunds come after success).
UPDATE payments p
SET succeeded_at = least(
    p.updated_at,
    (SELECT min(r.created_at) FROM refunds r
     WHERE r.organization_id = p.organization_id AND r.payment_id = p.id))
WHERE p.status = 'succeeded';
UPDATE payments SET failed_at = updated_at WHERE status = 'failed';
UPDATE refunds SET succeeded_at = updated_at WHERE status = 'succeeded';

-- A payment's succeeded_at / failed_at: when it entered that status (NULL in any other). An
-- INSERT may bring its own (bulk loads of history); a status change stamps the clock. (The
-- trigger is the rule, not a CHECK: tests of the state machine put rows in any status with
-- triggers off.)
CREATE FUNCTION payments_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status = OLD.status THEN
            NEW.succeeded_at := OLD.succeeded_at;
            NEW.failed_at := OLD.failed_at;
            RETURN NEW;
        END IF;
        NEW.succeeded_at := NULL;
        NEW.failed_at := NULL;
    END IF;
    NEW.succeeded_at := CASE WHEN NEW.status = 'succeeded'
        THEN coalesce(NEW.succeeded_at, organization_clock(NEW.organization_id)) END;
    NEW.failed_at := CASE WHEN NEW.status = 'failed'
        THEN coalesce(NEW.failed_at, organization_clock(NEW.organization_id)) END;
    RETURN NEW;
END
$$;

CREATE TRIGGER payments_stamp BEFORE INSERT OR UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_stamp();

-- A refund's succeeded_at: when it succeeded (kept if the bank later returns it).
CREATE FUNCTION refunds_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.status = OLD.status OR NEW.status <> 'succeeded' THEN
            NEW.succeeded_at := OLD.succeeded_at;
        ELSE
            NEW.succeeded_at := organization_clock(NEW.organization_id);
        END IF;
        RETURN NEW;
    END IF;
    NEW.succeeded_at := CASE WHEN NEW.status = 'succeeded'
        THEN coalesce(NEW.succeeded_at, organization_clock(NEW.organization_id)) END;
    RETURN NEW;
END
$$;

CREATE TRIGGER refunds_stamp BEFORE INSERT OR UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_stamp();

-- The edges of a statistics range that do not fill a whole bucket are read from these.
CREATE INDEX payments_succeeded ON payments (organization_id, succeeded_at)
    WHERE succeeded_at IS NOT NULL;
CREATE INDEX payments_failed ON payments (organization_id, failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX refunds_succeeded ON refunds (organization_id, succeeded_at)
    WHERE succeeded_at IS NOT NULL;

-- 2. Revenue rollups ---------------------------------------------------------------------------

-- Sums over the payments and refunds of one organization and currency whose time falls in the
-- bucket: succeeded payments (by succeeded_at), payments now failed (by failed_at), succeeded
-- refunds (by their succeeded_at).
CREATE TABLE revenue_rollups (
    organization_id  text NOT NULL,
    currency         char(3) NOT NULL,
    bucket           timestamptz NOT NULL CHECK (stats_bucket(bucket) = bucket),
    gross            bigint NOT NULL DEFAULT 0,
    payments         bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    refunded         bigint NOT NULL DEFAULT 0,
    refunds          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, currency, bucket)
);

-- The same sums over all time (the dashboard's running total), kept alongside.
CREATE TABLE revenue_totals (
    organization_id  text NOT NULL,
    currency         char(3) NOT NULL,
    gross            bigint NOT NULL DEFAULT 0,
    payments         bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    refunded         bigint NOT NULL DEFAULT 0,
    refunds          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, currency)
);

-- 3. Subscription statistics -------------------------------------------------------------------

-- What the statistics last recorded for each subscription (the "before" of its next change).
CREATE TABLE subscription_stat_states (
    organization_id  text NOT NULL,
    subscription_id  text NOT NULL,
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    plan_id          text NOT NULL,
    status           text NOT NULL,
    mrr              bigint NOT NULL CHECK (mrr >= 0),
    recorded_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, subscription_id)
);

-- Each customer's MRR per currency, and how many times it went from none to some (1: new
-- business; more: reactivations).
CREATE TABLE customer_mrr_states (
    organization_id  text NOT NULL,
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    mrr              bigint NOT NULL CHECK (mrr >= 0),
    episodes         integer NOT NULL CHECK (episodes >= 0),
    PRIMARY KEY (organization_id, customer_id, currency)
);

-- Append-only: one row per change of a subscription's status, plan or MRR. movement classifies
-- mrr_after - mrr_before at the customer's level in that currency.
CREATE TABLE subscription_stat_events (
    organization_id  text NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at      timestamptz NOT NULL,
    subscription_id  text NOT NULL,
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    plan_before      text,
    status_before    text,
    mrr_before       bigint NOT NULL,
    plan_after       text NOT NULL,
    status_after     text NOT NULL,
    mrr_after        bigint NOT NULL,
    movement         text CHECK (movement IN (
                         'new', 'expansion', 'contraction', 'churn', 'reactivation')),
    PRIMARY KEY (organization_id, id),
    CHECK ((plan_before IS NULL) = (status_before IS NULL)),
    CHECK ((movement IS NULL) = (mrr_after = mrr_before))
);

CREATE INDEX subscription_stat_events_time ON subscription_stat_events (organization_id, occurred_at);

-- Subscriptions and their MRR by currency, plan and status: now (totals) and the change of each
-- UTC day (days), so the figures at any instant are the totals minus the changes after it.
CREATE TABLE subscription_stat_totals (
    organization_id  text NOT NULL,
    currency         char(3) NOT NULL,
    plan_id          text NOT NULL,
    status           text NOT NULL,
    subscriptions    bigint NOT NULL,
    mrr              bigint NOT NULL,
    PRIMARY KEY (organization_id, currency, plan_id, status)
);

CREATE TABLE subscription_stat_days (
    organization_id  text NOT NULL,
    day              date NOT NULL,
    currency         char(3) NOT NULL,
    plan_id          text NOT NULL,
    status           text NOT NULL,
    subscriptions    bigint NOT NULL,
    mrr              bigint NOT NULL,
    PRIMARY KEY (organization_id, day, currency, plan_id, status)
);

-- MRR movements, paying-customer changes and trials per UTC day and currency.
CREATE TABLE mrr_movement_days (
    organization_id        text NOT NULL,
    currency               char(3) NOT NULL,
    day                    date NOT NULL,
    new_mrr                bigint NOT NULL DEFAULT 0,
    expansion_mrr          bigint NOT NULL DEFAULT 0,
    contraction_mrr        bigint NOT NULL DEFAULT 0,
    churned_mrr            bigint NOT NULL DEFAULT 0,
    reactivation_mrr       bigint NOT NULL DEFAULT 0,
    new_customers          bigint NOT NULL DEFAULT 0,
    reactivated_customers  bigint NOT NULL DEFAULT 0,
    churned_customers      bigint NOT NULL DEFAULT 0,
    trials_started         bigint NOT NULL DEFAULT 0,
    trials_ended           bigint NOT NULL DEFAULT 0,
    trials_converted       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, currency, day)
);

-- The coupon of a subscription's current period is found by its redemption key.
CREATE INDEX discount_redemptions_period ON discount_redemptions (organization_id, period_key);

-- 4. The MRR definition ------------------------------------------------------------------------

-- n / d rounded to the nearest integer, ties to even (n >= 0, d > 0).
CREATE FUNCTION stats_div_half_even(n numeric, d numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT (div(n, d) + CASE
        WHEN 2 * mod(n, d) > d OR (2 * mod(n, d) = d AND mod(div(n, d), 2) = 1) THEN 1
        ELSE 0 END)::bigint
$$;

-- A price per period as a month: month / n, year / 12n, week x 52 / 12n, day x 365 / 12n,
-- rounded half-even; 0 for one-time prices. (Each argument appears once where it may be an
-- expression, so PostgreSQL can inline the function into a query.)
CREATE FUNCTION stats_monthly(amount bigint, unit text, n integer) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT stats_div_half_even(
        amount * (CASE unit WHEN 'month' THEN 1 WHEN 'year' THEN 1 WHEN 'week' THEN 52
                            WHEN 'day' THEN 365 ELSE 0 END)::numeric,
        n * CASE unit WHEN 'month' THEN 1 ELSE 12 END)
$$;

-- A subscription's MRR: ACTIVE and PAST_DUE only; unit price x quantity, less the coupon
-- redeemed for its current period (as the invoice computes it: percent rounded half away from
-- zero, or the amount off capped at the price), normalised to a month.
CREATE FUNCTION stats_subscription_mrr(s subscriptions) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.status IN ('active', 'past_due') THEN stats_monthly(
        s.unit_amount * s.quantity - coalesce((
            SELECT CASE
                WHEN c.percent_off IS NOT NULL
                    THEN div(s.unit_amount * s.quantity * c.percent_off::numeric + 5000, 10000)::bigint
                ELSE least(c.amount_off, s.unit_amount * s.quantity)
            END
            FROM discount_redemptions r
            JOIN discounts d ON d.organization_id = r.organization_id AND d.id = r.discount_id
            JOIN coupons c ON c.organization_id = d.organization_id AND c.id = d.coupon_id
            WHERE r.organization_id = s.organization_id
              AND r.period_key = s.id || ':' || s.period_index
              AND (c.currency IS NULL OR c.currency = s.currency)
            ORDER BY r.created_at DESC, r.discount_id DESC
            LIMIT 1), 0),
        s.interval_unit, s.interval_count) ELSE 0 END
$$;

-- Builders -------------------------------------------------------------------------------------

-- Recompute every revenue rollup from the payments and refunds (exact; the live path keeps them
-- so afterwards). The table lock makes concurrent payment changes wait, so none is lost.
CREATE FUNCTION stats_rebuild_revenue() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE revenue_rollups, revenue_totals IN EXCLUSIVE MODE;
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
        SELECT organization_id, currency, stats_bucket(failed_at), 0, 0, 1, 0, 0
        FROM payments WHERE status = 'failed'
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

-- Record every subscription as if it had been in its current state since it was created: the
-- starting point for subscriptions that predate the statistics (history before is unknown).
-- Only for a database without subscription statistics yet.
CREATE FUNCTION stats_baseline_subscriptions() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM subscription_stat_states) THEN
        RAISE EXCEPTION 'subscription statistics already exist; the baseline is for a fresh start';
    END IF;
    CREATE TEMPORARY TABLE stats_fresh ON COMMIT DROP AS
    SELECT s.organization_id, s.id, s.customer_id, s.currency, s.plan_id, s.status,
           stats_subscription_mrr(s) AS mrr, s.created_at,
           (s.created_at AT TIME ZONE 'UTC')::date AS day
    FROM subscriptions s;
    -- Customer-level movement: a customer's first subscription with MRR is new business, the
    -- others expand it.
    CREATE TEMPORARY TABLE stats_ranked ON COMMIT DROP AS
    SELECT f.*, CASE
        WHEN f.mrr = 0 THEN NULL
        WHEN sum(f.mrr) OVER w = f.mrr THEN 'new'
        ELSE 'expansion' END AS movement
    FROM stats_fresh f
    WINDOW w AS (PARTITION BY organization_id, customer_id, currency ORDER BY created_at, id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

    INSERT INTO subscription_stat_states
        (organization_id, subscription_id, customer_id, currency, plan_id, status, mrr, recorded_at)
    SELECT organization_id, id, customer_id, currency, plan_id, status, mrr, created_at
    FROM stats_fresh;
    INSERT INTO subscription_stat_events
        (organization_id, occurred_at, subscription_id, customer_id, currency, plan_before,
         status_before, mrr_before, plan_after, status_after, mrr_after, movement)
    SELECT organization_id, created_at, id, customer_id, currency, NULL, NULL, 0, plan_id, status,
           mrr, movement
    FROM stats_ranked ORDER BY created_at, id;
    INSERT INTO customer_mrr_states (organization_id, customer_id, currency, mrr, episodes)
    SELECT organization_id, customer_id, currency, sum(mrr), CASE WHEN sum(mrr) > 0 THEN 1 ELSE 0 END
    FROM stats_fresh GROUP BY organization_id, customer_id, currency;
    INSERT INTO subscription_stat_totals
        (organization_id, currency, plan_id, status, subscriptions, mrr)
    SELECT organization_id, currency, plan_id, status, count(*), sum(mrr)
    FROM stats_fresh GROUP BY organization_id, currency, plan_id, status;
    INSERT INTO subscription_stat_days
        (organization_id, day, currency, plan_id, status, subscriptions, mrr)
    SELECT organization_id, day, currency, plan_id, status, count(*), sum(mrr)
    FROM stats_fresh GROUP BY organization_id, day, currency, plan_id, status;
    INSERT INTO mrr_movement_days
        (organization_id, currency, day, new_mrr, expansion_mrr, new_customers, trials_started)
    SELECT organization_id, currency, day,
           coalesce(sum(mrr) FILTER (WHERE movement = 'new'), 0),
           coalesce(sum(mrr) FILTER (WHERE movement = 'expansion'), 0),
           count(*) FILTER (WHERE movement = 'new'),
           count(*) FILTER (WHERE status = 'trialing')
    FROM stats_ranked GROUP BY organization_id, currency, day;
END
$$;

SELECT stats_rebuild_revenue();
SELECT stats_baseline_subscriptions();
