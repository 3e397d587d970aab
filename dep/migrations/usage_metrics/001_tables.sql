-- Every DE applied, by identity (root event id + DE name): the additive metrics count a DE once
-- however often it is delivered (replays, a relay's second send).
CREATE TABLE usage_seen (
    root_event_id text NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (root_event_id, name)
);

-- Per learner x content x class/course/unit/lesson ('' where absent: independent learning).
CREATE TABLE usage_metrics (
    user_id text NOT NULL,
    content_id text NOT NULL,
    class_id text NOT NULL,
    course_id text NOT NULL,
    unit_id text NOT NULL,
    lesson_id text NOT NULL,
    time_spent_ms bigint NOT NULL DEFAULT 0,
    views integer NOT NULL DEFAULT 0,
    starts integer NOT NULL DEFAULT 0,
    latest_score double precision,
    best_score double precision,
    latest_reaction integer,
    reaction_at timestamptz,
    reaction_event_id text COLLATE "C",
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, content_id, class_id, course_id, unit_id, lesson_id)
);

-- The score of each session (the raw event id when there is none); a roll-up's later, fuller
-- score of a session replaces its earlier one. latest/best score are computed from these.
CREATE TABLE usage_scores (
    user_id text NOT NULL,
    content_id text NOT NULL,
    class_id text NOT NULL,
    course_id text NOT NULL,
    unit_id text NOT NULL,
    lesson_id text NOT NULL,
    session_id text NOT NULL,
    score double precision NOT NULL,
    basis integer NOT NULL,
    scored_at timestamptz NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, content_id, class_id, course_id, unit_id, lesson_id, session_id)
);
