ALTER TABLE accounts DROP COLUMN credentials;
