-- What is known of each content, from content.<action> system DEs. The metadata comes from the
-- newest created/updated DE, "deleted" from the newest DE of any kind, both in event time (ties
-- broken by event id), so the row is the same whatever order and however often they arrive.
CREATE TABLE content_catalog (
    content_id text PRIMARY KEY,
    content_type text,
    parent_id text,
    competencies text[] NOT NULL DEFAULT '{}',
    title text,
    meta_at timestamptz,
    meta_event_id text COLLATE "C",
    deleted boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX content_catalog_by_parent ON content_catalog (parent_id);
