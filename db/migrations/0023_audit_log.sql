-- Who did what (docs/security.md, "Audit log"): one row per mutation call by an authenticated
-- caller, written after the call with its outcome, including calls refused for the caller's
-- role. Append-only: nothing updates or deletes these rows.
CREATE TABLE audit_log (
    organization_id  text NOT NULL,
    id               text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    -- How the caller signed in: 'token' (a JWT signed with JWT_SECRET / JWT_PUBLIC_KEY),
    -- 'api_key' or 'oidc'.
    actor_type       text NOT NULL CHECK (actor_type IN ('token', 'api_key', 'oidc')),
    -- The token's or OIDC token's subject, or the API key's prefix.
    actor            text NOT NULL,
    role             text NOT NULL CHECK (role IN ('admin', 'service', 'customer')),
    action           text NOT NULL,
    target_ids       text[] NOT NULL,
    -- 'ok', 'error' (payload errors, their codes in error_codes), 'refused' (FORBIDDEN and
    -- other request errors, the code in error_codes) or 'failed' (an unexpected error).
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'error', 'refused', 'failed')),
    error_codes      text[] NOT NULL,
    request_id       text,
    PRIMARY KEY (organization_id, id)
);

CREATE INDEX audit_log_time ON audit_log (organization_id, occurred_at);
