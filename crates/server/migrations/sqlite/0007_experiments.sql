-- Shadow experiments, for SQLite. Never edit this file once released: add a new migration instead.
-- Like 0002_telemetry.sql, this is data, not configuration: written with a metrics batch, in
-- its transaction, without touching `meta`, without an audit record or a version bump.

-- Shadow results per experiment (the sampling flag's key), configuration version and
-- 10-second bucket. `report` is the wire format's ShadowReport as JSON without its samples
-- (counts and the two latency sketches), merged in Rust like metric_aggregates.
CREATE TABLE shadow_aggregates (
    env             TEXT   NOT NULL,
    experiment      TEXT   NOT NULL,
    config_version  BIGINT NOT NULL,
    bucket_start_ms BIGINT NOT NULL,
    report          TEXT   NOT NULL,
    PRIMARY KEY (env, experiment, config_version, bucket_start_ms)
);
CREATE INDEX shadow_aggregates_time ON shadow_aggregates (env, experiment, bucket_start_ms);

-- A few mismatching pairs per experiment, for debugging; each experiment keeps its newest 100.
CREATE TABLE shadow_samples (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    env         TEXT   NOT NULL,
    experiment  TEXT   NOT NULL,
    at_ms       BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    control     TEXT   NOT NULL,
    candidate   TEXT   NOT NULL
);
CREATE INDEX shadow_samples_experiment ON shadow_samples (env, experiment, id);
