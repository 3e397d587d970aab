-- Where each OUS stands: its state (NULL until a first set-state is accepted), since when and by
-- which command, and what it carries. Times are the commands' times.
CREATE TABLE ous_status (
    ous_uid text PRIMARY KEY,
    state text,
    state_since timestamptz,
    state_command_id text,
    substate text,
    executive text,
    flags jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX ous_status_by_state ON ous_status (state, state_since);

-- One row per visit of a state that was left; a workflow that loops visits a state again, so
-- one OUS can have several rows for one state.
CREATE TABLE ous_state_history (
    ous_uid text NOT NULL,
    state text NOT NULL,
    entered_at timestamptz NOT NULL,
    left_at timestamptz NOT NULL,
    seconds bigint NOT NULL CHECK (seconds >= 0),
    entered_command_id text NOT NULL,
    left_command_id text NOT NULL,
    PRIMARY KEY (ous_uid, entered_command_id)
);

-- Commands refused (and, for a life-cycle that is not strict, moves applied but flagged).
CREATE TABLE ous_rejections (
    command_id text PRIMARY KEY,
    ous_uid text NOT NULL,
    operation text NOT NULL,
    value text,
    reason text NOT NULL,
    detail text,
    at timestamptz NOT NULL,
    applied boolean NOT NULL DEFAULT false
);
CREATE INDEX ous_rejections_by_ous ON ous_rejections (ous_uid, at);

-- Every command applied, by id, with its answer: a repeated id is answered again, not applied.
CREATE TABLE ous_commands (
    command_id text PRIMARY KEY,
    ous_uid text NOT NULL,
    operation text NOT NULL,
    value text,
    status integer NOT NULL,
    reply jsonb NOT NULL,
    at timestamptz NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ous_commands_by_ous ON ous_commands (ous_uid, at);
