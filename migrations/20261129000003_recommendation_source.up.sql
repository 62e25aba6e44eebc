-- The registered account whose sweep returned each row. It differs from
-- account_id for an organization's linked accounts (collected through the
-- management account) and for GCP billing accounts (collected through a
-- project). Eviction and account deletion go by it, so rows of a linked
-- account that stops being recommended are evicted too.
ALTER TABLE recommendations ADD COLUMN source_account_id text;
UPDATE recommendations SET source_account_id = account_id;
ALTER TABLE recommendations ALTER COLUMN source_account_id SET NOT NULL;
