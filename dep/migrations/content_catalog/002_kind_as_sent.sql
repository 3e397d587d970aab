-- The content kind is kept as sent (assessment-external, offline-activity, ...) in content_type,
-- with its family (resource, question, collection, assessment) beside it for queries that count
-- by family. Rows written before this kept only the family in content_type, and the kind they
-- were sent with is stored nowhere (not in this database: no DEP keeps raw events; the content
-- DEs already on Kafka carry the family too): a row whose family has several kinds is marked
-- kind_exact = false until the content's next created/updated event brings its kind.
ALTER TABLE content_catalog
    ADD COLUMN content_family text,
    ADD COLUMN kind_exact boolean NOT NULL DEFAULT true;
UPDATE content_catalog SET content_family = content_type;
UPDATE content_catalog SET kind_exact = false WHERE content_type IN ('collection', 'assessment');
CREATE INDEX content_catalog_by_family ON content_catalog (content_family);
