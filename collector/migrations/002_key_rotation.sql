-- Key rotation: the key a rotation replaced stays valid until previous_key_expires_at, so
-- clients can move to the new key without a gap.
ALTER TABLE collector_apps
    ADD COLUMN previous_key_hash bytea UNIQUE,
    ADD COLUMN previous_key_expires_at timestamptz;
