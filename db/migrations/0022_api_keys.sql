-- Organization API keys for back ends (docs/security.md, "API keys").
--
-- A key is shown once, at creation; only its SHA-256 is kept. A key has ≥ 190 random bits, so
-- a fast hash is enough: nothing can be guessed from it (passwords need slow hashes because
-- they are guessable; these are not). `prefix` ('bk_live_' or 'bk_test_' and 12 random
-- characters, the start of the key) finds the row before the hash is compared, and is what
-- admins see in lists, logs and the audit log.
--
-- The request that presents a key does not know its organization yet, so the lookup is by
-- prefix alone; the index on it is not unique (keys lead with organization_id for
-- distribution), and a lookup compares the hash of every row it finds.
CREATE TABLE api_keys (
    organization_id  text NOT NULL,
    id               text NOT NULL,
    prefix           text NOT NULL CHECK (prefix ~ '^bk_(live|test)_[0-9A-Za-z]{12}$'),
    secret_hash      text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role             text NOT NULL CHECK (role IN ('admin', 'service')),
    mode             text NOT NULL CHECK (mode IN ('live', 'test')),
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    -- When it stops working by itself (null: never); a roll sets it to the end of the grace
    -- period if that comes first.
    expires_at       timestamptz,
    revoked_at       timestamptz,
    -- Written in batches (at most once a minute per process), not on every request.
    last_used_at     timestamptz,
    -- The key that replaced this one (apiKeyRoll).
    rolled_to        text,
    PRIMARY KEY (organization_id, id)
);

CREATE INDEX api_keys_prefix ON api_keys (prefix);
