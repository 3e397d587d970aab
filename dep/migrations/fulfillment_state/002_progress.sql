-- The last trigger event applied to each fulfillment, in event-time order: a new event after it
-- is applied on top of the current state; one before it (a late event) has the fulfillment
-- replayed from its stored events. Null on rows written before this column: replayed once.
ALTER TABLE current_fulfillments ADD COLUMN last_event_at timestamptz;
ALTER TABLE current_fulfillments ADD COLUMN last_event_id text;
