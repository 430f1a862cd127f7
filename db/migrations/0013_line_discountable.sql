-- Whether the invoice's coupon applies to a line. Credits for unused time are computed from what
-- was paid for that time, after the discount of its own invoice, so discounting them again
-- would take the discount twice; they are stored with discountable = false.

ALTER TABLE invoice_lines ADD COLUMN discountable boolean NOT NULL DEFAULT true;
ALTER TABLE invoice_lines ALTER COLUMN discountable DROP DEFAULT;
