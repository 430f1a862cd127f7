-- Customers: the people or companies billed, each mirrored as a Stripe Customer.

CREATE TABLE customers (
    organization_id            text NOT NULL,
    id                         text NOT NULL CHECK (id LIKE 'cus\_%'),
    external_ref               text CHECK (external_ref IS NULL OR length(external_ref) BETWEEN 1 AND 200),
    email                      text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name                       text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    address                    jsonb,
    preferred_currency         char(3),
    tax_ids                    jsonb NOT NULL DEFAULT '[]'::jsonb,
    tax_exempt                 text NOT NULL DEFAULT 'none' CHECK (tax_exempt IN ('none', 'exempt', 'reverse')),
    metadata                   jsonb NOT NULL DEFAULT '{}'::jsonb,
    stripe_customer_id         text,
    default_payment_method_id  text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, external_ref)
);

CREATE INDEX customers_email ON customers (organization_id, lower(email));
