-- Every distinct event posted to the collector, by event id (the first copy wins).
CREATE TABLE web_events (
    event_id text PRIMARY KEY,
    session_id text NOT NULL,
    app text NOT NULL,
    category text NOT NULL,
    name text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    data jsonb NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
-- The query API's three filters, each ending in its sort key, so that a page is an index range
-- scan: (occurred_at, event_id) is also the cursor.
CREATE INDEX web_events_by_session ON web_events (session_id, occurred_at, event_id);
CREATE INDEX web_events_by_category ON web_events (category, occurred_at, event_id);
CREATE INDEX web_events_by_time ON web_events (occurred_at, event_id);
