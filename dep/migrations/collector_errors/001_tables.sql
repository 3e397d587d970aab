-- Every event the collector or GEP rejected: who sent it, why, and what exactly was sent.
-- One row per dead letter: its topic, partition and offset are its identity.
CREATE TABLE collector_errors (
    id bigserial PRIMARY KEY,
    stage text NOT NULL,
    app text,
    status integer,
    reason text NOT NULL,
    detail text NOT NULL,
    field text,
    body text NOT NULL,
    failed_at timestamptz NOT NULL,
    dlq_topic text NOT NULL,
    dlq_partition integer NOT NULL,
    dlq_offset bigint NOT NULL,
    UNIQUE (dlq_topic, dlq_partition, dlq_offset)
);
CREATE INDEX collector_errors_by_time ON collector_errors (failed_at, id);
CREATE INDEX collector_errors_by_app ON collector_errors (app, failed_at, id);
CREATE INDEX collector_errors_by_reason ON collector_errors (reason, failed_at, id);
