-- SDK telemetry, for SQLite. Never edit this file once released: add a new migration instead.
-- Telemetry is data, not configuration: these tables are written without touching `meta`,
-- without an audit record and without a config_version bump. Same conventions as
-- 0001_initial.sql: times are BIGINT milliseconds since the Unix epoch, JSON is TEXT.
-- `env` is an environment name; there is no foreign key, so deleting an environment keeps
-- the evidence its SDKs reported.

-- Batch ids already counted, so that a retried batch is counted once. Ids older than a day
-- are pruned (see src/store/telemetry.rs).
CREATE TABLE metric_batches (
    env         TEXT   NOT NULL,
    batch_id    TEXT   NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (env, batch_id)
);
CREATE INDEX metric_batches_received ON metric_batches (env, received_ms);

-- Aggregates per flag, variant, configuration version and 10-second bucket.
-- `latency` is a DDSketch as JSON, NULL when no latency was reported; `events` maps an event
-- name to {"count", "sum", "sumSq"}.
CREATE TABLE metric_aggregates (
    env             TEXT   NOT NULL,
    flag            TEXT   NOT NULL,
    variant         TEXT   NOT NULL,
    config_version  BIGINT NOT NULL,
    bucket_start_ms BIGINT NOT NULL,
    exposures       BIGINT NOT NULL,
    errors          BIGINT NOT NULL,
    crashes         BIGINT NOT NULL,
    latency         TEXT,
    events          TEXT   NOT NULL,
    PRIMARY KEY (env, flag, variant, config_version, bucket_start_ms)
);
CREATE INDEX metric_aggregates_time ON metric_aggregates (env, flag, bucket_start_ms);

-- SDK instances and the configuration version each has applied: the acknowledgement that a
-- rollback drill reads. `reported_at_ms` is the instance's own clock (`sentAtMs`) of the
-- newest report, which orders reports that arrive out of order; `last_seen_ms` is the
-- server's clock.
CREATE TABLE sdk_instances (
    env            TEXT   NOT NULL,
    instance_id    TEXT   NOT NULL,
    sdk            TEXT   NOT NULL,
    config_version BIGINT,
    dropped        BIGINT NOT NULL,
    reported_at_ms BIGINT NOT NULL,
    first_seen_ms  BIGINT NOT NULL,
    last_seen_ms   BIGINT NOT NULL,
    PRIMARY KEY (env, instance_id)
);
CREATE INDEX sdk_instances_last_seen ON sdk_instances (env, last_seen_ms);

-- Panics reported by SDKs, the newest 1000 per environment. `variants` maps a flag key to
-- the variant active on the panicking thread.
CREATE TABLE crash_reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    env         TEXT   NOT NULL,
    instance_id TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    message     TEXT   NOT NULL,
    location    TEXT,
    variants    TEXT   NOT NULL
);
CREATE INDEX crash_reports_env ON crash_reports (env, id);
