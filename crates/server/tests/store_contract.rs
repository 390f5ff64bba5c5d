//! The store contract: one suite, run on SQLite and, when `SLUICE_TEST_POSTGRES_URL` is set, on PostgreSQL.
//!
//! Each test gets a fresh database: a temporary SQLite file, or a `sluice_test_<random>`
//! PostgreSQL database that is dropped afterwards, even when the test fails.
//! Set `SLUICE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres` to include PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_core::model::{FlagDef, SegmentDef};
use sluice_core::rollout::LatencySketch;
use sluice_core::telemetry::{
    BucketReport, CrashReport, EventAggregate, InstanceReport, MetricsBatch,
};
use sluice_core::{Context, FlagFile, Format, Source};
use sluice_server::store::{
    self, AuditFilter, Backend, BreakKind, Change, Ingested, InstanceRow, NewToken, Store,
    StoreError, StoreUrl, TokenAccess,
};
use sqlx::{AnyConnection, Connection, Executor};

#[path = "support/pg_database.rs"]
mod pg_database;

use pg_database::PgDatabase;

const POSTGRES_ENV: &str = "SLUICE_TEST_POSTGRES_URL";

/// A fresh store, plus a raw SQL connection string for tampering.
struct TestDb {
    store: Arc<dyn Store>,
    url: StoreUrl,
    raw_url: String,
    _dir: Option<tempfile::TempDir>,
    /// Declared last, so it drops the database after the store is gone.
    _database: Option<PgDatabase>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        let url = StoreUrl::Sqlite { path: path.clone() };
        TestDb {
            store: store::open(&url).await.unwrap(),
            url,
            raw_url: format!("sqlite://{}", path.display()),
            _dir: Some(dir),
            _database: None,
        }
    }

    async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            // Written past the test harness's capture, once, so that it shows in every run.
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                let notice =
                    format!("skipping PostgreSQL contract tests: {POSTGRES_ENV} is not set\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
            });
            return None;
        };
        let database = PgDatabase::create(admin_url).await;
        let raw_url = database.url();
        let url = StoreUrl::Postgres {
            url: raw_url.clone(),
        };
        Some(TestDb {
            store: store::open(&url).await.unwrap(),
            url,
            raw_url,
            _dir: None,
            _database: Some(database),
        })
    }

    /// Another store on the same database, as a second replica or after a restart.
    async fn open_again(&self) -> Arc<dyn Store> {
        store::open(&self.url).await.unwrap()
    }

    /// Runs SQL behind the store's back.
    async fn raw(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&self.raw_url).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

/// Defines each contract test twice: `sqlite::name` and `postgres::name`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
    };
}

contract!(
    seeded_environments_exist,
    flag_crud_round_trip,
    segment_crud_round_trip,
    environment_crud_round_trip,
    version_conflicts_write_nothing,
    invalid_results_write_nothing,
    every_mutation_writes_one_audit_record_and_one_version,
    kill_switch_is_per_environment,
    tokens_are_found_by_hash_and_revoked,
    snapshot_compiles_per_environment,
    import_replaces_everything_in_one_record,
    audit_list_filters,
    audit_chain_detects_an_edited_record,
    audit_chain_detects_a_deleted_record,
    audit_chain_detects_swapped_records,
    audit_chain_detects_a_truncated_tail,
    concurrent_writers_keep_the_chain_valid,
    concurrent_updates_of_one_flag_conflict,
    subscribers_see_each_write,
    data_survives_reopening,
    leader_lock_is_exclusive,
    telemetry_counts_each_batch_once,
    telemetry_is_not_configuration,
    concurrent_batches_merge_without_losing_counts,
    invalid_batches_write_nothing,
    instances_keep_the_newest_report,
    crash_reports_keep_the_newest,
    rollout_transitions_are_audited_and_idempotent,
    concurrent_transitions_apply_once,
    webhook_outbox_is_written_with_the_transition,
    change_requests_apply_once_and_conflict_on_a_moved_base,
    protection_and_archive_marks_are_audited_writes,
    app_releases_are_audited_and_guarded_by_revision,
    app_sessions_are_counted_per_version,
    dry_runs_are_audited_and_their_tallies_merge,
);

fn change(n: i64) -> Change {
    Change::at(1_700_000_000_000 + n)
        .by("tok_00000000000000aa")
        .because("testing")
        .request(format!("req-{n}"))
}

fn boolean_flag(default: &str) -> FlagDef {
    serde_json::from_value(json!({
        "type": "boolean",
        "variants": { "on": true, "off": false },
        "default_variant": default,
    }))
    .unwrap()
}

fn flag_using_segment(segment: &str) -> FlagDef {
    serde_json::from_value(json!({
        "type": "boolean",
        "variants": { "on": true, "off": false },
        "default_variant": "off",
        "rules": [{ "name": "beta users", "when": [{ "segment": segment }], "serve": "on" }],
    }))
    .unwrap()
}

fn segment(keys: &[&str]) -> SegmentDef {
    serde_json::from_value(json!({ "include": keys })).unwrap()
}

fn sha256_hex(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

async fn audit_count(store: &dyn Store) -> i64 {
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_valid(), "{report:?}");
    report.records
}

async fn seeded_environments_exist(db: &TestDb) {
    let store = &*db.store;
    let names: Vec<String> = store
        .list_environments()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["development", "production", "staging"]);
    let production = store.get_environment("production").await.unwrap();
    assert_eq!(production.version, 1);
    assert!(production.created_at_ms > 0);
    assert_eq!(store.config_version().await.unwrap(), 0);
    assert_eq!(audit_count(store).await, 0);
    assert!(matches!(
        store.get_environment("qa").await,
        Err(StoreError::NotFound)
    ));
}

async fn flag_crud_round_trip(db: &TestDb) {
    let store = &*db.store;
    let created = store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    assert_eq!(created.value.version, 1);
    assert_eq!(created.config_version, 1);
    assert_eq!(created.value.created_at_ms, 1_700_000_000_001);

    let fetched = store.get_flag("checkout").await.unwrap();
    assert_eq!(fetched, created.value);
    assert_eq!(fetched.definition, boolean_flag("off"));

    store
        .create_flag(&change(2), "banner", &boolean_flag("on"))
        .await
        .unwrap();
    let keys: Vec<String> = store
        .list_flags()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    assert_eq!(keys, ["banner", "checkout"]);

    let duplicate = store
        .create_flag(&change(3), "checkout", &boolean_flag("on"))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists)),
        "{duplicate:?}"
    );

    let updated = store
        .update_flag(&change(4), "checkout", &boolean_flag("on"), Some(1))
        .await
        .unwrap();
    assert_eq!(updated.value.version, 2);
    assert_eq!(updated.value.updated_at_ms, 1_700_000_000_004);
    assert_eq!(updated.value.created_at_ms, 1_700_000_000_001);
    assert_eq!(
        store.get_flag("checkout").await.unwrap().definition,
        boolean_flag("on")
    );

    let unconditional = store
        .update_flag(&change(5), "checkout", &boolean_flag("off"), None)
        .await
        .unwrap();
    assert_eq!(unconditional.value.version, 3);

    let deleted = store
        .delete_flag(&change(6), "checkout", Some(3))
        .await
        .unwrap();
    assert_eq!(deleted.value.key, "checkout");
    assert!(matches!(
        store.get_flag("checkout").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_flag(&change(7), "checkout", &boolean_flag("on"), None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_flag(&change(8), "checkout", None).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.config_version().await.unwrap(), 5);
    assert_eq!(audit_count(store).await, 5);
}

async fn segment_crud_round_trip(db: &TestDb) {
    let store = &*db.store;
    let created = store
        .create_segment(&change(1), "beta", &segment(&["user-1"]))
        .await
        .unwrap();
    assert_eq!(created.value.version, 1);
    assert_eq!(store.get_segment("beta").await.unwrap(), created.value);
    assert!(matches!(
        store
            .create_segment(&change(2), "beta", &segment(&[]))
            .await,
        Err(StoreError::AlreadyExists)
    ));

    let updated = store
        .update_segment(&change(3), "beta", &segment(&["user-1", "user-2"]), Some(1))
        .await
        .unwrap();
    assert_eq!(updated.value.version, 2);
    assert_eq!(updated.value.definition.include, ["user-1", "user-2"]);
    assert_eq!(
        store.list_segments().await.unwrap(),
        vec![updated.value.clone()]
    );

    // A segment that a flag uses cannot go.
    store
        .create_flag(&change(4), "beta-checkout", &flag_using_segment("beta"))
        .await
        .unwrap();
    let refused = store.delete_segment(&change(5), "beta", Some(2)).await;
    let Err(StoreError::Invalid(errors)) = refused else {
        panic!("expected Invalid, got {refused:?}");
    };
    assert!(errors.to_string().contains("beta"), "{errors}");
    assert!(store.get_segment("beta").await.is_ok());

    store
        .delete_flag(&change(6), "beta-checkout", None)
        .await
        .unwrap();
    store
        .delete_segment(&change(7), "beta", Some(2))
        .await
        .unwrap();
    assert!(matches!(
        store.get_segment("beta").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(audit_count(store).await, 5);
}

async fn environment_crud_round_trip(db: &TestDb) {
    let store = &*db.store;
    let created = store
        .create_environment(&change(1), "qa", Some("for testers"))
        .await
        .unwrap();
    assert_eq!(created.value.version, 1);
    assert_eq!(created.value.description.as_deref(), Some("for testers"));
    assert!(matches!(
        store.create_environment(&change(2), "qa", None).await,
        Err(StoreError::AlreadyExists)
    ));
    assert!(matches!(
        store
            .create_environment(&change(2), "not a name!", None)
            .await,
        Err(StoreError::Invalid(_))
    ));

    let updated = store
        .update_environment(&change(3), "qa", None, Some(1))
        .await
        .unwrap();
    assert_eq!(updated.value.version, 2);
    assert_eq!(updated.value.description, None);
    assert_eq!(store.get_environment("qa").await.unwrap(), updated.value);

    // A flag overriding qa keeps it alive.
    store
        .create_flag(&change(4), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    store
        .set_flag_enabled(&change(5), "checkout", Some("qa"), false, None)
        .await
        .unwrap();
    assert!(matches!(
        store.delete_environment(&change(6), "qa", None).await,
        Err(StoreError::Invalid(_))
    ));
    store
        .delete_flag(&change(7), "checkout", None)
        .await
        .unwrap();

    // So does an unrevoked token.
    let token = store
        .create_token(
            &change(8),
            &NewToken {
                name: "qa-service".into(),
                access: TokenAccess::Server {
                    environment: "qa".into(),
                },
                secret_sha256: sha256_hex("qa-secret"),
            },
        )
        .await
        .unwrap();
    let in_use = store.delete_environment(&change(9), "qa", None).await;
    let Err(StoreError::InUse { by }) = in_use else {
        panic!("expected InUse, got {in_use:?}");
    };
    assert_eq!(by, format!("token:{}", token.value.id));
    store
        .revoke_token(&change(10), &token.value.id, None)
        .await
        .unwrap();

    assert!(matches!(
        store.delete_environment(&change(11), "qa", Some(1)).await,
        Err(StoreError::Conflict { current: 2 })
    ));
    let deleted = store
        .delete_environment(&change(12), "qa", Some(2))
        .await
        .unwrap();
    assert_eq!(deleted.value.name, "qa");
    assert!(matches!(
        store.get_environment("qa").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(audit_count(store).await, 8);
}

async fn version_conflicts_write_nothing(db: &TestDb) {
    let store = &*db.store;
    store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    store
        .update_flag(&change(2), "checkout", &boolean_flag("on"), Some(1))
        .await
        .unwrap();
    store
        .create_segment(&change(3), "beta", &segment(&["a"]))
        .await
        .unwrap();
    let version = store.config_version().await.unwrap();
    let records = audit_count(store).await;

    let stale = store
        .update_flag(&change(4), "checkout", &boolean_flag("off"), Some(1))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 2 })),
        "{stale:?}"
    );
    let stale = store.delete_flag(&change(5), "checkout", Some(1)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 2 })),
        "{stale:?}"
    );
    let stale = store
        .set_flag_enabled(&change(6), "checkout", None, false, Some(7))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 2 })),
        "{stale:?}"
    );
    let stale = store
        .update_segment(&change(7), "beta", &segment(&[]), Some(5))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 1 })),
        "{stale:?}"
    );
    let stale = store.delete_segment(&change(8), "beta", Some(0)).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 1 })),
        "{stale:?}"
    );
    let stale = store
        .update_environment(&change(9), "production", None, Some(3))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 1 })),
        "{stale:?}"
    );
    let stale = store
        .import(&change(10), &FlagFile::default(), Some(version - 1))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { current }) if current == version));

    let flag = store.get_flag("checkout").await.unwrap();
    assert_eq!((flag.version, flag.definition), (2, boolean_flag("on")));
    assert_eq!(store.get_segment("beta").await.unwrap().version, 1);
    assert_eq!(store.config_version().await.unwrap(), version);
    assert_eq!(audit_count(store).await, records);
}

async fn invalid_results_write_nothing(db: &TestDb) {
    let store = &*db.store;
    let broken = boolean_flag("missing-variant");
    let refused = store.create_flag(&change(1), "checkout", &broken).await;
    let Err(StoreError::Invalid(errors)) = refused else {
        panic!("expected Invalid, got {refused:?}");
    };
    assert!(errors.to_string().contains("missing-variant"), "{errors}");
    assert!(matches!(
        store
            .create_flag(&change(2), "bad key!", &boolean_flag("on"))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_flag(&change(3), "needs-beta", &flag_using_segment("beta"))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.get_flag("checkout").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.config_version().await.unwrap(), 0);
    assert_eq!(audit_count(store).await, 0);
}

async fn every_mutation_writes_one_audit_record_and_one_version(db: &TestDb) {
    let store = &*db.store;
    let mut step = 0;
    let mut next = || {
        step += 1;
        (step, change(step))
    };

    let (n, c) = next();
    let committed = store.create_environment(&c, "qa", None).await.unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "environment.create",
        "environment:qa",
    )
    .await;
    let (n, c) = next();
    let committed = store
        .update_environment(&c, "qa", Some("QA"), None)
        .await
        .unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "environment.update",
        "environment:qa",
    )
    .await;
    let (n, c) = next();
    let committed = store
        .create_segment(&c, "beta", &segment(&["a"]))
        .await
        .unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "segment.create",
        "segment:beta",
    )
    .await;
    let (n, c) = next();
    let committed = store
        .update_segment(&c, "beta", &segment(&["b"]), None)
        .await
        .unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "segment.update",
        "segment:beta",
    )
    .await;

    let (n, c) = next();
    let committed = store
        .create_flag(&c, "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    let record = expect_newest(
        store,
        n,
        committed.config_version,
        "flag.create",
        "flag:checkout",
    )
    .await;
    assert_eq!(record.before, None);
    let after: FlagDef = serde_json::from_str(record.after.as_deref().unwrap()).unwrap();
    assert_eq!(after, boolean_flag("off"));

    let (n, c) = next();
    let committed = store
        .update_flag(&c, "checkout", &boolean_flag("on"), None)
        .await
        .unwrap();
    let record = expect_newest(
        store,
        n,
        committed.config_version,
        "flag.update",
        "flag:checkout",
    )
    .await;
    let before: FlagDef = serde_json::from_str(record.before.as_deref().unwrap()).unwrap();
    assert_eq!(before, boolean_flag("off"));
    let (n, c) = next();
    let committed = store
        .set_flag_enabled(&c, "checkout", Some("production"), false, None)
        .await
        .unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "flag.kill",
        "flag:checkout",
    )
    .await;
    let (n, c) = next();
    let committed = store
        .set_flag_enabled(&c, "checkout", Some("production"), true, None)
        .await
        .unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "flag.restore",
        "flag:checkout",
    )
    .await;

    let (n, c) = next();
    let new_token = NewToken {
        name: "ci".into(),
        access: TokenAccess::Admin,
        secret_sha256: sha256_hex("secret"),
    };
    let committed = store.create_token(&c, &new_token).await.unwrap();
    let resource = format!("token:{}", committed.value.id);
    let record = expect_newest(
        store,
        n,
        committed.config_version,
        "token.create",
        &resource,
    )
    .await;
    assert!(
        !record
            .after
            .unwrap_or_default()
            .contains(&new_token.secret_sha256)
    );
    let (n, c) = next();
    let committed = store
        .revoke_token(&c, &committed.value.id, Some(1))
        .await
        .unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "token.revoke",
        &resource,
    )
    .await;

    let (n, c) = next();
    let committed = store.delete_flag(&c, "checkout", None).await.unwrap();
    let record = expect_newest(
        store,
        n,
        committed.config_version,
        "flag.delete",
        "flag:checkout",
    )
    .await;
    assert_eq!(record.after, None);
    let (n, c) = next();
    let committed = store.delete_segment(&c, "beta", None).await.unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "segment.delete",
        "segment:beta",
    )
    .await;
    let (n, c) = next();
    let committed = store.delete_environment(&c, "qa", None).await.unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "environment.delete",
        "environment:qa",
    )
    .await;

    let (n, c) = next();
    let file = parse_file(
        "flags: { banner: { type: boolean, variants: { on: true, off: false }, default_variant: on } }",
    );
    let committed = store.import(&c, &file, Some(n - 1)).await.unwrap();
    expect_newest(
        store,
        n,
        committed.config_version,
        "config.import",
        "config",
    )
    .await;
}

/// Checks that mutation number `n` moved the version to `n` and wrote record `n`, and only it.
async fn expect_newest(
    store: &dyn Store,
    n: i64,
    committed_version: i64,
    action: &str,
    resource: &str,
) -> store::AuditRecord {
    assert_eq!(committed_version, n, "{action}");
    assert_eq!(store.config_version().await.unwrap(), n, "{action}");
    assert_eq!(audit_count(store).await, n, "{action}");
    let newest = store
        .list_audit(&AuditFilter {
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let [record] = newest.as_slice() else {
        panic!("expected one record, got {newest:?}");
    };
    assert_eq!(record.seq, n);
    assert_eq!(record.config_version, n);
    assert_eq!(record.action, action);
    assert_eq!(record.resource, resource);
    assert_eq!(record.actor.as_deref(), Some("tok_00000000000000aa"));
    assert_eq!(record.reason.as_deref(), Some("testing"));
    assert_eq!(record.request_id, Some(format!("req-{n}")));
    assert_eq!(record.time_ms, 1_700_000_000_000 + n);
    record.clone()
}

fn parse_file(yaml: &str) -> FlagFile {
    match Source::parse(None, yaml, Format::Yaml)
        .unwrap()
        .into_document()
    {
        sluice_core::Document::Sluice(file) => file,
        other => panic!("expected a Sluice document, got {other:?}"),
    }
}

async fn kill_switch_is_per_environment(db: &TestDb) {
    let store = &*db.store;
    let mut definition = boolean_flag("on");
    definition.off_variant = Some("off".into());
    store
        .create_flag(&change(1), "checkout", &definition)
        .await
        .unwrap();
    let killed = store
        .set_flag_enabled(&change(2), "checkout", Some("production"), false, Some(1))
        .await
        .unwrap();
    assert_eq!(killed.value.version, 2);
    let production = &killed.value.definition.environments["production"];
    assert_eq!(production.enabled, Some(false));
    assert!(killed.value.definition.enabled);

    let snapshot = store.snapshot(Some("production")).await.unwrap();
    let context = Context::with_key("user-1");
    let in_production = sluice_core::compile(&snapshot.file, Some("production")).unwrap();
    assert!(!in_production.boolean("checkout", &context, true).value);
    let in_staging = sluice_core::compile(&snapshot.file, Some("staging")).unwrap();
    assert!(in_staging.boolean("checkout", &context, false).value);

    let restored = store
        .set_flag_enabled(&change(3), "checkout", Some("production"), true, Some(2))
        .await
        .unwrap();
    assert_eq!(
        restored.value.definition.environments["production"].enabled,
        Some(true)
    );
    let everywhere = store
        .set_flag_enabled(&change(4), "checkout", None, false, None)
        .await
        .unwrap();
    assert!(!everywhere.value.definition.enabled);

    assert!(matches!(
        store
            .set_flag_enabled(&change(5), "checkout", Some("moon"), false, None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_flag_enabled(&change(6), "nope", Some("production"), false, None)
            .await,
        Err(StoreError::NotFound)
    ));
    let kills = store
        .list_audit(&AuditFilter {
            action: Some("flag.kill".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(kills.len(), 2);
}

async fn tokens_are_found_by_hash_and_revoked(db: &TestDb) {
    let store = &*db.store;
    let admin = store
        .create_token(
            &change(1),
            &NewToken {
                name: "first admin".into(),
                access: TokenAccess::Admin,
                secret_sha256: sha256_hex("admin-secret"),
            },
        )
        .await
        .unwrap()
        .value;
    assert!(
        admin.id.starts_with("tok_") && admin.id.len() == 20,
        "{}",
        admin.id
    );
    assert_eq!(admin.version, 1);
    let client = store
        .create_token(
            &change(2),
            &NewToken {
                name: "web".into(),
                access: TokenAccess::Client {
                    environment: "production".into(),
                },
                secret_sha256: sha256_hex("client-secret"),
            },
        )
        .await
        .unwrap()
        .value;
    assert_ne!(admin.id, client.id);

    assert_eq!(
        store
            .token_by_hash(&sha256_hex("admin-secret"))
            .await
            .unwrap(),
        admin
    );
    let found = store
        .token_by_hash(&sha256_hex("client-secret"))
        .await
        .unwrap();
    assert_eq!(found.access.environment(), Some("production"));
    assert!(matches!(
        store.token_by_hash(&sha256_hex("guess")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_token(&client.id).await.unwrap(), client);
    assert_eq!(
        store.list_tokens().await.unwrap(),
        vec![admin.clone(), client.clone()]
    );

    let reused = store
        .create_token(
            &change(3),
            &NewToken {
                name: "copy".into(),
                access: TokenAccess::Admin,
                secret_sha256: sha256_hex("admin-secret"),
            },
        )
        .await;
    assert!(
        matches!(reused, Err(StoreError::AlreadyExists)),
        "{reused:?}"
    );
    let nowhere = store
        .create_token(
            &change(4),
            &NewToken {
                name: "lost".into(),
                access: TokenAccess::Server {
                    environment: "moon".into(),
                },
                secret_sha256: sha256_hex("moon"),
            },
        )
        .await;
    assert!(matches!(nowhere, Err(StoreError::NotFound)), "{nowhere:?}");

    assert!(matches!(
        store.revoke_token(&change(5), &client.id, Some(9)).await,
        Err(StoreError::Conflict { current: 1 })
    ));
    let revoked = store
        .revoke_token(&change(6), &client.id, Some(1))
        .await
        .unwrap();
    assert_eq!(revoked.value.revoked_at_ms, Some(1_700_000_000_006));
    assert_eq!(revoked.value.version, 2);
    let found = store
        .token_by_hash(&sha256_hex("client-secret"))
        .await
        .unwrap();
    assert_eq!(found.revoked_at_ms, Some(1_700_000_000_006));

    // Revoking twice changes and records nothing.
    let version = store.config_version().await.unwrap();
    let again = store
        .revoke_token(&change(7), &client.id, None)
        .await
        .unwrap();
    assert_eq!(again.value, revoked.value);
    assert_eq!(again.config_version, version);
    assert_eq!(store.config_version().await.unwrap(), version);
    assert_eq!(audit_count(store).await, 3);
    assert!(matches!(
        store
            .revoke_token(&change(8), "tok_ffffffffffffffff", None)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn snapshot_compiles_per_environment(db: &TestDb) {
    let store = &*db.store;
    store
        .create_segment(&change(1), "beta", &segment(&["user-1"]))
        .await
        .unwrap();
    store
        .create_flag(&change(2), "beta-checkout", &flag_using_segment("beta"))
        .await
        .unwrap();
    store
        .create_flag(&change(3), "banner", &boolean_flag("on"))
        .await
        .unwrap();
    store
        .update_flag(&change(4), "banner", &boolean_flag("off"), None)
        .await
        .unwrap();

    let snapshot = store.snapshot(Some("staging")).await.unwrap();
    assert_eq!(snapshot.config_version, 4);
    assert_eq!(
        snapshot.file.environments.as_deref(),
        Some(
            &[
                "development".to_owned(),
                "production".to_owned(),
                "staging".to_owned()
            ][..]
        )
    );
    let flags: Vec<&String> = snapshot.file.flags.keys().collect();
    assert_eq!(flags, ["banner", "beta-checkout"]);
    assert_eq!(snapshot.flag_versions["banner"], 2);
    assert_eq!(snapshot.flag_versions["beta-checkout"], 1);
    assert_eq!(snapshot.segment_versions["beta"], 1);
    let engine = sluice_core::compile(&snapshot.file, Some("staging")).unwrap();
    assert!(
        engine
            .boolean("beta-checkout", &Context::with_key("user-1"), false)
            .value
    );
    assert!(
        !engine
            .boolean("beta-checkout", &Context::with_key("user-2"), true)
            .value
    );

    assert_eq!(store.snapshot(None).await.unwrap(), snapshot);
    assert!(matches!(
        store.snapshot(Some("moon")).await,
        Err(StoreError::NotFound)
    ));
}

async fn import_replaces_everything_in_one_record(db: &TestDb) {
    let store = &*db.store;
    store
        .create_flag(&change(1), "old", &boolean_flag("on"))
        .await
        .unwrap();
    store
        .create_flag(&change(2), "kept", &boolean_flag("on"))
        .await
        .unwrap();
    store
        .create_flag(&change(3), "changed", &boolean_flag("on"))
        .await
        .unwrap();
    let file = parse_file(
        r#"
environments: [development, staging, production, qa]
segments:
  beta: { include: [user-1] }
flags:
  kept: { type: boolean, variants: { "on": true, "off": false }, default_variant: "on" }
  changed: { type: boolean, variants: { "on": true, "off": false }, default_variant: "off" }
  new:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "off"
    rules: [{ when: [{ segment: beta }], serve: "on" }]
"#,
    );
    let imported = store.import(&change(4), &file, Some(3)).await.unwrap();
    assert_eq!(imported.config_version, 4);
    let summary = &imported.value;
    assert_eq!(summary.environments_created, ["qa"]);
    assert_eq!(summary.segments.created, ["beta"]);
    assert_eq!(summary.flags.created, ["new"]);
    assert_eq!(summary.flags.updated, ["changed"]);
    assert_eq!(summary.flags.deleted, ["old"]);
    assert_eq!(summary.flags.unchanged, 1);
    assert_eq!(audit_count(store).await, 4);

    assert_eq!(store.get_flag("kept").await.unwrap().version, 1);
    assert_eq!(store.get_flag("changed").await.unwrap().version, 2);
    assert_eq!(store.get_flag("new").await.unwrap().version, 1);
    assert!(matches!(
        store.get_flag("old").await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_environment("qa").await.is_ok());
    let record = &store.list_audit(&AuditFilter::default()).await.unwrap()[0];
    assert_eq!(
        (record.action.as_str(), record.resource.as_str()),
        ("config.import", "config")
    );
    let before: FlagFile = serde_json::from_str(record.before.as_deref().unwrap()).unwrap();
    assert!(before.flags.contains_key("old"));
    let after: FlagFile = serde_json::from_str(record.after.as_deref().unwrap()).unwrap();
    assert_eq!(after, store.snapshot(None).await.unwrap().file);

    // The same file again changes nothing and records nothing.
    let again = store.import(&change(5), &file, None).await.unwrap();
    assert!(again.value.is_empty());
    assert_eq!(again.value.flags.unchanged, 3);
    assert_eq!(again.config_version, 4);
    assert_eq!(audit_count(store).await, 4);

    // An invalid file writes nothing.
    let mut invalid = file.clone();
    invalid.flags["kept"].default_variant = "missing".into();
    assert!(matches!(
        store.import(&change(6), &invalid, None).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        store
            .get_flag("kept")
            .await
            .unwrap()
            .definition
            .default_variant,
        "on"
    );

    // Replacing with an empty file deletes every flag and segment in one record.
    let emptied = store
        .import(&change(7), &FlagFile::default(), Some(4))
        .await
        .unwrap();
    assert_eq!(emptied.value.flags.deleted.len(), 3);
    assert_eq!(emptied.value.segments.deleted, ["beta"]);
    assert!(store.list_flags().await.unwrap().is_empty());
    assert_eq!(audit_count(store).await, 5);
}

async fn audit_list_filters(db: &TestDb) {
    let store = &*db.store;
    for n in 1..=6 {
        let key = if n % 2 == 0 { "even" } else { "odd" };
        let change = Change::at(1_000 * n).by(if n <= 3 {
            "tok_aaaaaaaaaaaaaaaa"
        } else {
            "tok_bbbbbbbbbbbbbbbb"
        });
        if n <= 2 {
            store
                .create_flag(&change, key, &boolean_flag("on"))
                .await
                .unwrap();
        } else {
            store
                .update_flag(&change, key, &boolean_flag("on"), None)
                .await
                .unwrap();
        }
    }
    let seqs =
        |records: Vec<store::AuditRecord>| records.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    let list = |filter: AuditFilter| async move { seqs(store.list_audit(&filter).await.unwrap()) };

    assert_eq!(list(AuditFilter::default()).await, [6, 5, 4, 3, 2, 1]);
    assert_eq!(
        list(AuditFilter {
            resource: Some("flag:even".into()),
            ..AuditFilter::default()
        })
        .await,
        [6, 4, 2]
    );
    assert_eq!(
        list(AuditFilter {
            action: Some("flag.create".into()),
            ..AuditFilter::default()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        list(AuditFilter {
            actor: Some("tok_bbbbbbbbbbbbbbbb".into()),
            ..AuditFilter::default()
        })
        .await,
        [6, 5, 4]
    );
    assert_eq!(
        list(AuditFilter {
            since_ms: Some(2_000),
            until_ms: Some(5_000),
            ..AuditFilter::default()
        })
        .await,
        [4, 3, 2]
    );
    assert_eq!(
        list(AuditFilter {
            resource: Some("flag:odd".into()),
            actor: Some("tok_aaaaaaaaaaaaaaaa".into()),
            ..AuditFilter::default()
        })
        .await,
        [3, 1]
    );
    assert_eq!(
        list(AuditFilter {
            limit: Some(2),
            ..AuditFilter::default()
        })
        .await,
        [6, 5]
    );
    assert_eq!(
        list(AuditFilter {
            before_seq: Some(5),
            limit: Some(2),
            ..AuditFilter::default()
        })
        .await,
        [4, 3]
    );
    assert!(
        list(AuditFilter {
            actor: Some("tok_nobody".into()),
            ..AuditFilter::default()
        })
        .await
        .is_empty()
    );
}

/// Writes five audited mutations.
async fn five_mutations(store: &dyn Store) {
    store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    store
        .update_flag(&change(2), "checkout", &boolean_flag("on"), None)
        .await
        .unwrap();
    store
        .create_segment(&change(3), "beta", &segment(&["a"]))
        .await
        .unwrap();
    store
        .set_flag_enabled(&change(4), "checkout", Some("staging"), false, None)
        .await
        .unwrap();
    store
        .update_environment(&change(5), "staging", Some("pre-production"), None)
        .await
        .unwrap();
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_valid(), "{report:?}");
    assert_eq!((report.records, report.head_seq), (5, 5));
}

async fn first_break(store: &dyn Store) -> (i64, BreakKind) {
    let report = store.verify_audit().await.unwrap();
    let broken = report.first_break.expect("tampering must be detected");
    (broken.seq, broken.kind)
}

async fn audit_chain_detects_an_edited_record(db: &TestDb) {
    five_mutations(&*db.store).await;
    db.raw("UPDATE audit_log SET reason = 'nothing to see here' WHERE seq = 3")
        .await;
    assert_eq!(first_break(&*db.store).await, (3, BreakKind::Edited));
}

async fn audit_chain_detects_a_deleted_record(db: &TestDb) {
    five_mutations(&*db.store).await;
    db.raw("DELETE FROM audit_log WHERE seq = 2").await;
    assert_eq!(first_break(&*db.store).await, (2, BreakKind::Missing));
}

async fn audit_chain_detects_swapped_records(db: &TestDb) {
    five_mutations(&*db.store).await;
    db.raw("UPDATE audit_log SET seq = -1 WHERE seq = 2").await;
    db.raw("UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    db.raw("UPDATE audit_log SET seq = 3 WHERE seq = -1").await;
    assert_eq!(first_break(&*db.store).await, (2, BreakKind::Reordered));
}

async fn audit_chain_detects_a_truncated_tail(db: &TestDb) {
    five_mutations(&*db.store).await;
    db.raw("DELETE FROM audit_log WHERE seq = 5").await;
    assert_eq!(first_break(&*db.store).await, (5, BreakKind::Missing));
}

async fn concurrent_writers_keep_the_chain_valid(db: &TestDb) {
    const WRITERS: i64 = 20;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("flag-{writer}");
            let created = store
                .create_flag(&change(writer), &key, &boolean_flag("off"))
                .await?;
            let updated = store
                .update_flag(&change(writer), &key, &boolean_flag("on"), Some(1))
                .await?;
            Ok::<_, StoreError>([created.config_version, updated.config_version])
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.extend(task.await.unwrap().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=2 * WRITERS).collect::<Vec<_>>());
    let store = &*db.store;
    assert_eq!(store.config_version().await.unwrap(), 2 * WRITERS);
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(report.records, 2 * WRITERS);
    assert_eq!(store.list_flags().await.unwrap().len(), 20);
}

async fn concurrent_updates_of_one_flag_conflict(db: &TestDb) {
    db.store
        .create_flag(&change(0), "contested", &boolean_flag("off"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for writer in 1..=10 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update_flag(&change(writer), "contested", &boolean_flag("on"), Some(1))
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(committed) => {
                won += 1;
                assert_eq!(committed.value.version, 2);
            }
            Err(StoreError::Conflict { current: 2 }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(db.store.config_version().await.unwrap(), 2);
    assert_eq!(audit_count(&*db.store).await, 2);
}

async fn subscribers_see_each_write(db: &TestDb) {
    let store = &*db.store;
    let mut changes = store.subscribe();
    assert_eq!(*changes.borrow_and_update(), 0);
    store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*changes.borrow_and_update(), 1);
    store
        .update_flag(&change(2), "checkout", &boolean_flag("on"), None)
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        changes.wait_for(|version| *version >= 2),
    )
    .await
    .unwrap()
    .unwrap();
    // A failed write announces nothing.
    let _ = store
        .update_flag(&change(3), "checkout", &boolean_flag("on"), Some(1))
        .await;
    assert!(!changes.has_changed().unwrap());
}

async fn data_survives_reopening(db: &TestDb) {
    five_mutations(&*db.store).await;
    db.store.close().await;
    let reopened = db.open_again().await;
    assert_eq!(reopened.config_version().await.unwrap(), 5);
    assert_eq!(reopened.get_flag("checkout").await.unwrap().version, 3);
    assert_eq!(*reopened.subscribe().borrow(), 5);
    reopened
        .create_flag(&change(6), "after-restart", &boolean_flag("on"))
        .await
        .unwrap();
    assert_eq!(audit_count(&*reopened).await, 6);
    reopened.close().await;
}

async fn leader_lock_is_exclusive(db: &TestDb) {
    let mut first = db.store.leader_lock().await.unwrap();
    let mut second = db.store.leader_lock().await.unwrap();
    match db.store.backend() {
        Backend::Sqlite => {
            assert!(first.try_acquire().await.unwrap());
            assert!(second.try_acquire().await.unwrap());
            assert!(first.is_leader() && second.is_leader());
        }
        Backend::Postgres => {
            assert!(!first.is_leader());
            assert!(first.try_acquire().await.unwrap());
            assert!(!second.try_acquire().await.unwrap());
            assert!(first.is_leader() && !second.is_leader());
            // Still the leader, and still exclusive, on the next tick.
            assert!(first.try_acquire().await.unwrap());
            assert!(!second.try_acquire().await.unwrap());

            first.release().await.unwrap();
            assert!(!first.is_leader());
            assert!(second.try_acquire().await.unwrap());
            assert!(!first.try_acquire().await.unwrap());

            // Dropping the leader ends its session, which frees the lock.
            drop(second);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !first.try_acquire().await.unwrap() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the lock was never released"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(first.is_leader());
        }
    }
}

// Telemetry.

/// A bucket-aligned time, and when the store receives batches about it.
const T0: i64 = 1_700_000_000_000;
const RECEIVED: i64 = T0 + 5_000;

fn latency(values: &[f64]) -> Option<LatencySketch> {
    let mut sketch = LatencySketch::default();
    for &value in values {
        sketch.0.add(value);
    }
    (!values.is_empty()).then_some(sketch)
}

fn metrics_bucket(variant: &str, start_ms: i64, exposures: u64, latencies: &[f64]) -> BucketReport {
    let mut events = BTreeMap::new();
    events.insert(
        "purchase".to_owned(),
        EventAggregate {
            count: 1,
            sum: 2.5,
            sum_sq: 6.25,
        },
    );
    BucketReport {
        start_ms,
        flag: "checkout".into(),
        variant: variant.into(),
        config_version: 1,
        exposures,
        errors: 1,
        crashes: 0,
        latency: latency(latencies),
        events,
    }
}

fn metrics_batch(
    id: &str,
    instance: &str,
    version: Option<i64>,
    buckets: Vec<BucketReport>,
) -> MetricsBatch {
    MetricsBatch {
        batch_id: id.into(),
        instance: InstanceReport {
            id: instance.into(),
            sdk: "sluice-rust/0.1.0".into(),
            config_version: version,
        },
        sent_at_ms: RECEIVED,
        buckets,
        crashes: Vec::new(),
        dropped: 0,
        shadow: Vec::new(),
        dry_runs: Vec::new(),
    }
}

async fn telemetry_counts_each_batch_once(db: &TestDb) {
    let store = &*db.store;
    let batch = metrics_batch(
        "b1",
        "i1",
        Some(1),
        vec![
            metrics_bucket("on", T0, 10, &[1.0, 2.0]),
            metrics_bucket("off", T0, 20, &[3.0]),
            metrics_bucket("on", T0 + 10_000, 5, &[]),
            // Repeated in the same batch: both count.
            metrics_bucket("on", T0, 1, &[4.0]),
        ],
    );
    let first = store
        .record_metrics("production", &batch, RECEIVED)
        .await
        .unwrap();
    assert_eq!(
        first,
        Ingested {
            accepted: true,
            duplicate: false,
            buckets: 3,
            crashes: 0
        }
    );
    let again = store
        .record_metrics("production", &batch, RECEIVED + 1)
        .await
        .unwrap();
    assert_eq!(
        again,
        Ingested {
            accepted: false,
            duplicate: true,
            buckets: 0,
            crashes: 0
        }
    );
    // Another batch into the same bucket adds up.
    let second = metrics_batch(
        "b2",
        "i2",
        Some(1),
        vec![metrics_bucket("on", T0, 100, &[5.0])],
    );
    store
        .record_metrics("production", &second, RECEIVED)
        .await
        .unwrap();
    // The same id elsewhere is another batch.
    assert!(
        store
            .record_metrics("staging", &batch, RECEIVED)
            .await
            .unwrap()
            .accepted
    );

    let rows = store
        .flag_metrics("production", "checkout", T0, 100)
        .await
        .unwrap();
    let keys: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r.variant.as_str(), r.start_ms))
        .collect();
    assert_eq!(keys, [("off", T0), ("on", T0), ("on", T0 + 10_000)]);
    let on = &rows[1].aggregate;
    assert_eq!(on.exposures, 10 + 1 + 100);
    assert_eq!(on.errors, 3);
    assert_eq!(on.latency.as_ref().map(LatencySketch::count), Some(4));
    assert_eq!(
        on.events["purchase"],
        EventAggregate {
            count: 3,
            sum: 7.5,
            sum_sq: 18.75
        }
    );
    assert!(rows[2].aggregate.latency.is_none());
    // `since` inside a bucket includes that bucket; the limit cuts the oldest first.
    let later = store
        .flag_metrics("production", "checkout", T0 + 10_001, 100)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        store
            .flag_metrics("production", "checkout", T0, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .flag_metrics("production", "other", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let totals = store::telemetry::totals_by_variant(&rows);
    assert_eq!(totals["on"].exposures, 116);
    let arms = store::telemetry::arm_totals(&rows, &["off"], &["on"]);
    assert_eq!(
        (arms.control.exposures, arms.treatment.exposures),
        (20, 116)
    );
}

async fn telemetry_is_not_configuration(db: &TestDb) {
    let store = &*db.store;
    store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    let mut changes = store.subscribe();
    changes.borrow_and_update();
    let batch = metrics_batch(
        "b1",
        "i1",
        Some(1),
        vec![metrics_bucket("on", T0, 1, &[1.0])],
    );
    store
        .record_metrics("production", &batch, RECEIVED)
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), 1);
    assert_eq!(audit_count(store).await, 1);
    assert!(!changes.has_changed().unwrap());
    // And a configuration write still works after it.
    store
        .update_flag(&change(2), "checkout", &boolean_flag("on"), Some(1))
        .await
        .unwrap();
    assert_eq!(audit_count(store).await, 2);
}

async fn concurrent_batches_merge_without_losing_counts(db: &TestDb) {
    const BATCHES: u64 = 24;
    let mut tasks = Vec::new();
    for n in 0..BATCHES {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            // Every batch touches the same rows, in a different order, and some are retried.
            let mut buckets = vec![
                metrics_bucket("on", T0, n + 1, &[n as f64 + 1.0]),
                metrics_bucket("off", T0, 1, &[1.0, 2.0]),
                metrics_bucket("on", T0 + 10_000, 2, &[]),
            ];
            if n % 2 == 1 {
                buckets.reverse();
            }
            let batch = metrics_batch(
                &format!("batch-{}", n % 20),
                &format!("i{n}"),
                Some(1),
                buckets,
            );
            store.record_metrics("production", &batch, RECEIVED).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().accepted {
            accepted += 1;
        }
    }
    // Ids repeat from the 21st batch on.
    assert_eq!(accepted, 20);
    let rows = db
        .store
        .flag_metrics("production", "checkout", T0, 100)
        .await
        .unwrap();
    let find = |variant: &str, start: i64| {
        rows.iter()
            .find(|r| r.variant == variant && r.start_ms == start)
            .map(|r| r.aggregate.clone())
            .unwrap()
    };
    let on = find("on", T0);
    let off = find("off", T0);
    let later = find("on", T0 + 10_000);
    // Retried ids counted once; which attempt won decides the exposures, so count it.
    assert_eq!(off.exposures, 20);
    assert_eq!(off.latency.as_ref().map(LatencySketch::count), Some(40));
    assert_eq!(off.events["purchase"].count, 20);
    assert_eq!(on.errors, 20);
    assert_eq!(on.latency.as_ref().map(LatencySketch::count), Some(20));
    assert!(on.exposures >= (1..=20).sum::<u64>(), "{}", on.exposures);
    assert_eq!(later.exposures, 40);
}

async fn invalid_batches_write_nothing(db: &TestDb) {
    let store = &*db.store;
    let mut batch = metrics_batch(
        "bad",
        "i1",
        Some(1),
        vec![metrics_bucket("on", T0 + 1, 1, &[])],
    );
    batch.buckets.push(metrics_bucket("on", T0, 1, &[]));
    batch.buckets[1].flag.clear();
    match store.record_metrics("production", &batch, RECEIVED).await {
        Err(StoreError::Invalid(errors)) => {
            let found: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect();
            assert_eq!(
                found,
                [
                    "buckets[0].startMs: not a multiple of 10000",
                    "buckets[1].flag: must not be empty"
                ]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Not even the batch id: fixed, the same batch is accepted.
    batch.buckets.truncate(0);
    assert!(
        store
            .record_metrics("production", &batch, RECEIVED)
            .await
            .unwrap()
            .accepted
    );
    assert!(
        store
            .flag_metrics("production", "checkout", 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn instances_keep_the_newest_report(db: &TestDb) {
    let store = &*db.store;
    let mut report = metrics_batch("r1", "web-1", None, vec![]);
    store
        .record_metrics("production", &report, RECEIVED)
        .await
        .unwrap();
    report.batch_id = "r2".into();
    report.instance.config_version = Some(7);
    report.sent_at_ms = RECEIVED + 10_000;
    report.dropped = 3;
    store
        .record_metrics("production", &report, RECEIVED + 10_000)
        .await
        .unwrap();
    // An old report arriving late: seen now, but its version is older.
    report.batch_id = "r0".into();
    report.instance.config_version = Some(5);
    report.sent_at_ms = RECEIVED - 60_000;
    store
        .record_metrics("production", &report, RECEIVED + 20_000)
        .await
        .unwrap();
    let other = metrics_batch("o1", "web-2", Some(7), vec![]);
    store
        .record_metrics("production", &other, RECEIVED + 5_000)
        .await
        .unwrap();

    let listed = store.instances("production", 0, 100).await.unwrap();
    assert_eq!(
        listed,
        [
            InstanceRow {
                id: "web-1".into(),
                sdk: "sluice-rust/0.1.0".into(),
                config_version: Some(7),
                dropped: 3,
                first_seen_ms: RECEIVED,
                last_seen_ms: RECEIVED + 20_000,
            },
            InstanceRow {
                id: "web-2".into(),
                sdk: "sluice-rust/0.1.0".into(),
                config_version: Some(7),
                dropped: 0,
                first_seen_ms: RECEIVED + 5_000,
                last_seen_ms: RECEIVED + 5_000,
            },
        ]
    );
    assert_eq!(
        store
            .instances("production", RECEIVED + 6_000, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.instances("production", 0, 1).await.unwrap().len(), 1);
    assert!(store.instances("staging", 0, 100).await.unwrap().is_empty());
}

async fn crash_reports_keep_the_newest(db: &TestDb) {
    let store = &*db.store;
    let per_batch = sluice_core::telemetry::MAX_CRASHES_PER_BATCH as i64;
    for n in 0..11 {
        let mut batch = metrics_batch(&format!("c{n}"), "i1", Some(1), vec![]);
        batch.crashes = (0..per_batch)
            .map(|i| CrashReport {
                at_ms: n * per_batch + i,
                message: format!("panic {}", n * per_batch + i),
                location: Some("src/lib.rs:1:1".into()),
                variants: BTreeMap::from([("checkout".to_owned(), "on".to_owned())]),
            })
            .collect();
        let ingested = store
            .record_metrics("production", &batch, RECEIVED + n)
            .await
            .unwrap();
        assert_eq!(ingested.crashes, per_batch as usize);
    }
    let kept = store.crash_reports("production", 0, 5_000).await.unwrap();
    assert_eq!(kept.len() as i64, store::telemetry::MAX_CRASH_REPORTS);
    assert_eq!(kept[0].report.message, "panic 1099");
    assert_eq!(kept[0].instance_id, "i1");
    assert_eq!(kept[0].report.variants["checkout"], "on");
    assert_eq!(kept.last().unwrap().report.message, "panic 100");
    assert_eq!(
        store
            .crash_reports("production", RECEIVED + 10, 5_000)
            .await
            .unwrap()
            .len(),
        100
    );
}

/// A database made before telemetry existed (only the first migration) migrates forward on
/// open, keeping its data.
async fn migrates_forward(url: StoreUrl, raw_url: &str, backend: &str) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend)
        .join("0001_initial.sql");
    std::fs::copy(&source, dir.path().join("0001_initial.sql")).unwrap();
    let first_only = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    let pool = sqlx::AnyPool::connect(raw_url).await.unwrap();
    first_only.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO flags (key, definition, version, created_at_ms, updated_at_ms) \
         VALUES ('old', $1, 1, 1, 1)",
    )
    .bind(serde_json::to_string(&boolean_flag("on")).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = store::open(&url).await.unwrap();
    assert_eq!(store.get_flag("old").await.unwrap().version, 1);
    let batch = metrics_batch("b1", "i1", Some(0), vec![metrics_bucket("on", T0, 1, &[])]);
    assert!(
        store
            .record_metrics("production", &batch, RECEIVED)
            .await
            .unwrap()
            .accepted
    );
    assert_eq!(store.instances("production", 0, 10).await.unwrap().len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_databases_migrate_forward() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let raw_url = format!("sqlite://{}?mode=rwc", path.display());
    migrates_forward(StoreUrl::Sqlite { path }, &raw_url, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_databases_migrate_forward() {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        return;
    };
    let database = PgDatabase::create(admin_url).await;
    let raw_url = database.url();
    migrates_forward(
        StoreUrl::Postgres {
            url: raw_url.clone(),
        },
        &raw_url,
        "postgres",
    )
    .await;
}

// PostgreSQL only: notifications between replicas.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_carries_the_config_version() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut listener = sqlx::postgres::PgListener::connect(&db.raw_url)
        .await
        .unwrap();
    listener.listen(store::CHANGES_CHANNEL).await.unwrap();
    db.store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notification.payload(), "1");
    // A rolled-back write sends nothing.
    let _ = db
        .store
        .update_flag(&change(2), "checkout", &boolean_flag("on"), Some(9))
        .await;
    db.store
        .update_flag(&change(3), "checkout", &boolean_flag("on"), Some(1))
        .await
        .unwrap();
    let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notification.payload(), "2");
    db.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_see_each_others_writes_within_a_second() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let replica = db.open_again().await;
    let mut changes = replica.subscribe();
    for n in 1..=3 {
        let started = tokio::time::Instant::now();
        db.store
            .create_flag(&change(n), &format!("flag-{n}"), &boolean_flag("on"))
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(1),
            changes.wait_for(|version| *version >= n),
        )
        .await
        .expect("the replica did not hear of the write within 1 s")
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(replica.get_flag("flag-3").await.unwrap().version, 1);
    replica.close().await;
    db.store.close().await;
}

// ---------------------------------------------------------------------------------------
// Rollouts.

fn rollout_plan() -> sluice_core::rollout::RolloutPlan {
    sluice_core::rollout::RolloutPlan::from_value(json!({
        "stages": [{"percent": 10, "bake": "1h"}, {"percent": 50}, {"percent": 100}]
    }))
    .unwrap()
}

/// Creates `key` and starts a rollout of it in production from "off" to "on".
async fn started_rollout(store: &dyn Store, key: &str, n: i64) -> store::StoredRollout {
    use sluice_core::rollout::{Command, RolloutState, command};
    store
        .create_flag(&change(n), key, &boolean_flag("off"))
        .await
        .unwrap();
    let pending = RolloutState::new(rollout_plan(), key, "production", "on", "off");
    let start = command(
        &pending,
        change(n + 1).now_ms,
        Command::Start {
            actor: "tok_00000000000000aa".into(),
        },
    )
    .unwrap();
    let created = store
        .create_rollout(
            &change(n + 1),
            &store::NewRollout {
                state: pending,
                start: Some(start),
            },
        )
        .await
        .unwrap();
    assert!(created.value.applied);
    created.value.rollout
}

fn production_rules(flag: &FlagDef) -> Vec<serde_json::Value> {
    flag.environments
        .get("production")
        .and_then(|o| o.rules.as_ref())
        .map(|rules| rules.iter().map(|r| json!(r)).collect())
        .unwrap_or_default()
}

async fn rollout_transitions_are_audited_and_idempotent(db: &TestDb) {
    use sluice_core::rollout::{Command, command};
    let store = db.store.as_ref();
    let rollout = started_rollout(store, "checkout", 1).await;
    let records = audit_count(store).await;
    let version = store.config_version().await.unwrap();
    assert_eq!(rollout.exposure_version, version);
    let flag = store.get_flag("checkout").await.unwrap();
    assert_eq!(
        flag.version, 2,
        "the start wrote the first stage's exposure"
    );
    let rules = production_rules(&flag.definition);
    assert_eq!(rules[0]["name"], "rollout: everyone");
    assert_eq!(
        rules[0]["split"][0],
        json!({"variant": "on", "weight": 10_000})
    );

    // One unfinished rollout per flag and environment.
    let again = sluice_core::rollout::RolloutState::new(
        rollout_plan(),
        "checkout",
        "production",
        "on",
        "off",
    );
    let refused = store
        .create_rollout(
            &change(3),
            &store::NewRollout {
                state: again,
                start: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::InUse { .. }), "{refused:?}");
    // Bad variants name their field.
    let wrong = sluice_core::rollout::RolloutState::new(
        rollout_plan(),
        "checkout",
        "staging",
        "maybe",
        "off",
    );
    match store
        .create_rollout(
            &change(3),
            &store::NewRollout {
                state: wrong,
                start: None,
            },
        )
        .await
    {
        Err(StoreError::Invalid(errors)) => {
            assert_eq!(errors.iter().next().unwrap().path.to_string(), "treatment");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(audit_count(store).await, records);

    // A replay of the start writes nothing.
    let history = store.rollout_transitions(&rollout.id).await.unwrap();
    assert_eq!(history.len(), 1);
    let replay = store
        .apply_transition(&change(4), &rollout.id, &history[0].transition)
        .await
        .unwrap();
    assert!(!replay.value.applied);
    assert_eq!(replay.config_version, version);
    assert_eq!(store.config_version().await.unwrap(), version);

    // A rollback: one record, one version, the flag serves the control variant.
    let state = store.get_rollout(&rollout.id).await.unwrap().state;
    let rollback = command(
        &state,
        change(5).now_ms,
        Command::Rollback {
            reason: "errors".into(),
            actor: "tok_00000000000000aa".into(),
        },
    )
    .unwrap();
    let done = store
        .apply_transition(&change(5), &rollout.id, &rollback)
        .await
        .unwrap();
    assert!(done.value.applied);
    assert_eq!(done.config_version, version + 1);
    assert_eq!(audit_count(store).await, records + 1);
    let newest = store
        .list_audit(&AuditFilter {
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].action, "rollout.rollback");
    assert_eq!(newest[0].resource, "flag:checkout");
    let after: serde_json::Value =
        serde_json::from_str(newest[0].after.as_deref().unwrap()).unwrap();
    assert_eq!(after["evidence"]["reason"], "errors");
    let flag = store.get_flag("checkout").await.unwrap();
    let rules = production_rules(&flag.definition);
    assert_eq!(rules[0]["serve"], "off");
    assert_eq!(rules.len(), 1, "one rollout rule, none left behind");

    // A transition decided from the old state conflicts and writes nothing.
    let pause = command(
        &state,
        change(6).now_ms,
        Command::Pause {
            reason: "late".into(),
            actor: "tok_00000000000000aa".into(),
        },
    )
    .unwrap();
    let stale = store
        .apply_transition(&change(6), &rollout.id, &pause)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");
    assert_eq!(audit_count(store).await, records + 1);

    // Final: listed as inactive, and a new rollout of the flag may start.
    let active = store
        .list_rollouts(&store::RolloutFilter {
            active_only: true,
            ..store::RolloutFilter::default()
        })
        .await
        .unwrap();
    assert!(active.is_empty(), "{active:?}");
    let next = sluice_core::rollout::RolloutState::new(
        rollout_plan(),
        "checkout",
        "production",
        "on",
        "off",
    );
    store
        .create_rollout(
            &change(7),
            &store::NewRollout {
                state: next,
                start: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .list_rollouts(&store::RolloutFilter {
                flag: Some("checkout".into()),
                ..store::RolloutFilter::default()
            })
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn concurrent_transitions_apply_once(db: &TestDb) {
    use sluice_core::rollout::{Command, command};
    let rollout = started_rollout(db.store.as_ref(), "search", 1).await;
    let pause = command(
        &rollout.state,
        change(3).now_ms,
        Command::Pause {
            reason: "drill".into(),
            actor: "tok_00000000000000aa".into(),
        },
    )
    .unwrap();
    let records = audit_count(db.store.as_ref()).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = db.store.clone();
        let id = rollout.id.clone();
        let pause = pause.clone();
        tasks.push(tokio::spawn(async move {
            store.apply_transition(&change(3), &id, &pause).await
        }));
    }
    let mut applied = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().value.applied {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(audit_count(db.store.as_ref()).await, records + 1);
    assert_eq!(
        db.store
            .rollout_transitions(&rollout.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn webhook_outbox_is_written_with_the_transition(db: &TestDb) {
    use sluice_core::rollout::{Command, command};
    let store = db.store.as_ref();
    let hook = store
        .create_webhook(
            &change(1),
            &store::NewWebhook {
                url: "https://hooks.example.com/x".into(),
                secret: "very-secret".into(),
                events: vec!["rollback".into()],
                env: Some("production".into()),
            },
        )
        .await
        .unwrap()
        .value;
    let bad = store
        .create_webhook(
            &change(2),
            &store::NewWebhook {
                url: "https://hooks.example.com/x".into(),
                secret: "s".into(),
                events: vec!["explode".into()],
                env: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Invalid(_)), "{bad:?}");
    let audit = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert!(!format!("{audit:?}").contains("very-secret"));

    let rollout = started_rollout(store, "banner", 3).await;
    let now = change(10).now_ms;
    assert!(
        store.due_deliveries(now, 10).await.unwrap().is_empty(),
        "start is not subscribed"
    );
    let rollback = command(
        &rollout.state,
        now,
        Command::Rollback {
            reason: "r".into(),
            actor: "tok_00000000000000aa".into(),
        },
    )
    .unwrap();
    store
        .apply_transition(&change(10), &rollout.id, &rollback)
        .await
        .unwrap();
    let due = store.due_deliveries(now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].secret, "very-secret");
    assert_eq!(due[0].event, "rollout.rollback");
    let payload: serde_json::Value = serde_json::from_str(&due[0].payload).unwrap();
    assert_eq!(payload["rollout"], rollout.id.as_str());
    assert_eq!(payload["to"]["status"], "rolled_back");

    store
        .record_delivery(
            due[0].id,
            &store::DeliveryOutcome::Retry {
                next_attempt_ms: now + 5_000,
                error: "HTTP 500".into(),
            },
        )
        .await
        .unwrap();
    assert!(store.due_deliveries(now, 10).await.unwrap().is_empty());
    let later = store.due_deliveries(now + 5_000, 10).await.unwrap();
    assert_eq!(later[0].attempts, 1);
    store
        .record_delivery(
            later[0].id,
            &store::DeliveryOutcome::Delivered { at_ms: now + 5_000 },
        )
        .await
        .unwrap();
    assert!(
        store
            .due_deliveries(now + 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let status = store.deliveries(Some(&rollout.id), 10).await.unwrap();
    assert_eq!(status[0].attempts, 2);
    assert_eq!(status[0].delivered_ms, Some(now + 5_000));

    store.delete_webhook(&change(11), &hook.id).await.unwrap();
    assert!(store.list_webhooks().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_webhook(&change(12), &hook.id).await,
        Err(StoreError::NotFound)
    ));
}

fn change_by(n: i64, actor: &str) -> Change {
    Change::at(1_700_000_000_000 + n)
        .by(actor)
        .because("testing")
}

async fn change_requests_apply_once_and_conflict_on_a_moved_base(db: &TestDb) {
    use sluice_core::governance::Requirement;
    use sluice_server::store::{ChangePayload, ChangeStatus, NewChangeRequest};
    let store = &*db.store;
    store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    let requirement = Requirement {
        environments: vec!["production".into()],
        required_approvals: 2,
        allow_self_approval: false,
    };
    let request = |definition: FlagDef| NewChangeRequest {
        payload: ChangePayload::FlagUpdate {
            key: "checkout".into(),
            definition,
        },
        base_version: 1,
        requirement: requirement.clone(),
    };
    let filed = store
        .create_change_request(&change_by(2, "tok_author"), &request(boolean_flag("on")))
        .await
        .unwrap()
        .value;
    assert_eq!(filed.status, ChangeStatus::Pending);
    assert_eq!(filed.author, "tok_author");
    // The author may not approve; nor may anyone apply it before its approvals.
    let refused = store
        .approve_change_request(&change_by(3, "tok_author"), &filed.id)
        .await;
    assert!(
        matches!(refused, Err(StoreError::InUse { .. })),
        "{refused:?}"
    );
    let early = store
        .apply_change_request(&change_by(3, "tok_bob"), &filed.id, None)
        .await;
    assert!(matches!(early, Err(StoreError::InUse { .. })), "{early:?}");
    let before = audit_count(store).await;
    store
        .approve_change_request(&change_by(4, "tok_bob"), &filed.id)
        .await
        .unwrap();
    let approved = store
        .approve_change_request(&change_by(5, "tok_carol"), &filed.id)
        .await
        .unwrap()
        .value;
    assert_eq!(approved.status, ChangeStatus::Approved);
    let version_before_apply = store.config_version().await.unwrap();
    let applied = store
        .apply_change_request(&change_by(6, "tok_carol"), &filed.id, None)
        .await
        .unwrap();
    assert_eq!(applied.value.status, ChangeStatus::Applied);
    assert_eq!(applied.config_version, version_before_apply + 1);
    assert_eq!(applied.value.applied_version, Some(applied.config_version));
    // Two approvals and one application: three records, the last on the flag itself.
    assert_eq!(audit_count(store).await, before + 3);
    let newest = store
        .list_audit(&AuditFilter {
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(newest[0].action, "flag.update");
    assert_eq!(newest[0].resource, "flag:checkout");
    assert!(newest[0].reason.as_deref().unwrap().contains(&filed.id));
    let flag = store.get_flag("checkout").await.unwrap();
    assert_eq!(flag.version, 2);
    assert_eq!(flag.definition.default_variant, "on");
    // Applying twice is refused.
    let again = store
        .apply_change_request(&change_by(7, "tok_carol"), &filed.id, None)
        .await;
    assert!(matches!(again, Err(StoreError::InUse { .. })), "{again:?}");

    // A request based on version 1, applied after the flag moved to 2: a conflict that
    // changes nothing.
    let stale = store
        .create_change_request(&change_by(8, "tok_author"), &request(boolean_flag("off")))
        .await
        .unwrap()
        .value;
    for (n, approver) in [(9, "tok_bob"), (10, "tok_carol")] {
        store
            .approve_change_request(&change_by(n, approver), &stale.id)
            .await
            .unwrap();
    }
    let count = audit_count(store).await;
    let version = store.config_version().await.unwrap();
    let conflict = store
        .apply_change_request(&change_by(11, "tok_carol"), &stale.id, None)
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { current: 2 })),
        "{conflict:?}"
    );
    assert_eq!(audit_count(store).await, count);
    assert_eq!(store.config_version().await.unwrap(), version);
    assert_eq!(store.get_flag("checkout").await.unwrap().version, 2);
    assert_eq!(
        store.get_change_request(&stale.id).await.unwrap().status,
        ChangeStatus::Approved
    );
    // A rejected request is closed.
    store
        .reject_change_request(&change_by(12, "tok_bob"), &stale.id)
        .await
        .unwrap();
    let listed = store
        .list_change_requests(Some(ChangeStatus::Rejected), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, stale.id);
    assert_eq!(store.list_change_requests(None, 10).await.unwrap().len(), 2);
}

async fn protection_and_archive_marks_are_audited_writes(db: &TestDb) {
    use sluice_core::governance::Protection;
    let store = &*db.store;
    assert!(store.protections().await.unwrap().is_empty());
    let protection = Protection {
        required_approvals: 2,
        allow_self_approval: false,
    };
    let before = audit_count(store).await;
    let set = store
        .set_protection(&change(1), "production", protection, Some(0))
        .await
        .unwrap();
    assert_eq!(set.value.version, 1);
    // Setting the same again writes nothing; a stale version conflicts.
    store
        .set_protection(&change(2), "production", protection, None)
        .await
        .unwrap();
    let stale = store
        .set_protection(&change(3), "production", protection, Some(0))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { current: 1 })),
        "{stale:?}"
    );
    assert_eq!(audit_count(store).await, before + 1);
    let all = store.protections().await.unwrap();
    assert_eq!(all["production"].protection, protection);
    assert!(matches!(
        store.protection("nowhere").await,
        Err(StoreError::NotFound)
    ));

    store
        .create_flag(&change(4), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    let archived = store
        .archive_flag(&change(5), "checkout", true)
        .await
        .unwrap();
    assert_eq!(archived.value, Some(1_700_000_000_005));
    let activity = store.flag_activity().await.unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].archived_ms, Some(1_700_000_000_005));
    // Archiving is not a change of the flag; never reported means never evaluated.
    assert_eq!(activity[0].last_changed_ms, 1_700_000_000_004);
    assert_eq!(activity[0].last_evaluated_ms, None);
    store
        .archive_flag(&change(6), "checkout", false)
        .await
        .unwrap();
    assert_eq!(store.flag_activity().await.unwrap()[0].archived_ms, None);
    assert_eq!(audit_count(store).await, before + 4);
}

fn release_spec(version: &str, percent: f64) -> sluice_core::apps::ReleaseSpec {
    serde_json::from_value(json!({
        "channel": "stable",
        "version": version,
        "percent": percent,
        "artifacts": [{"os": "windows", "arch": "x64", "url": "https://dl.example.com/a.exe",
            "size": 10, "sha512": format!("{}==", "A".repeat(86))}],
    }))
    .unwrap()
}

async fn app_releases_are_audited_and_guarded_by_revision(db: &TestDb) {
    use sluice_core::apps::{ReleaseCommand, ReleaseState, apply_command};
    use sluice_server::store::{AppReleaseUpdate, NewApp};
    let store = &*db.store;
    let before = audit_count(store).await;
    let app = store
        .create_app(
            &change(1),
            &NewApp {
                key: "desk".into(),
                name: None,
                channels: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(app.value.channels, ["stable", "beta", "nightly"]);
    assert!(matches!(
        store
            .create_app(
                &change(2),
                &NewApp {
                    key: "desk".into(),
                    name: None,
                    channels: None
                }
            )
            .await,
        Err(StoreError::AlreadyExists)
    ));
    let created = store
        .create_app_release(&change(3), "desk", &release_spec("1.0.0", 0.1))
        .await
        .unwrap()
        .value;
    assert_eq!(
        created.release.share.weight(),
        100,
        "0.1% is 100 of 100,000"
    );
    assert_eq!(
        created.release.salt, created.id,
        "each release has its own salt"
    );
    assert!(matches!(
        store
            .create_app_release(&change(4), "desk", &release_spec("1.0.0", 1.0))
            .await,
        Err(StoreError::AlreadyExists)
    ));
    let mut bad = release_spec("2.0.0", 1.0);
    bad.channel = "canary".into();
    match store.create_app_release(&change(5), "desk", &bad).await {
        Err(StoreError::Invalid(errors)) => {
            assert_eq!(errors.iter().next().unwrap().path.to_string(), "channel");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store
            .create_app_release(&change(6), "nope", &release_spec("1.0.0", 1.0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(audit_count(store).await, before + 2);

    let halted = apply_command(&created.release, ReleaseCommand::Halt, 7).unwrap();
    let update = AppReleaseUpdate {
        action: "release.halt",
        expected_revision: created.revision,
        release: halted,
        evidence: None,
    };
    let written = store
        .update_app_release(&change(7), "desk", "stable", "1.0.0", &update)
        .await
        .unwrap()
        .value;
    assert_eq!(written.revision, 2);
    assert_eq!(written.release.state, ReleaseState::Halted);
    // The same update decided from the old revision is refused and writes nothing.
    assert!(matches!(
        store
            .update_app_release(&change(8), "desk", "stable", "1.0.0", &update)
            .await,
        Err(StoreError::Conflict { current: 2 })
    ));
    assert_eq!(audit_count(store).await, before + 3);
    let records = store
        .list_audit(&AuditFilter {
            action: Some("release.halt".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].resource, "app:desk/stable/1.0.0");
    assert!(store.rolling_app_releases().await.unwrap().is_empty());
    let listed = store
        .list_app_releases("desk", Some("stable"))
        .await
        .unwrap();
    assert_eq!(listed, vec![written]);
}

async fn app_sessions_are_counted_per_version(db: &TestDb) {
    use sluice_server::store::{NewApp, SessionReport};
    let store = &*db.store;
    store
        .create_app(
            &change(1),
            &NewApp {
                key: "desk".into(),
                name: None,
                channels: None,
            },
        )
        .await
        .unwrap();
    let before = audit_count(store).await;
    let now = 1_700_000_000_000;
    for (install, version, clean, crashed, at) in [
        ("a", "1.0.0", 5, 1, now),
        ("b", "1.0.0", 2, 0, now + 1_000),
        ("c", "1.1.0", 1, 3, now + 2_000),
        ("a", "1.1.0", 0, 1, now + 120_000),
    ] {
        let report = SessionReport {
            install_id: install.into(),
            version: version.into(),
            channel: "stable".into(),
            clean,
            crashed,
        };
        store.record_sessions("desk", &report, at).await.unwrap();
    }
    let old = store.session_counts("desk", "1.0.0", now).await.unwrap();
    assert_eq!((old.n, old.k), (8, 1));
    let new = store.session_counts("desk", "1.1.0", now).await.unwrap();
    assert_eq!((new.n, new.k), (5, 4));
    let later = store
        .session_counts("desk", "1.1.0", now + 120_000)
        .await
        .unwrap();
    assert_eq!((later.n, later.k), (1, 1));
    let installs = store.install_versions("desk", now).await.unwrap();
    let pairs: Vec<(String, i64)> = installs
        .iter()
        .map(|i| (i.version.clone(), i.installs))
        .collect();
    assert_eq!(pairs, [("1.0.0".to_owned(), 1), ("1.1.0".to_owned(), 2)]);
    assert_eq!(
        audit_count(store).await,
        before,
        "sessions are data, not configuration"
    );
}

async fn dry_runs_are_audited_and_their_tallies_merge(db: &TestDb) {
    use sluice_core::dry_run::{DryRunReport, DryRunSample, Transition, staged_from_value};
    use store::{DryRunStatus, NewDryRun};
    let store = &*db.store;
    store
        .create_flag(&change(1), "checkout", &boolean_flag("off"))
        .await
        .unwrap();
    let staged = |value: serde_json::Value| staged_from_value(value).unwrap();
    let new = |env: &str, staged| NewDryRun {
        env: env.into(),
        flag: "checkout".into(),
        staged,
    };
    let before = audit_count(store).await;
    let version = store.config_version().await.unwrap();
    // Staged rules that do not compile, an unknown flag or environment: nothing written.
    let invalid = store
        .start_dry_run(
            &change(2),
            &new(
                "production",
                staged(serde_json::json!([{"serve": "purple"}])),
            ),
        )
        .await;
    assert!(
        matches!(invalid, Err(StoreError::Invalid(_))),
        "{invalid:?}"
    );
    let nowhere = store
        .start_dry_run(
            &change(2),
            &new("nowhere", staged(serde_json::json!({"enabled": false}))),
        )
        .await;
    assert!(matches!(nowhere, Err(StoreError::NotFound)), "{nowhere:?}");
    assert_eq!(audit_count(store).await, before);
    assert_eq!(store.config_version().await.unwrap(), version);

    let started = store
        .start_dry_run(
            &change(3),
            &new(
                "production",
                staged(serde_json::json!({"default_variant": "on"})),
            ),
        )
        .await
        .unwrap();
    let id = started.value.id;
    assert_eq!(started.value.status, DryRunStatus::Running);
    assert_eq!(started.value.flag_version, 1);
    assert_eq!(started.config_version, version + 1);
    let twice = store
        .start_dry_run(
            &change(4),
            &new("production", staged(serde_json::json!({"enabled": false}))),
        )
        .await;
    assert!(matches!(twice, Err(StoreError::AlreadyExists)), "{twice:?}");
    // Another environment may run its own.
    let staging = store
        .start_dry_run(
            &change(5),
            &new("staging", staged(serde_json::json!({"enabled": false}))),
        )
        .await
        .unwrap();
    let snapshot = store.snapshot(None).await.unwrap();
    assert_eq!(snapshot.dry_runs.len(), 2);

    let report = |dry_run: i64, samples: usize| DryRunReport {
        dry_run,
        flag: "checkout".into(),
        transitions: vec![
            Transition {
                from: "off".into(),
                to: "on".into(),
                count: 7,
            },
            Transition {
                from: "on".into(),
                to: "on".into(),
                count: 3,
            },
        ],
        samples: (0..samples)
            .map(|i| DryRunSample {
                at_ms: i as i64,
                context: format!("{{\"targetingKey\":\"u{i}\"}}"),
                from: "off".into(),
                to: "on".into(),
            })
            .collect(),
    };
    // From an SDK of production: the staging dry run's report is not its to make.
    let mut batch = metrics_batch("dr-1", "i1", Some(1), Vec::new());
    batch.dry_runs = vec![
        report(id, 5),
        report(staging.value.id, 5),
        report(999_999, 1),
    ];
    store
        .record_metrics("production", &batch, RECEIVED)
        .await
        .unwrap();
    // The same batch again counts once.
    store
        .record_metrics("production", &batch, RECEIVED)
        .await
        .unwrap();
    // The server's own tallies, then many samples.
    for _ in 0..5 {
        store.record_dry_runs(&[report(id, 5)]).await.unwrap();
    }
    let tallies = store.dry_run_tallies(id).await.unwrap();
    let counts: Vec<(&str, &str, u64)> = tallies
        .transitions
        .iter()
        .map(|t| (t.from.as_str(), t.to.as_str(), t.count))
        .collect();
    assert_eq!(counts, [("off", "on", 42), ("on", "on", 18)]);
    assert_eq!(
        tallies.samples.len(),
        20,
        "each dry run keeps its newest 20 samples"
    );
    assert!(
        store
            .dry_run_tallies(staging.value.id)
            .await
            .unwrap()
            .transitions
            .is_empty()
    );

    let stopped = store.stop_dry_run(&change(6), id).await.unwrap();
    assert_eq!(stopped.value.status, DryRunStatus::Stopped);
    assert_eq!(stopped.value.ended_ms, Some(1_700_000_000_006));
    let again = store.stop_dry_run(&change(7), id).await.unwrap();
    assert_eq!(
        again.config_version, stopped.config_version,
        "stopping twice writes nothing"
    );
    assert_eq!(store.snapshot(None).await.unwrap().dry_runs.len(), 1);
    let listed = store
        .list_dry_runs(Some("production"), Some("checkout"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, DryRunStatus::Stopped);
    assert_eq!(store.list_dry_runs(None, None).await.unwrap().len(), 2);
    assert!(matches!(
        store.get_dry_run(999_999).await,
        Err(StoreError::NotFound)
    ));
    // A new one may start once the first stopped.
    store
        .start_dry_run(
            &change(8),
            &new("production", staged(serde_json::json!({"enabled": false}))),
        )
        .await
        .unwrap();
    assert_eq!(audit_count(store).await, before + 4);
    let records = store
        .list_audit(&store::AuditFilter {
            resource: Some(format!("dry-run:{id}")),
            ..store::AuditFilter::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["dry_run.stop", "dry_run.start"]);
}
