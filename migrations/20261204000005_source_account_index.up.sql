-- Eviction (a completed sweep deletes the rows it no longer returned) and
-- account deletion find rows by the account that collected them,
-- (provider, source_account_id), since 20261129000003. No index served the
-- rows an account collected for others (an organization's linked
-- accounts, a GCP billing account), so both scanned the whole table (the
-- comment in the init migration saying the account index "also serves
-- eviction" predates the source column).
--
-- Most rows were collected by the account they are for, and the account
-- index (recommendations_by_account) finds those; this index holds only
-- the others, so the bulk write of a run maintains one index entry per
-- linked-account row, not one per row. The queries say
-- `source_account_id <> account_id` where they look for those rows, so
-- that the planner can use it.
CREATE INDEX recommendations_by_source ON recommendations (provider, source_account_id)
    WHERE source_account_id <> account_id;
