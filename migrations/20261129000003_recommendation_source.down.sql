ALTER TABLE recommendations DROP COLUMN source_account_id;
