-- The input partition a fulfillment's events arrive on (all of them: they are keyed by the
-- fulfillment): the wait timer judges a wait only by what that partition has delivered.
ALTER TABLE current_fulfillments ADD COLUMN input_partition integer;

-- Each wait past DA_WAIT_SLA_S that fulfillment.wait_exceeded was emitted for: one row per
-- fulfillment and state (states only move forward, so a state is visited once).
CREATE TABLE fulfillment_wait_alerts (
    fulfillment_id text NOT NULL,
    state text NOT NULL,
    entered_at timestamptz NOT NULL,
    entered_event_id text NOT NULL,
    sla_s double precision NOT NULL,
    emitted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fulfillment_id, state)
);
