-- How each account is reached: a per-provider credentials *reference*
-- (role ARN, tenant and client ids, the name of an environment variable or
-- file holding a secret). Secret values never go into the database. NULL
-- uses the provider's default (AWS ambient credentials, GCP metadata server).
ALTER TABLE accounts ADD COLUMN credentials jsonb
    CHECK (credentials IS NULL OR credentials->>'provider' = provider);
