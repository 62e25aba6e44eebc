DROP TABLE recommendations;
DROP TABLE collection_runs;
DROP TRIGGER collection_state_versioned ON collection_state;
DROP FUNCTION collection_state_versioned();
DROP TABLE collection_state;
DROP TABLE accounts;
