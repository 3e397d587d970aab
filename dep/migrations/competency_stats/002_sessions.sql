-- Each scored session of a content, whatever its competencies are: when the content's
-- competencies change, its sessions are fanned out again to the new ones, so the stats follow
-- the newest metadata in event time whatever order the scores and the change arrive in.
CREATE TABLE competency_sessions (
    user_id text NOT NULL,
    content_id text NOT NULL,
    session_id text NOT NULL,
    score double precision NOT NULL,
    basis integer NOT NULL,
    scored_at timestamptz NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, content_id, session_id)
);

INSERT INTO competency_sessions
SELECT DISTINCT ON (user_id, content_id, session_id)
       user_id, content_id, session_id, score, basis, scored_at, event_id
FROM competency_scores
ORDER BY user_id, content_id, session_id, scored_at DESC, basis DESC, event_id DESC;
