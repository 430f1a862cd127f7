-- Payments (one Stripe PaymentIntent each), their refunds, and idempotency keys for every
-- mutation that moves money.
--
-- Money invariants are enforced here, not only in Python: the refunded total of a payment is
-- bounded by what was captured (CHECK), status changes must follow the state machines (triggers),
-- and the amounts and owners of a payment or refund never change once written.

CREATE TABLE payments (
    organization_id           text NOT NULL,
    id                        text NOT NULL CHECK (id LIKE 'pay\_%'),
    customer_id               text NOT NULL,
    amount                    bigint NOT NULL CHECK (amount > 0),
    currency                  char(3) NOT NULL,
    status                    text NOT NULL CHECK (status IN (
                                  'requires_payment_method', 'requires_confirmation',
                                  'requires_action', 'processing', 'requires_capture',
                                  'succeeded', 'canceled', 'failed')),
    capture_method            text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    description               text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    order_id                  text CHECK (order_id IS NULL OR length(order_id) BETWEEN 1 AND 200),
    subtotal_amount           bigint CHECK (subtotal_amount >= 0),
    tax_amount                bigint CHECK (tax_amount >= 0),
    shipping_amount           bigint CHECK (shipping_amount >= 0),
    discount_amount           bigint CHECK (discount_amount >= 0),
    metadata                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    payment_method_id         text,
    stripe_payment_intent_id  text NOT NULL,
    client_secret             text,
    next_action               jsonb,
    amount_capturable         bigint NOT NULL DEFAULT 0 CHECK (amount_capturable >= 0),
    amount_captured           bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0),
    amount_refunded           bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    failure_code              text,
    failure_message           text,
    -- A Stripe call in flight (or interrupted): whoever finds it with an expired lease reads
    -- the PaymentIntent from Stripe before doing anything else.
    operation                 text CHECK (operation IN ('confirm', 'capture', 'cancel', 'refresh')),
    operation_key             text,
    operation_amount          bigint,
    lease_token               text,
    lease_until               timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id),
    UNIQUE (organization_id, stripe_payment_intent_id),
    CHECK (amount_captured <= amount),
    CHECK (amount_capturable <= amount),
    CHECK (amount_refunded <= amount_captured),
    CHECK (status = 'succeeded' OR amount_captured = 0),
    CHECK (
        (subtotal_amount IS NULL AND tax_amount IS NULL AND shipping_amount IS NULL
            AND discount_amount IS NULL)
        OR subtotal_amount + tax_amount + shipping_amount - discount_amount = amount
    ),
    CHECK ((operation IS NULL) = (operation_key IS NULL))
);

CREATE INDEX payments_customer ON payments (organization_id, customer_id, id);
CREATE INDEX payments_created ON payments (organization_id, created_at);

CREATE FUNCTION payments_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    allowed text[];
BEGIN
    IF NEW.amount <> OLD.amount OR NEW.currency <> OLD.currency
        OR NEW.customer_id <> OLD.customer_id
        OR NEW.stripe_payment_intent_id <> OLD.stripe_payment_intent_id THEN
        RAISE EXCEPTION 'payment % : amount, currency, customer and intent are immutable', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    allowed := CASE OLD.status
        WHEN 'requires_payment_method' THEN ARRAY['requires_confirmation', 'requires_action',
            'processing', 'requires_capture', 'succeeded', 'canceled', 'failed']
        WHEN 'requires_confirmation' THEN ARRAY['requires_payment_method', 'requires_action',
            'processing', 'requires_capture', 'succeeded', 'canceled', 'failed']
        WHEN 'requires_action' THEN ARRAY['requires_payment_method', 'requires_confirmation',
            'processing', 'requires_capture', 'succeeded', 'canceled', 'failed']
        WHEN 'processing' THEN ARRAY['requires_capture', 'succeeded', 'canceled', 'failed']
        WHEN 'requires_capture' THEN ARRAY['succeeded', 'canceled']
        WHEN 'failed' THEN ARRAY['requires_payment_method', 'requires_confirmation',
            'requires_action', 'processing', 'requires_capture', 'succeeded', 'canceled']
        ELSE ARRAY[]::text[]
    END;
    IF NOT NEW.status = ANY (allowed) THEN
        RAISE EXCEPTION 'payment % : illegal transition % -> %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER payments_guard BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_guard();

CREATE TABLE refunds (
    organization_id         text NOT NULL,
    id                      text NOT NULL CHECK (id LIKE 're\_%'),
    payment_id              text NOT NULL,
    customer_id             text NOT NULL,
    amount                  bigint NOT NULL CHECK (amount > 0),
    currency                char(3) NOT NULL,
    reason                  text NOT NULL CHECK (reason IN (
                                'duplicate', 'fraudulent', 'requested_by_customer', 'other')),
    note                    text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
    status                  text NOT NULL CHECK (status IN (
                                'pending_approval', 'pending', 'succeeded', 'failed',
                                'canceled', 'rejected')),
    stripe_refund_id        text,
    -- Set when the refund is released to Stripe; every attempt to create it there reuses it.
    stripe_idempotency_key  text,
    failure_reason          text,
    requested_by            text NOT NULL,
    approved_by             text,
    approved_at             timestamptz,
    rejected_by             text,
    rejected_at             timestamptz,
    rejection_reason        text CHECK (rejection_reason IS NULL OR length(rejection_reason) <= 1000),
    lease_token             text,
    lease_until             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, payment_id) REFERENCES payments (organization_id, id),
    UNIQUE (organization_id, stripe_refund_id),
    CHECK (status = 'pending_approval' OR status = 'rejected' OR stripe_idempotency_key IS NOT NULL),
    CHECK (status <> 'rejected' OR (rejected_by IS NOT NULL AND rejected_at IS NOT NULL)),
    CHECK (status NOT IN ('succeeded', 'canceled') OR stripe_refund_id IS NOT NULL)
);

CREATE INDEX refunds_payment ON refunds (organization_id, payment_id, id);
CREATE INDEX refunds_customer ON refunds (organization_id, customer_id, id);

CREATE FUNCTION refunds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    allowed text[];
BEGIN
    IF NEW.amount <> OLD.amount OR NEW.currency <> OLD.currency
        OR NEW.payment_id <> OLD.payment_id OR NEW.customer_id <> OLD.customer_id THEN
        RAISE EXCEPTION 'refund % : amount, currency and payment are immutable', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    allowed := CASE OLD.status
        WHEN 'pending_approval' THEN ARRAY['pending', 'rejected']
        WHEN 'pending' THEN ARRAY['succeeded', 'failed', 'canceled']
        WHEN 'succeeded' THEN ARRAY['failed', 'canceled']
        ELSE ARRAY[]::text[]
    END;
    IF NOT NEW.status = ANY (allowed) THEN
        RAISE EXCEPTION 'refund % : illegal transition % -> %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER refunds_guard BEFORE UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_guard();

-- Idempotency keys of money mutations, per organization. A key is claimed (in_flight, with a
-- lease) before any work; completed keys keep a reference to their result for at least 24 hours.
CREATE TABLE idempotency_keys (
    organization_id  text NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    operation        text NOT NULL,
    request_hash     text NOT NULL,
    resource_id      text NOT NULL,
    state            text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    response         jsonb,
    lease_token      text NOT NULL,
    locked_until     timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (organization_id, key),
    CHECK ((state = 'completed') = (response IS NOT NULL AND completed_at IS NOT NULL))
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
