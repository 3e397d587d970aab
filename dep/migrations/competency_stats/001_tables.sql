-- What this DEP knows of each content's competencies, from content.created/updated DEs (its
-- own copy: reading content-catalog's table could race with that DEP's commit and strand a
-- parked event). Newest in event time wins.
CREATE TABLE competency_content (
    content_id text PRIMARY KEY,
    competencies text[] NOT NULL,
    changed_at timestamptz NOT NULL,
    event_id text COLLATE "C" NOT NULL
);

CREATE TABLE competency_seen (
    root_event_id text NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (root_event_id, name)
);

-- Each scored session of a content, fanned out to each of the content's competencies; a later,
-- fuller score of the session (a roll-up's) replaces an earlier one.
CREATE TABLE competency_scores (
    user_id text NOT NULL,
    competency text NOT NULL,
    content_id text NOT NULL,
    session_id text NOT NULL,
    score double precision NOT NULL,
    basis integer NOT NULL,
    scored_at timestamptz NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, competency, content_id, session_id)
);

-- Per learner x competency, recomputed from competency_scores.
CREATE TABLE competency_stats (
    user_id text NOT NULL,
    competency text NOT NULL,
    attempts integer NOT NULL,
    latest_score double precision NOT NULL,
    best_score double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, competency)
);
