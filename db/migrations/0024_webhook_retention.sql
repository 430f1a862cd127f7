-- Retention of outgoing webhook events (WEBHOOK_RETENTION_DAYS, docs/webhooks.md): the worker
-- deletes events past it, oldest first across organizations, together with their deliveries
-- and attempts. The oldest events are found by time alone (the existing time index leads with
-- the organization), and deleting an event looks up its deliveries by (organization, event) —
-- for the foreign key and the purge itself — which no index served (the unique key leads with
-- the endpoint).
CREATE INDEX webhook_events_created ON webhook_events (created_at);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (organization_id, event_id);
