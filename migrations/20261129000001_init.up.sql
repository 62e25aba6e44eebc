-- Accounts to collect, per provider. Seeded at start-up for local runs.
CREATE TABLE accounts (
    provider     text        NOT NULL CHECK (provider IN ('aws', 'azure', 'gcp')),
    external_id  text        NOT NULL CHECK (external_id <> ''),
    display_name text        NOT NULL,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, external_id)
);

-- The single state row: the lease (collection_id, generation,
-- lease_expires_at) and what watchers see. All times come from now().
CREATE TABLE collection_state (
    id                    smallint    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version               bigint      NOT NULL DEFAULT 1,
    generation            bigint      NOT NULL DEFAULT 0,
    collection_id         uuid,
    trigger               text,
    started_at            timestamptz,
    finished_at           timestamptz,
    -- Non-null while a run holds the lease; the run owns it until this time.
    lease_expires_at      timestamptz,
    -- NULL while running.
    outcome               text,
    error                 text,
    recommendation_count  bigint      NOT NULL DEFAULT 0,
    -- Per-provider progress of the current or last run.
    providers             jsonb       NOT NULL DEFAULT '[]',
    last_collected_at     timestamptz,
    last_collection_error text,
    -- Bumped by every transaction that changes the recommendations table,
    -- so api-service can cache per-filter summaries until the data changes.
    data_version          bigint      NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO collection_state (id) VALUES (1);

-- Every visible change bumps `version` and wakes the listeners. A heartbeat
-- that only moves lease_expires_at is not a visible change: watchers would
-- otherwise get a message every TTL/3 for nothing.
CREATE FUNCTION collection_state_versioned() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    unchanged collection_state%ROWTYPE;
BEGIN
    unchanged := NEW;
    unchanged.lease_expires_at := OLD.lease_expires_at;
    unchanged.version := OLD.version;
    unchanged.updated_at := OLD.updated_at;
    IF unchanged IS NOT DISTINCT FROM OLD THEN
        NEW.version := OLD.version;
        RETURN NEW;
    END IF;
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    PERFORM pg_notify('collection_state', NEW.version::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER collection_state_versioned
    BEFORE UPDATE ON collection_state
    FOR EACH ROW EXECUTE FUNCTION collection_state_versioned();

-- One row per run. A run whose lease expired is marked abandoned when the
-- lease is taken over.
CREATE TABLE collection_runs (
    id                   uuid        PRIMARY KEY,
    generation           bigint      NOT NULL UNIQUE,
    trigger              text        NOT NULL,
    started_at           timestamptz NOT NULL,
    finished_at          timestamptz,
    outcome              text        NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'succeeded', 'partially_succeeded', 'failed', 'cancelled', 'abandoned')),
    error                text,
    recommendation_count bigint      NOT NULL DEFAULT 0,
    providers            jsonb       NOT NULL DEFAULT '[]'
);
CREATE INDEX collection_runs_running ON collection_runs (generation) WHERE outcome = 'running';

CREATE TABLE recommendations (
    -- A name-based (v5) UUID of the natural key (provider, account_id,
    -- service, region, resource_type, platform, commitment_type,
    -- term_months, payment_option): stable across runs, and unique exactly
    -- when the natural key is. A 16-byte key keeps the indexes small; index
    -- upkeep is most of what writing a run's results costs.
    id                        uuid             PRIMARY KEY,
    provider                  text             NOT NULL,
    account_id                text             NOT NULL,
    account_name              text             NOT NULL,
    service                   text             NOT NULL,
    region                    text             NOT NULL,
    resource_type             text             NOT NULL,
    platform                  text             NOT NULL,
    commitment_type           text             NOT NULL,
    term_months               integer          NOT NULL,
    payment_option            text             NOT NULL,
    recommended_count         double precision NOT NULL,
    upfront_cost              double precision NOT NULL,
    recurring_monthly_cost    double precision NOT NULL,
    on_demand_monthly_cost    double precision NOT NULL,
    estimated_monthly_savings double precision NOT NULL,
    savings_percentage        double precision NOT NULL,
    break_even_months         double precision NOT NULL,
    collected_at              timestamptz      NOT NULL,
    -- The generation of the run that last wrote the row: a completed sweep
    -- evicts the rows of its (provider, account) that it did not write.
    generation                bigint           NOT NULL
);
-- The list order (savings descending, then id) and its keyset pagination.
-- Filters on provider, service, region and minimum savings walk this index
-- too: each matches a large share of the rows, so a page is found after a
-- few hundred entries (scripts/bench listing). Accounts are selective
-- (one of many), so they have their own index; it also serves eviction.
CREATE INDEX recommendations_by_savings ON recommendations (estimated_monthly_savings DESC, id);
CREATE INDEX recommendations_by_account ON recommendations (account_id, estimated_monthly_savings DESC, id);
