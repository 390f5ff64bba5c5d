-- Staged rollouts and their webhooks, for SQLite. Never edit this file once released: add a
-- new migration instead. Same conventions as 0001_initial.sql: times are BIGINT milliseconds
-- since the Unix epoch, booleans BIGINT 0/1, JSON TEXT.

-- One rollout of one flag in one environment. `state` is a sluice_core::rollout::RolloutState
-- as JSON, the whole truth; `seq`, `status` and `active` repeat parts of it for queries.
-- `exposure_version` is the configuration version that wrote the current exposure: the
-- controller's window only counts telemetry reported under it or later.
CREATE TABLE rollouts (
    id               TEXT   NOT NULL PRIMARY KEY,
    env              TEXT   NOT NULL,
    flag             TEXT   NOT NULL,
    state            TEXT   NOT NULL,
    seq              BIGINT NOT NULL,
    status           TEXT   NOT NULL,
    active           BIGINT NOT NULL CHECK (active IN (0, 1)),
    exposure_version BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    version          BIGINT NOT NULL
);
-- At most one rollout that is not final per flag and environment.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (env, flag) WHERE active = 1;
CREATE INDEX rollouts_flag ON rollouts (env, flag, created_ms);

-- Every transition applied, keyed by (rollout, seq): the idempotency key. A transition whose
-- seq is taken is never applied again.
CREATE TABLE rollout_transitions (
    rollout_id     TEXT   NOT NULL,
    seq            BIGINT NOT NULL,
    kind           TEXT   NOT NULL,
    transition     TEXT   NOT NULL,
    at_ms          BIGINT NOT NULL,
    config_version BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);

-- Where rollout transitions are announced. `secret` signs each delivery (HMAC-SHA256) and so
-- is stored as given; it never appears in the API or the audit log after creation.
-- `events` is a JSON array of transition kinds, empty for all; `env` NULL for every environment.
CREATE TABLE webhooks (
    id         TEXT   NOT NULL PRIMARY KEY,
    url        TEXT   NOT NULL,
    secret     TEXT   NOT NULL,
    events     TEXT   NOT NULL,
    env        TEXT,
    created_ms BIGINT NOT NULL,
    version    BIGINT NOT NULL
);

-- The outbox: one row per webhook and transition, written in the transition's transaction,
-- delivered (and retried with backoff) by the leader.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT   NOT NULL,
    rollout_id      TEXT   NOT NULL,
    seq             BIGINT NOT NULL,
    event           TEXT   NOT NULL,
    url             TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    delivered_ms    BIGINT,
    failed_ms       BIGINT,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    UNIQUE (webhook_id, rollout_id, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms);
