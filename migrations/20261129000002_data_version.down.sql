ALTER TABLE collection_state DROP COLUMN data_version;
