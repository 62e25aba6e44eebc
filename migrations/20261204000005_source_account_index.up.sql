-- Eviction (a completed sweep deletes the rows it no longer returned) and
-- account deletion find rows by the account that collected them,
-- (provider, source_account_id), since 20261129000003. No index served
-- that: recommendations_by_account is on account_id (the comment in the
-- init migration saying it "also serves eviction" predates the source
-- column), so both scanned the whole table.
CREATE INDEX recommendations_by_source ON recommendations (provider, source_account_id);
