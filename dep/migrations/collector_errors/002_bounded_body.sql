-- The errors table keeps at most the first 64 KiB of a rejected body; body_bytes is the length
-- of the original (the whole of it stays on the dead-letter topic).
ALTER TABLE collector_errors ADD COLUMN body_bytes integer;
UPDATE collector_errors SET body_bytes = octet_length(body);
ALTER TABLE collector_errors ALTER COLUMN body_bytes SET NOT NULL;
