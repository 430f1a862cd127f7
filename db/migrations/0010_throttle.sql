-- The rate limit becomes a budget of query-cost points per caller (a token bucket, refilled
-- continuously), and WebSocket connections are counted per token across processes. Both tables
-- are UNLOGGED: losing them in a crash only refills budgets and forgets connections that died
-- with their process.

DROP TABLE rate_limit_windows;

CREATE UNLOGGED TABLE rate_limit_buckets (
    organization_id  text NOT NULL,
    bucket           text NOT NULL,
    available        double precision NOT NULL,
    granted          boolean NOT NULL,
    updated_at       timestamptz NOT NULL,
    full_at          timestamptz NOT NULL,
    PRIMARY KEY (organization_id, bucket)
);

CREATE INDEX rate_limit_buckets_full_at ON rate_limit_buckets (full_at);

CREATE UNLOGGED TABLE websocket_connections (
    organization_id  text NOT NULL,
    bucket           text NOT NULL,
    id               text NOT NULL,
    process_id       text NOT NULL,
    lease_until      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, bucket, id)
);

CREATE INDEX websocket_connections_process ON websocket_connections (process_id);
