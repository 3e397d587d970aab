-- Applications trusted to post events. Only a hash of each key is kept; the key is shown once.
CREATE TABLE collector_apps (
    name text PRIMARY KEY,
    key_hash bytea NOT NULL UNIQUE,
    -- 'ingest' may post events; 'read' may query events and errors.
    scopes text[] NOT NULL DEFAULT '{ingest}',
    -- Events per second; NULL: the collector's default (DA_COLLECTOR_RATE_LIMIT).
    rate_limit double precision CHECK (rate_limit > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
