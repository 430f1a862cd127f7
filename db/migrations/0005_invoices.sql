-- Invoices and what they are made of: per-organization settings and gapless document counters,
-- tax rates, coupons applied to customers or subscriptions, invoices with their lines, credit
-- notes, and the customers' credit balances with their ledger.
--
-- Invariants are enforced here as well as in Python: totals add up (CHECK), status changes follow
-- the state machine and a finalized invoice's number, customer, currency, totals and lines never
-- change (triggers), numbers are unique per organization (UNIQUE), and a credit balance or a
-- coupon's redemptions can never go below zero or past their limit (CHECK).

CREATE TABLE invoice_settings (
    organization_id  text PRIMARY KEY,
    number_prefix    text NOT NULL DEFAULT 'INV' CHECK (number_prefix ~ '^[A-Z0-9][A-Z0-9-]{0,19}$'),
    issuer_name      text NOT NULL DEFAULT '' CHECK (length(issuer_name) <= 200),
    issuer_address   jsonb NOT NULL DEFAULT '[]'::jsonb,
    days_until_due   integer CHECK (days_until_due BETWEEN 0 AND 365),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per organization and numbered series, incremented in the transaction that assigns the
-- number: a rolled-back finalization rolls its increment back too, so numbers have no gaps
-- (a SEQUENCE would leave one for every rollback).
CREATE TABLE document_counters (
    organization_id  text NOT NULL,
    series           text NOT NULL CHECK (series IN ('invoice', 'credit_note')),
    last_number      bigint NOT NULL CHECK (last_number > 0),
    PRIMARY KEY (organization_id, series)
);

CREATE TABLE tax_rates (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'txr\_%'),
    name             text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    rate             integer NOT NULL CHECK (rate BETWEEN 0 AND 1000000),  -- millionths
    inclusive        boolean NOT NULL,
    country          char(2) NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    region           text NOT NULL DEFAULT '' CHECK (length(region) <= 100 AND region = upper(region)),
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    archived_at      timestamptz,
    PRIMARY KEY (organization_id, id),
    CHECK (active OR archived_at IS NOT NULL)
);

CREATE UNIQUE INDEX tax_rates_jurisdiction ON tax_rates (organization_id, country, region)
    WHERE active;

CREATE TABLE coupons (
    organization_id   text NOT NULL,
    id                text NOT NULL CHECK (id LIKE 'coup\_%'),
    code              text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name              text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    percent_off       integer CHECK (percent_off BETWEEN 1 AND 10000),  -- basis points
    amount_off        bigint CHECK (amount_off > 0),
    currency          char(3),
    duration          text NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
    duration_periods  integer CHECK (duration_periods BETWEEN 1 AND 1200),
    max_redemptions   integer CHECK (max_redemptions > 0),
    times_redeemed    integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
    redeem_by         timestamptz,
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    archived_at       timestamptz,
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, code),
    CHECK ((percent_off IS NULL) <> (amount_off IS NULL)),
    CHECK ((amount_off IS NULL) = (currency IS NULL)),
    CHECK ((duration = 'repeating') = (duration_periods IS NOT NULL)),
    CHECK (max_redemptions IS NULL OR times_redeemed <= max_redemptions),
    CHECK (active OR archived_at IS NOT NULL)
);

-- A coupon applied to a customer (subscription_id NULL: all its invoices) or to one
-- subscription. periods_used counts the billing periods (invoices) it has discounted.
CREATE TABLE discounts (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'di\_%'),
    coupon_id        text NOT NULL,
    customer_id      text NOT NULL,
    subscription_id  text,
    periods_used     integer NOT NULL DEFAULT 0 CHECK (periods_used >= 0),
    ended_at         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, coupon_id) REFERENCES coupons (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);

CREATE UNIQUE INDEX discounts_customer_current ON discounts (organization_id, customer_id)
    WHERE subscription_id IS NULL AND ended_at IS NULL;
CREATE UNIQUE INDEX discounts_subscription_current ON discounts (organization_id, subscription_id)
    WHERE subscription_id IS NOT NULL AND ended_at IS NULL;

-- One row per billing period a discount was used for: the key makes a retried period free.
CREATE TABLE discount_redemptions (
    organization_id  text NOT NULL,
    discount_id      text NOT NULL,
    period_key       text NOT NULL CHECK (length(period_key) BETWEEN 1 AND 200),
    invoice_id       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, discount_id, period_key),
    FOREIGN KEY (organization_id, discount_id) REFERENCES discounts (organization_id, id)
);

CREATE TABLE invoices (
    organization_id             text NOT NULL,
    id                          text NOT NULL CHECK (id LIKE 'inv\_%'),
    customer_id                 text NOT NULL,
    subscription_id             text,
    status                      text NOT NULL CHECK (status IN (
                                    'draft', 'open', 'paid', 'void', 'uncollectible')),
    number                      text,
    number_sequence             bigint CHECK (number_sequence > 0),
    currency                    char(3) NOT NULL,
    memo                        text NOT NULL DEFAULT '' CHECK (length(memo) <= 2000),
    due_date                    date,
    period_start                timestamptz,
    period_end                  timestamptz,
    subtotal                    bigint NOT NULL DEFAULT 0,
    discount_total              bigint NOT NULL DEFAULT 0 CHECK (discount_total >= 0),
    taxable_amount              bigint NOT NULL DEFAULT 0,
    tax_total                   bigint NOT NULL DEFAULT 0,
    tax_inclusive               boolean NOT NULL DEFAULT false,
    total                       bigint NOT NULL DEFAULT 0,
    balance_applied             bigint NOT NULL DEFAULT 0 CHECK (balance_applied >= 0),
    credit_to_balance           bigint NOT NULL DEFAULT 0 CHECK (credit_to_balance >= 0),
    credit_applied              bigint NOT NULL DEFAULT 0 CHECK (credit_applied >= 0),
    amount_credited             bigint NOT NULL DEFAULT 0 CHECK (amount_credited >= 0),
    amount_due                  bigint NOT NULL DEFAULT 0 CHECK (amount_due >= 0),
    amount_paid                 bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    tax_rate_id                 text,
    tax_name                    text,
    tax_rate                    integer CHECK (tax_rate BETWEEN 0 AND 1000000),
    reverse_charge              boolean NOT NULL DEFAULT false,
    discount_id                 text,
    coupon_id                   text,
    payment_id                  text,
    payment_attempts            integer NOT NULL DEFAULT 0 CHECK (payment_attempts >= 0),
    last_payment_error_code     text,
    last_payment_error_message  text,
    -- A charge in flight ("bill this invoice now"): one at a time per invoice.
    payment_lease_token         text,
    payment_lease_until         timestamptz,
    customer_snapshot           jsonb,
    issuer_snapshot             jsonb,
    status_reason               text CHECK (length(status_reason) <= 500),
    finalized_at                timestamptz,
    paid_at                     timestamptz,
    voided_at                   timestamptz,
    marked_uncollectible_at     timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id),
    FOREIGN KEY (organization_id, payment_id) REFERENCES payments (organization_id, id),
    UNIQUE (organization_id, number),
    UNIQUE (organization_id, number_sequence),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK ((number IS NULL) = (number_sequence IS NULL)),
    CHECK ((status = 'draft') = (finalized_at IS NULL)),
    CHECK (total = subtotal - discount_total + CASE WHEN tax_inclusive THEN 0 ELSE tax_total END),
    CHECK (amount_due = greatest(total, 0) - balance_applied - credit_applied),
    CHECK (credit_to_balance = greatest(-total, 0)),
    CHECK (amount_credited <= greatest(total, 0)),
    CHECK (amount_paid <= amount_due),
    CHECK (status <> 'paid' OR amount_paid = amount_due),
    CHECK (period_start IS NULL OR period_end IS NULL OR period_end >= period_start),
    CHECK ((payment_lease_token IS NULL) = (payment_lease_until IS NULL))
);

CREATE INDEX invoices_customer ON invoices (organization_id, customer_id, id);
CREATE INDEX invoices_status ON invoices (organization_id, status, id);
CREATE INDEX invoices_subscription ON invoices (organization_id, subscription_id, id)
    WHERE subscription_id IS NOT NULL;

CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    allowed text[];
BEGIN
    IF OLD.status <> 'draft' AND (
        NEW.number IS DISTINCT FROM OLD.number
        OR NEW.customer_id <> OLD.customer_id OR NEW.currency <> OLD.currency
        OR NEW.subtotal <> OLD.subtotal OR NEW.discount_total <> OLD.discount_total
        OR NEW.tax_total <> OLD.tax_total OR NEW.total <> OLD.total
        OR NEW.balance_applied <> OLD.balance_applied) THEN
        RAISE EXCEPTION 'invoice % : a finalized invoice''s number, customer and totals are fixed',
            OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    allowed := CASE OLD.status
        WHEN 'draft' THEN ARRAY['open', 'paid']
        WHEN 'open' THEN ARRAY['paid', 'void', 'uncollectible']
        WHEN 'uncollectible' THEN ARRAY['paid', 'void']
        ELSE ARRAY[]::text[]
    END;
    IF NOT NEW.status = ANY (allowed) THEN
        RAISE EXCEPTION 'invoice % : illegal transition % -> %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER invoices_guard BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_guard();

CREATE TABLE invoice_lines (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'il\_%'),
    invoice_id       text NOT NULL,
    position         integer NOT NULL CHECK (position >= 0),
    kind             text NOT NULL CHECK (kind IN (
                         'subscription', 'proration', 'usage', 'one_off', 'discount', 'tax')),
    description      text NOT NULL CHECK (length(description) BETWEEN 1 AND 1000),
    quantity         bigint NOT NULL CHECK (quantity >= 0),
    unit_amount      bigint NOT NULL,
    amount           bigint NOT NULL,
    discount_amount  bigint NOT NULL DEFAULT 0,
    taxable          boolean NOT NULL,
    tax_rate         integer CHECK (tax_rate BETWEEN 0 AND 1000000),
    informational    boolean NOT NULL DEFAULT false,
    period_start     timestamptz,
    period_end       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id),
    UNIQUE (organization_id, invoice_id, position),
    CHECK (amount = quantity * unit_amount)
);

-- Lines change only while their invoice is a draft (finalization rewrites them before it
-- leaves the draft status, in the same transaction).
CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    line invoice_lines;
    current text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        line := OLD;
    ELSE
        line := NEW;
    END IF;
    SELECT status INTO current FROM invoices
        WHERE organization_id = line.organization_id AND id = line.invoice_id;
    IF current IS DISTINCT FROM 'draft' THEN
        RAISE EXCEPTION 'invoice % : lines of a finalized invoice cannot change', line.invoice_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN line;
END
$$;

CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard();

CREATE TABLE credit_notes (
    organization_id      text NOT NULL,
    id                   text NOT NULL CHECK (id LIKE 'cn\_%'),
    number               text NOT NULL,
    number_sequence      bigint NOT NULL CHECK (number_sequence > 0),
    invoice_id           text NOT NULL,
    customer_id          text NOT NULL,
    currency             char(3) NOT NULL,
    reason               text NOT NULL CHECK (reason IN (
                             'refund', 'proration', 'goodwill', 'duplicate', 'other')),
    settlement           text NOT NULL CHECK (settlement IN ('balance', 'refund')),
    memo                 text NOT NULL DEFAULT '' CHECK (length(memo) <= 2000),
    subtotal             bigint NOT NULL,
    tax_total            bigint NOT NULL,
    tax_inclusive        boolean NOT NULL,
    total                bigint NOT NULL CHECK (total > 0),
    applied_to_invoice   bigint NOT NULL CHECK (applied_to_invoice >= 0),
    credited_to_balance  bigint NOT NULL CHECK (credited_to_balance >= 0),
    refunded             bigint NOT NULL CHECK (refunded >= 0),
    customer_snapshot    jsonb NOT NULL,
    issuer_snapshot      jsonb NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id),
    UNIQUE (organization_id, number),
    UNIQUE (organization_id, number_sequence),
    CHECK (total = subtotal + CASE WHEN tax_inclusive THEN 0 ELSE tax_total END),
    CHECK (applied_to_invoice + credited_to_balance + refunded = total)
);

CREATE INDEX credit_notes_invoice ON credit_notes (organization_id, invoice_id, id);
CREATE INDEX credit_notes_customer ON credit_notes (organization_id, customer_id, id);

CREATE TABLE credit_note_lines (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'cnl\_%'),
    credit_note_id   text NOT NULL,
    position         integer NOT NULL CHECK (position >= 0),
    kind             text NOT NULL CHECK (kind IN ('one_off', 'tax')),
    description      text NOT NULL CHECK (length(description) BETWEEN 1 AND 1000),
    quantity         bigint NOT NULL CHECK (quantity >= 0),
    unit_amount      bigint NOT NULL,
    amount           bigint NOT NULL,
    tax_rate         integer CHECK (tax_rate BETWEEN 0 AND 1000000),
    informational    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, credit_note_id) REFERENCES credit_notes (organization_id, id),
    UNIQUE (organization_id, credit_note_id, position),
    CHECK (amount = quantity * unit_amount)
);

-- A customer's credit per currency (credit notes, credit invoices), spent by its next invoices.
CREATE TABLE customer_balances (
    organization_id  text NOT NULL,
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    balance          bigint NOT NULL CHECK (balance >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, customer_id, currency),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);

-- The ledger behind customer_balances: every change, append-only.
CREATE TABLE customer_balance_transactions (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'cbt\_%'),
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    amount           bigint NOT NULL CHECK (amount <> 0),
    balance_after    bigint NOT NULL CHECK (balance_after >= 0),
    kind             text NOT NULL CHECK (kind IN (
                         'credit_note', 'credit_invoice', 'applied_to_invoice', 'invoice_voided')),
    invoice_id       text,
    credit_note_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id, currency)
        REFERENCES customer_balances (organization_id, customer_id, currency)
);

CREATE INDEX customer_balance_transactions_customer
    ON customer_balance_transactions (organization_id, customer_id, id);
