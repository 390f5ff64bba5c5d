-- Governance (SQLite): protected environments, change requests and archived flags. Never edit this
-- file once released: add a new migration instead. Same conventions as 0001_initial.sql:
-- times are BIGINT milliseconds since the Unix epoch, booleans BIGINT 0/1, JSON TEXT.

-- How an environment is protected. No row (or required_approvals = 0) means unprotected.
-- `version` starts at 1 and grows by one on every change: the base version of a change
-- request that weakens the protection.
CREATE TABLE environment_protection (
    env                 TEXT   NOT NULL PRIMARY KEY,
    required_approvals  BIGINT NOT NULL CHECK (required_approvals >= 0),
    allow_self_approval BIGINT NOT NULL CHECK (allow_self_approval IN (0, 1)),
    updated_ms          BIGINT NOT NULL,
    version             BIGINT NOT NULL
);

-- A change to a protected environment that waits for approvals. `payload` is the change
-- (its `kind`, the resource and the new definition) as JSON; `base_version` the resource's
-- version when it was requested (0 for a flag that did not exist yet), checked when it
-- applies. `environments` (JSON array), `required_approvals` and `allow_self_approval` are
-- the requirement computed when it was requested. `approvals` is a JSON array of
-- {actor, atMs}.
CREATE TABLE change_requests (
    id                  TEXT   NOT NULL PRIMARY KEY,
    kind                TEXT   NOT NULL,
    resource            TEXT   NOT NULL,
    payload             TEXT   NOT NULL,
    base_version        BIGINT NOT NULL,
    author              TEXT   NOT NULL,
    reason              TEXT,
    environments        TEXT   NOT NULL,
    required_approvals  BIGINT NOT NULL,
    allow_self_approval BIGINT NOT NULL CHECK (allow_self_approval IN (0, 1)),
    approvals           TEXT   NOT NULL,
    status              TEXT   NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'applied')),
    resolved_by         TEXT,
    applied_version     BIGINT,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    version             BIGINT NOT NULL
);
CREATE INDEX change_requests_status ON change_requests (status, created_ms);
CREATE INDEX change_requests_resource ON change_requests (resource, created_ms);

-- Flags someone archived. A row older than the flag's creation belongs to an earlier flag
-- of the same key and is ignored.
CREATE TABLE flag_archive (
    flag        TEXT   NOT NULL PRIMARY KEY,
    archived_ms BIGINT NOT NULL,
    actor       TEXT
);
