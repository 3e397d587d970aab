-- Every processing request run, by request: a repeated request runs nothing again.
CREATE TABLE ous_driver_runs (
    request_id text PRIMARY KEY,
    ous_uid text NOT NULL,
    executive text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
