-- Bumped by every transaction that changes the recommendations table, so
-- api-service can cache per-filter summaries until the data changes.
ALTER TABLE collection_state ADD COLUMN data_version bigint NOT NULL DEFAULT 0;
