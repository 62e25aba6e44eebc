-- Notifications: channels managed over the API, the level at which each
-- recommendation was last announced, and an outbox of notices written in
-- the fenced transaction that ends a run, delivered per channel by any
-- collector replica.

CREATE TABLE notification_channels (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    kind       text        NOT NULL CHECK (kind IN ('webhook', 'slack', 'email')),
    enabled    boolean     NOT NULL DEFAULT true,
    -- The kind's settings as api-service validated them: URLs, addresses,
    -- and secret references, never a secret.
    settings   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The savings at which a recommendation was last announced: a notice names
-- it again only when it grew beyond this by the configured share and
-- amount. Written in the run's fenced transaction, so a run that lost its
-- lease announces nothing and moves no level.
CREATE TABLE notified_levels (
    recommendation_id uuid        PRIMARY KEY,
    currency          text        NOT NULL,
    savings_nanos     bigint      NOT NULL,
    notified_at       timestamptz NOT NULL
);

-- What a run (or a test call) had to tell, as the channels render it.
CREATE TABLE notices (
    id            uuid        PRIMARY KEY,
    test          boolean     NOT NULL DEFAULT false,
    -- The run it is about (none for a test notice).
    collection_id uuid,
    item_count    integer     NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One notice to one channel. Its id is the idempotency key receivers see
-- (`webhook-id`), the same on every attempt.
CREATE TABLE notice_deliveries (
    id              uuid        PRIMARY KEY,
    notice_id       uuid        NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
    channel_id      uuid        NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (notice_id, channel_id)
);
-- What is due, for the deliverers (FOR UPDATE SKIP LOCKED).
CREATE INDEX notice_deliveries_due ON notice_deliveries (next_attempt_at) WHERE status = 'pending';
-- ListDeliveries' order and keyset paging.
CREATE INDEX notice_deliveries_recent ON notice_deliveries (created_at DESC, id DESC);
