-- Every distinct raw proctoring event, by event id (the first copy wins).
CREATE TABLE events (
    event_id text PRIMARY KEY,
    fulfillment_id text NOT NULL,
    event_type text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by_id text,
    payload jsonb NOT NULL DEFAULT '{}',
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_by_fulfillment ON events (fulfillment_id, created_at);

-- Where each fulfillment stands now, from its event-time history.
CREATE TABLE current_fulfillments (
    fulfillment_id text PRIMARY KEY,
    state text NOT NULL,
    state_start_time timestamptz NOT NULL,
    state_event_id text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX current_fulfillments_by_state ON current_fulfillments (state, state_start_time);

-- Each state a fulfillment has left, with the whole seconds it spent there. States only move
-- forward, so a fulfillment has at most one row per state.
CREATE TABLE fulfillments_history (
    fulfillment_id text NOT NULL,
    state text NOT NULL,
    time_in_state bigint NOT NULL CHECK (time_in_state >= 0),
    entered_at timestamptz NOT NULL,
    left_at timestamptz NOT NULL,
    entered_event_id text NOT NULL,
    left_event_id text NOT NULL,
    PRIMARY KEY (fulfillment_id, state)
);
