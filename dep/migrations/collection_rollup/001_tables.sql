-- Every DE rolled up, by identity (root event id + DE name): a duplicate emits nothing.
CREATE TABLE rollup_seen (
    root_event_id text NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (root_event_id, name)
);

-- Per learner x collection x context x session: the questions answered so far and their score.
CREATE TABLE rollup_scores (
    user_id text NOT NULL,
    collection_id text NOT NULL,
    class_id text NOT NULL,
    course_id text NOT NULL,
    unit_id text NOT NULL,
    lesson_id text NOT NULL,
    session_id text NOT NULL,
    answered integer NOT NULL,
    score_sum double precision NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, collection_id, class_id, course_id, unit_id, lesson_id, session_id)
);
