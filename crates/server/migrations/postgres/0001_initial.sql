-- Sluice's initial schema for PostgreSQL.
-- Never edit this file once released: add a new migration instead.
-- Conventions shared with migrations/sqlite: booleans are BIGINT 0/1, times are BIGINT
-- milliseconds since the Unix epoch, JSON is TEXT.

-- The one chain-head row. Every mutating transaction updates it first, which serializes
-- writers: it holds the global config version and the head of the audit hash chain.
CREATE TABLE meta (
    id             BIGINT  NOT NULL PRIMARY KEY CHECK (id = 1),
    config_version BIGINT  NOT NULL,
    audit_seq      BIGINT  NOT NULL,
    audit_head     TEXT    NOT NULL
);
INSERT INTO meta (id, config_version, audit_seq, audit_head)
VALUES (1, 0, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE environments (
    name          TEXT   NOT NULL PRIMARY KEY,
    description   TEXT,
    version       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
-- Seeded without an audit record and without bumping config_version: they exist from the start.
INSERT INTO environments (name, description, version, created_at_ms, updated_at_ms)
SELECT name, NULL, 1, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT
FROM (SELECT 'development' AS name UNION ALL SELECT 'staging' UNION ALL SELECT 'production') AS seeded;

-- `definition` is a sluice_core::model::FlagDef as JSON.
CREATE TABLE flags (
    key           TEXT   NOT NULL PRIMARY KEY,
    definition    TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- `definition` is a sluice_core::model::SegmentDef as JSON.
CREATE TABLE segments (
    name          TEXT   NOT NULL PRIMARY KEY,
    definition    TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Only the SHA-256 of a token's secret is stored, as lowercase hex.
CREATE TABLE tokens (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL,
    scope         TEXT   NOT NULL CHECK (scope IN ('admin', 'server', 'client')),
    environment   TEXT,
    secret_sha256 TEXT   NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT,
    version       BIGINT NOT NULL,
    CHECK ((scope = 'admin' AND environment IS NULL) OR (scope <> 'admin' AND environment IS NOT NULL))
);
CREATE INDEX tokens_environment ON tokens (environment);

-- The hash-chained audit log: hash = sha256(prev_hash || canonical record), see src/store/audit.rs.
CREATE TABLE audit_log (
    seq            BIGINT NOT NULL PRIMARY KEY,
    config_version BIGINT NOT NULL,
    time_ms        BIGINT NOT NULL,
    actor          TEXT,
    action         TEXT   NOT NULL,
    resource       TEXT   NOT NULL,
    before_json    TEXT,
    after_json     TEXT,
    reason         TEXT,
    request_id     TEXT,
    prev_hash      TEXT   NOT NULL,
    hash           TEXT   NOT NULL
);
CREATE INDEX audit_log_resource ON audit_log (resource, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_time ON audit_log (time_ms);
