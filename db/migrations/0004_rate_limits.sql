-- Request counters for the rate limiter: one row per (bucket, minute). UNLOGGED: counters are
-- cheap to lose on a crash and should not cost WAL.

CREATE UNLOGGED TABLE rate_limit_windows (
    organization_id  text NOT NULL,
    bucket           text NOT NULL,
    window_start     timestamptz NOT NULL,
    hits             integer NOT NULL,
    PRIMARY KEY (organization_id, bucket, window_start)
);

CREATE INDEX rate_limit_windows_age ON rate_limit_windows (window_start);
