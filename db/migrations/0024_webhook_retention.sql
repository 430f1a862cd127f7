-- Retention of outgoing webhook events (WEBHOOK_RETENTION_DAYS, docs/webhooks.md): the worker
-- deletes events past it together with their deliveries and attempts. Deleting an event looks
-- up its deliveries by (organization, event) — for the foreign key and the purge itself — which
-- no index served (the unique key leads with the endpoint).
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (organization_id, event_id);
