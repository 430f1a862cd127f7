-- What the worker's housekeeping looks for (docs/operations.md, "Interrupted requests"):
-- payments whose Stripe call outlived its request (an operation still marked, its lease
-- expired) and invoices whose charge died holding the invoice. Both sets are small (rows in
-- flight), so partial indexes keep the sweep's scan to them in every organization.

CREATE INDEX payments_operation_in_flight ON payments (lease_until)
    WHERE operation IS NOT NULL;

CREATE INDEX invoices_charge_in_flight ON invoices (payment_lease_until)
    WHERE payment_lease_token IS NOT NULL;
