-- The customer self-service policy (docs/security.md, "Customer-token policy").

-- A plan's family: plans that are the same product (at different intervals or prices) share
-- one, so a customer token gets a plan's trial at most once per family. Existing plans become
-- a family of their own, named by their code (the default for new plans too).
ALTER TABLE plans ADD COLUMN family text;
UPDATE plans SET family = code;
ALTER TABLE plans ALTER COLUMN family SET NOT NULL;
ALTER TABLE plans ADD CONSTRAINT plans_family_length CHECK (length(family) BETWEEN 1 AND 64);

-- Every plan family a customer ever held a subscription on, by subscribing or by a plan
-- change, whatever became of that subscription, with the first subscription that did: the
-- lookup behind "a trial once per customer and family" is this primary key. A record, not a
-- join of subscriptions and plans: a subscription's plan changes and a plan's family can be
-- renamed, and neither may give a customer a second trial. Rows are never deleted.
CREATE TABLE customer_plan_families (
    organization_id  text NOT NULL,
    customer_id      text NOT NULL,
    family           text NOT NULL CHECK (length(family) BETWEEN 1 AND 64),
    subscription_id  text NOT NULL CHECK (subscription_id LIKE 'sub\_%'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, customer_id, family),
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id)
);

-- Subscriptions made before this migration: their current plan's family (earlier plans of a
-- changed subscription were not recorded anywhere).
INSERT INTO customer_plan_families (organization_id, customer_id, family, subscription_id, created_at)
SELECT DISTINCT ON (s.organization_id, s.customer_id, p.family)
       s.organization_id, s.customer_id, p.family, s.id, s.created_at
FROM subscriptions s
JOIN plans p ON p.organization_id = s.organization_id AND p.id = s.plan_id
ORDER BY s.organization_id, s.customer_id, p.family, s.created_at, s.id;
