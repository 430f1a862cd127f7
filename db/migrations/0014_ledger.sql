-- One double-entry ledger for every money movement (docs/ledger.md).
--
-- Each row is one entry of one ledger transaction: a signed amount (debit > 0, credit < 0) on
-- one account of one customer in one currency. The entries of a transaction balance (their
-- amounts sum to zero), which a deferred constraint trigger checks at commit, and no entry is
-- ever changed or deleted: a correction is a new transaction.
--
-- Accounts (per organization, customer and currency):
--   receivable       what the customer owes on finalized invoices          (asset)
--   cash             money received at Stripe, net of refunds              (asset)
--   customer_credit  the customer's credit balance, spent by invoices     (liability)
--   refunds_payable  credit notes waiting for their refund at Stripe       (liability)
--   revenue          earned, net of tax, gross of discounts               (income)
--   discounts        coupons given                                        (contra income)
--   tax              tax collected for the authorities                    (liability)
--   bad_debt         invoices written off as uncollectible                (expense)
--   opening          balances carried into the ledger when it was created (equity)

CREATE TABLE ledger_entries (
    organization_id  text NOT NULL,
    id               text NOT NULL CHECK (id LIKE 'le\_%'),
    transaction_id   text NOT NULL CHECK (transaction_id LIKE 'lt\_%'),
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    account          text NOT NULL CHECK (account IN (
                         'receivable', 'cash', 'customer_credit', 'refunds_payable', 'revenue',
                         'discounts', 'tax', 'bad_debt', 'opening')),
    amount           bigint NOT NULL CHECK (amount <> 0),
    kind             text NOT NULL CHECK (kind IN (
                         'invoice_finalized', 'balance_applied', 'credit_invoice',
                         'invoice_voided', 'invoice_uncollectible', 'invoice_collected',
                         'payment', 'refund', 'credit_note', 'credit_note_refund_failed',
                         'opening_balance')),
    invoice_id       text,
    payment_id       text,
    refund_id        text,
    credit_note_id   text,
    subscription_id  text,
    occurred_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);

CREATE INDEX ledger_entries_customer
    ON ledger_entries (organization_id, customer_id, currency, occurred_at, id);
CREATE INDEX ledger_entries_transaction ON ledger_entries (organization_id, transaction_id);
CREATE INDEX ledger_entries_invoice
    ON ledger_entries (organization_id, invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX ledger_entries_payment
    ON ledger_entries (organization_id, payment_id) WHERE payment_id IS NOT NULL;

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- Checked at commit, once per inserted row: the row's transaction sums to zero per currency.
CREATE FUNCTION ledger_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off bigint;
BEGIN
    SELECT sum(amount) INTO off FROM ledger_entries
    WHERE organization_id = NEW.organization_id AND transaction_id = NEW.transaction_id
      AND currency = NEW.currency;
    IF off <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: off by %', NEW.transaction_id, off
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_balanced();

-- The customer_credit account's balance stays materialized in customer_balances (its row is
-- what a spender locks), written only by the ledger in the transaction of the entries;
-- `billing verify` checks that it equals the sum of the entries. Credit held before the ledger
-- existed is carried in as an opening balance; its history, customer_balance_transactions, is
-- superseded by the ledger.
INSERT INTO ledger_entries
    (organization_id, id, transaction_id, customer_id, currency, account, amount, kind,
     occurred_at)
SELECT b.organization_id, 'le_open_' || x.side || '_' || md5(b.customer_id || b.currency),
       'lt_open_' || md5(b.customer_id || b.currency), b.customer_id, b.currency,
       x.account, x.sign * b.balance, 'opening_balance', now()
FROM customer_balances b
CROSS JOIN (VALUES ('d', 'opening', 1), ('c', 'customer_credit', -1)) AS x(side, account, sign)
WHERE b.balance <> 0;

DROP TABLE customer_balance_transactions;

-- A refund that pays out (part of) a credit note.
ALTER TABLE refunds ADD COLUMN credit_note_id text;
CREATE INDEX refunds_credit_note
    ON refunds (organization_id, credit_note_id) WHERE credit_note_id IS NOT NULL;
