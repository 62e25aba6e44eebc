-- Amounts become exact and carry their currency.
--
-- Every amount is stored as integer nano-units (10^-9) of the row's currency
-- (google.type.Money's precision), so sums are exact and keyset paging by
-- savings compares integers. Rows written so far were USD (the collector
-- refused other currencies); their doubles are read through numeric's 15
-- significant digits, which drops the binary noise (212701.82999999993 →
-- 212701.83) before scaling.
ALTER TABLE recommendations
    ADD COLUMN currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    ADD COLUMN upfront_cost_nanos bigint,
    ADD COLUMN recurring_monthly_cost_nanos bigint,
    ADD COLUMN on_demand_monthly_cost_nanos bigint,
    ADD COLUMN estimated_monthly_savings_nanos bigint;
UPDATE recommendations SET
    upfront_cost_nanos = round(upfront_cost::numeric * 1000000000)::bigint,
    recurring_monthly_cost_nanos = round(recurring_monthly_cost::numeric * 1000000000)::bigint,
    on_demand_monthly_cost_nanos = round(on_demand_monthly_cost::numeric * 1000000000)::bigint,
    estimated_monthly_savings_nanos = round(estimated_monthly_savings::numeric * 1000000000)::bigint;
-- New rows name their currency; the default only served the rows above.
ALTER TABLE recommendations
    ALTER COLUMN currency DROP DEFAULT,
    ALTER COLUMN upfront_cost_nanos SET NOT NULL,
    ALTER COLUMN recurring_monthly_cost_nanos SET NOT NULL,
    ALTER COLUMN on_demand_monthly_cost_nanos SET NOT NULL,
    ALTER COLUMN estimated_monthly_savings_nanos SET NOT NULL,
    -- Dropping the savings column drops the two indexes on it.
    DROP COLUMN upfront_cost,
    DROP COLUMN recurring_monthly_cost,
    DROP COLUMN on_demand_monthly_cost,
    DROP COLUMN estimated_monthly_savings;
-- The list order (savings descending, then id) and its keyset pagination,
-- and the accounts filter, as before on the exact column.
CREATE INDEX recommendations_by_savings ON recommendations (estimated_monthly_savings_nanos DESC, id);
CREATE INDEX recommendations_by_account ON recommendations (account_id, estimated_monthly_savings_nanos DESC, id);

-- Run statuses list every failed account once, with its own units, instead
-- of a flat list of failed units capped per provider. Runs recorded before
-- keep their failures, grouped by account (their state was not recorded:
-- it stays unset, and units_total 0 means "not recorded").
CREATE FUNCTION pg_temp.grouped_failures(providers jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(
        (p - 'failures') || jsonb_build_object(
            'accounts_partial', 0,
            'failed_accounts', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                           'account_id', g.account_id,
                           'error', g.first_error,
                           'units_failed', g.units,
                           'units_total', 0,
                           'failures', g.failures) ORDER BY g.account_id)
                FROM (
                    SELECT f->>'account_id' AS account_id,
                           count(*) AS units,
                           (array_agg(f->>'error' ORDER BY n))[1] AS first_error,
                           jsonb_agg(f ORDER BY n) AS failures
                    FROM jsonb_array_elements(coalesce(p->'failures', '[]')) WITH ORDINALITY AS u(f, n)
                    GROUP BY f->>'account_id'
                ) g), '[]'::jsonb))
        ORDER BY i), '[]'::jsonb)
    FROM jsonb_array_elements(providers) WITH ORDINALITY AS e(p, i)
$$;
UPDATE collection_runs SET providers = pg_temp.grouped_failures(providers)
WHERE jsonb_typeof(providers) = 'array' AND providers <> '[]';
UPDATE collection_state SET providers = pg_temp.grouped_failures(providers)
WHERE jsonb_typeof(providers) = 'array' AND providers <> '[]';
DROP FUNCTION pg_temp.grouped_failures(jsonb);
