-- Dry runs of staged rule changes, for PostgreSQL. Never edit this file once released: add a new
-- migration instead.

-- A staged change to one flag's override in one environment. Starting and stopping one is a
-- configuration write (audited, version bumped), because SDKs receive the running ones with
-- their configuration. `staged` is the EnvironmentOverride as JSON.
CREATE TABLE dry_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    env          TEXT   NOT NULL,
    flag         TEXT   NOT NULL,
    staged       TEXT   NOT NULL,
    flag_version BIGINT NOT NULL,
    status       TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    created_by   TEXT,
    reason       TEXT,
    ended_ms     BIGINT
);
CREATE UNIQUE INDEX dry_runs_one_running ON dry_runs (env, flag) WHERE status = 'running';

-- Like 0002_telemetry.sql, the tallies are data: merged with a metrics batch in its
-- transaction (so a retried batch counts once), or from the server's own OFREP evaluations.
CREATE TABLE dry_run_transitions (
    dry_run_id   BIGINT NOT NULL,
    from_variant TEXT   NOT NULL,
    to_variant   TEXT   NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (dry_run_id, from_variant, to_variant)
);

-- A few contexts whose variant would change; each dry run keeps its newest 20.
CREATE TABLE dry_run_samples (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dry_run_id   BIGINT NOT NULL,
    at_ms        BIGINT NOT NULL,
    context      TEXT   NOT NULL,
    from_variant TEXT   NOT NULL,
    to_variant   TEXT   NOT NULL
);
CREATE INDEX dry_run_samples_run ON dry_run_samples (dry_run_id, id);
