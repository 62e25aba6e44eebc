-- Back to doubles in USD. Amounts in other currencies cannot be expressed
-- in that schema: the downgrade refuses rather than mislabel them.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM recommendations WHERE currency <> 'USD') THEN
        RAISE EXCEPTION 'recommendations in currencies other than USD exist; delete them before downgrading';
    END IF;
END
$$;
ALTER TABLE recommendations
    ADD COLUMN upfront_cost double precision,
    ADD COLUMN recurring_monthly_cost double precision,
    ADD COLUMN on_demand_monthly_cost double precision,
    ADD COLUMN estimated_monthly_savings double precision;
UPDATE recommendations SET
    upfront_cost = upfront_cost_nanos / 1e9,
    recurring_monthly_cost = recurring_monthly_cost_nanos / 1e9,
    on_demand_monthly_cost = on_demand_monthly_cost_nanos / 1e9,
    estimated_monthly_savings = estimated_monthly_savings_nanos / 1e9;
ALTER TABLE recommendations
    ALTER COLUMN upfront_cost SET NOT NULL,
    ALTER COLUMN recurring_monthly_cost SET NOT NULL,
    ALTER COLUMN on_demand_monthly_cost SET NOT NULL,
    ALTER COLUMN estimated_monthly_savings SET NOT NULL,
    DROP COLUMN currency,
    DROP COLUMN upfront_cost_nanos,
    DROP COLUMN recurring_monthly_cost_nanos,
    DROP COLUMN on_demand_monthly_cost_nanos,
    DROP COLUMN estimated_monthly_savings_nanos;
CREATE INDEX recommendations_by_savings ON recommendations (estimated_monthly_savings DESC, id);
CREATE INDEX recommendations_by_account ON recommendations (account_id, estimated_monthly_savings DESC, id);
-- Run statuses get back the flat list of failed units the old code reads
-- (each account's listed units); it ignores the new fields.
CREATE FUNCTION pg_temp.flat_failures(providers jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(
        p || jsonb_build_object('failures', coalesce((
            SELECT jsonb_agg(f ORDER BY a.n, u.m)
            FROM jsonb_array_elements(coalesce(p->'failed_accounts', '[]')) WITH ORDINALITY AS a(account, n),
                 jsonb_array_elements(coalesce(a.account->'failures', '[]')) WITH ORDINALITY AS u(f, m)
        ), '[]'::jsonb))
        ORDER BY i), '[]'::jsonb)
    FROM jsonb_array_elements(providers) WITH ORDINALITY AS e(p, i)
$$;
UPDATE collection_runs SET providers = pg_temp.flat_failures(providers)
WHERE jsonb_typeof(providers) = 'array' AND providers <> '[]';
UPDATE collection_state SET providers = pg_temp.flat_failures(providers)
WHERE jsonb_typeof(providers) = 'array' AND providers <> '[]';
DROP FUNCTION pg_temp.flat_failures(jsonb);
