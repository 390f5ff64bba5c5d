-- Releases, for SQLite. Never edit this file once released: add a new migration instead.
-- Same conventions as 0001_initial.sql: times are BIGINT milliseconds since the Unix epoch,
-- JSON TEXT.

-- One release. `spec` is a sluice_core::release::ReleaseSpec as JSON (what people wrote);
-- `policy` the sluice_core::rollout::Policy the server chose for it, with its rule; `plan`
-- the rollout plan its rollouts follow; `evidence` a JSON array of checklist evidence, oldest
-- first; `override_json` an admin's override of the checklist, kept for good once given.
CREATE TABLE releases (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    spec          TEXT   NOT NULL,
    policy        TEXT   NOT NULL,
    plan          TEXT   NOT NULL,
    evidence      TEXT   NOT NULL,
    override_json TEXT,
    created_by    TEXT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    version       BIGINT NOT NULL
);

-- What happened to a release besides its rollouts' transitions: created, evidence, override,
-- gate holds, drills. `detail` is JSON. Keyed by (release, seq).
CREATE TABLE release_events (
    release_id TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    at_ms      BIGINT NOT NULL,
    actor      TEXT,
    detail     TEXT   NOT NULL,
    PRIMARY KEY (release_id, seq)
);

-- The rollouts a release started; a rollout belongs to at most one release.
CREATE TABLE release_rollouts (
    rollout_id TEXT   NOT NULL PRIMARY KEY,
    release_id TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX release_rollouts_release ON release_rollouts (release_id);
