-- Desktop apps, their update channels and releases, and what installs report, for SQLite.
-- Never edit this file once released: add a new migration instead. Same conventions as
-- 0001_initial.sql: times are BIGINT milliseconds since the Unix epoch, JSON TEXT.

-- An app. `channels` is a JSON array of channel names (stable, beta, nightly by default).
CREATE TABLE apps (
    key        TEXT   NOT NULL PRIMARY KEY,
    name       TEXT,
    channels   TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    version    BIGINT NOT NULL
);

-- One release of an app in one channel. `release` is a sluice_core::apps::Release as JSON,
-- the whole truth (artifacts, share, state, salt, plan and where the plan is); `state`
-- repeats its state for queries. `version` is the semantic version; `revision` starts at 1
-- and grows by one on every write, for optimistic concurrency.
CREATE TABLE app_releases (
    id         TEXT   NOT NULL PRIMARY KEY,
    app        TEXT   NOT NULL,
    channel    TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    state      TEXT   NOT NULL,
    release    TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    revision   BIGINT NOT NULL,
    UNIQUE (app, channel, version)
);
CREATE INDEX app_releases_state ON app_releases (state);

-- Session outcomes per app, version and minute: telemetry, not configuration.
CREATE TABLE app_sessions (
    app       TEXT   NOT NULL,
    version   TEXT   NOT NULL,
    bucket_ms BIGINT NOT NULL,
    sessions  BIGINT NOT NULL,
    crashes   BIGINT NOT NULL,
    PRIMARY KEY (app, version, bucket_ms)
);

-- The version each install last reported, for `sluice app status`.
CREATE TABLE app_installs (
    app          TEXT   NOT NULL,
    install_id   TEXT   NOT NULL,
    channel      TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (app, install_id)
);
CREATE INDEX app_installs_seen ON app_installs (app, last_seen_ms);
