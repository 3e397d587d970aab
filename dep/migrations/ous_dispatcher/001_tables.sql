-- One dispatch per visit of ReadyForProcessing (the visit is the command that entered it).
CREATE TABLE ous_dispatches (
    ous_uid text NOT NULL,
    visit text NOT NULL,
    executive text NOT NULL,
    dispatched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ous_uid, visit)
);
