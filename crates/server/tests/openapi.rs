//! The OpenAPI document kept honest against the code and a real server.
//!
//! - Every `.route("…", …)` in `src/` is documented with exactly its methods, and every
//!   documented operation is served (without a credential: 401 exactly when it is secured).
//! - The core's serde field and variant names equal the schemas' properties and enums, and
//!   a field is `required` exactly when the model refuses a definition without it.
//! - A scenario calls every operation, successes and failures, and checks each status,
//!   content type, promised header and JSON body against the document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Client, Method, StatusCode};
use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_json::{Value, json};
use sluice_server::{ServeArgs, Settings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---------------------------------------------------------------------------------------
// A server on an ephemeral port.

struct App {
    address: String,
    admin: String,
    client: Client,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn spawn_app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        port: Some(0),
        data_dir: Some(dir.path().to_owned()),
        heartbeat: Some(1),
        ..ServeArgs::default()
    };
    let settings = Settings::load(args).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let started = sluice_server::start(settings).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(sluice_server::serve(listener, started.state, async move {
        let _ = stopped.await;
    }));
    App {
        address,
        admin: started.admin_token.unwrap(),
        client: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        _dir: dir,
        stop: Some(stop),
    }
}

async fn fetch_document(app: &App) -> Value {
    let response = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let document: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "openapi is {}",
        document["openapi"]
    );
    document
}

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                found.push((path.clone(), method.to_owned(), op));
            }
        }
    }
    found
}

fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    let mut value = value;
    for _ in 0..10 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                value = document
                    .pointer(reference.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("unresolved $ref {reference}"));
            }
            None => return value,
        }
    }
    panic!("$ref chain too long at {value}");
}

// ---------------------------------------------------------------------------------------
// Routes in the source.

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Every `.route("path", method_router)` in the crate's sources, as path → methods.
fn registered_routes() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
    for file in files {
        // The web console (src/console.rs and src/console/) serves HTML pages for people,
        // not API: its routes are left out of the document by this rule, and the auth
        // matrix covers them instead.
        if file.starts_with(&console) || file.ends_with("src/console.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (path, methods) in routes_in(&text, &file) {
            routes.entry(path).or_default().extend(methods);
        }
    }
    routes
}

/// The routes one source file declares, with their methods.
fn routes_in(text: &str, file: &Path) -> Vec<(String, BTreeSet<String>)> {
    // Comments may show `.route(` in examples, and test modules build their own routers;
    // only the code that serves counts.
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let code = without_test_items(&code);
    let mut routes = Vec::new();
    let mut rest = code.as_str();
    while let Some(start) = rest.find(".route(") {
        // rustfmt may put the path on the next line.
        rest = rest[start + ".route(".len()..].trim_start();
        rest = rest.strip_prefix('"').unwrap_or_else(|| {
            panic!(
                "{}: a route whose path is not a string literal; teach tests/openapi.rs to read it",
                file.display()
            )
        });
        let end = rest.find('"').unwrap();
        let path = rest[..end].to_owned();
        rest = &rest[end + 1..];
        let methods = method_calls(rest, file, &path);
        assert!(
            !methods.is_empty(),
            "{}: no methods found for {path}",
            file.display()
        );
        routes.push((path, methods));
    }
    routes
}

/// `code` without the items marked `#[cfg(test)]` (a brace-balanced block after the mark).
fn without_test_items(code: &str) -> String {
    let mut kept = String::new();
    let mut rest = code;
    while let Some(start) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..start]);
        rest = &rest[start..];
        let Some(open) = rest.find('{') else {
            return kept;
        };
        let mut depth = 0usize;
        let mut end = rest.len();
        for (index, c) in rest[open..].char_indices().map(|(i, c)| (open + i, c)) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    kept.push_str(rest);
    kept
}

/// The method functions called at the top level of a method router expression, such as
/// `get` and `post` in `, get(read).post(create))`.
fn method_calls(expression: &str, file: &Path, path: &str) -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    let mut depth = 0usize;
    let mut identifier = String::new();
    for c in expression.chars() {
        match c {
            '(' => {
                if depth == 0 && !identifier.is_empty() {
                    assert!(
                        METHODS.contains(&identifier.as_str()),
                        "{}: route {path} uses `{identifier}(…)`; teach tests/openapi.rs which methods it serves",
                        file.display()
                    );
                    methods.insert(identifier.to_uppercase());
                }
                identifier.clear();
                depth += 1;
            }
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            c if depth == 0 && (c.is_ascii_alphanumeric() || c == '_') => identifier.push(c),
            // `routing::get(` counts as `get(`.
            ':' => identifier.clear(),
            _ => identifier.clear(),
        }
    }
    methods
}

#[test]
fn the_route_scanner_reads_method_routers() {
    let file = Path::new("x.rs");
    let methods = method_calls(
        ", get(read).post(create)\n .delete(remove))\n .route(",
        file,
        "/x",
    );
    assert_eq!(
        methods,
        BTreeSet::from(["GET".to_owned(), "POST".to_owned(), "DELETE".to_owned()])
    );
    let methods = method_calls(", axum::routing::put(update))", file, "/x");
    assert_eq!(methods, BTreeSet::from(["PUT".to_owned()]));
    let code = "Router::new().route(\"/a\", get(list)).route(\n    \"/a/{k}\",\n    get(read).put(update),\n)";
    let routes = routes_in(code, file);
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[1].0, "/a/{k}");
    assert_eq!(
        routes[1].1,
        BTreeSet::from(["GET".to_owned(), "PUT".to_owned()])
    );
    let code = "a\n#[cfg(test)]\nmod tests {\n fn f() { r.route(\"/boom\", get(b)); }\n}\nb";
    assert_eq!(without_test_items(code), "a\n\nb");
}

#[tokio::test]
async fn every_route_is_documented_with_its_methods_and_served() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;

    let registered = registered_routes();
    assert!(
        registered.len() >= 20,
        "found only {} routes: {registered:?}",
        registered.len()
    );
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&document) {
        documented
            .entry(path)
            .or_default()
            .insert(method.to_uppercase());
    }
    let mut problems = Vec::new();
    for (path, methods) in &registered {
        match documented.get(path) {
            None => problems.push(format!("{path} ({methods:?}) is routed but not documented")),
            Some(listed) if listed != methods => {
                problems.push(format!("{path}: routed {methods:?}, documented {listed:?}"));
            }
            Some(_) => {}
        }
    }
    for path in documented.keys() {
        if !registered.contains_key(path) {
            problems.push(format!("{path} is documented but routed nowhere"));
        }
    }
    assert!(
        problems.is_empty(),
        "routes and the OpenAPI document disagree:\n{}",
        problems.join("\n")
    );

    // Each documented operation exists on the running server, and needs a credential
    // exactly when the document says so.
    for (path, method, op) in operations(&document) {
        let concrete = path
            .replace("{key}", "probe")
            .replace("{name}", "probe")
            .replace("{id}", "tok_probe");
        let url = format!("{}{concrete}", app.address);
        let response = app
            .client
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                url,
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !body.contains("no route for"),
            "{method} {path} fell through to the fallback"
        );
        let secured = !op["security"].as_array().unwrap().is_empty();
        if secured {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} answered {status} without a token"
            );
        } else if path.starts_with("/apps/") {
            // Desktop feeds are public and answer for an app: the probe names none.
            assert!(
                status == StatusCode::NOT_FOUND && body.contains("does not exist")
                    || status == StatusCode::BAD_REQUEST
                    || status == StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} is public but answered {status}: {body}"
            );
        } else {
            assert!(
                status.is_success(),
                "{method} {path} is public but answered {status}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn the_document_is_well_formed_and_the_docs_page_is_html() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;

    // Every $ref resolves.
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    refs.push(reference);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(&document, &mut refs);
    assert!(refs.len() > 50);
    for reference in refs {
        assert!(
            document
                .pointer(reference.trim_start_matches('#'))
                .is_some(),
            "unresolved {reference}"
        );
    }

    let schemes: BTreeSet<&str> = document["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(schemes, BTreeSet::from(["apiKey", "bearer"]));
    assert_eq!(
        document["components"]["securitySchemes"]["apiKey"]["name"],
        "X-API-Key"
    );
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&document) {
        let id = op["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        for requirement in op["security"].as_array().unwrap() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.contains(scheme.as_str()),
                    "{method} {path}: unknown scheme {scheme}"
                );
            }
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path} documents no success"
        );
        for response in responses.values() {
            assert!(resolve(&document, response)["description"].is_string());
        }
        // Path parameters and the template agree.
        let template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let item = &document["paths"][&path];
        let declared: BTreeSet<String> = [&item["parameters"], &op["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| resolve(&document, p))
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{path}: path parameters are required");
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(template, declared, "{method} {path}: path parameters");
        // Examples of request bodies match their schemas.
        if let Some(content) = op["requestBody"]["content"].as_object() {
            for media in content.values() {
                if let Some(example) = media.get("example") {
                    let errors = validate(&document, &media["schema"], example);
                    assert!(
                        errors.is_empty(),
                        "{method} {path}: the example does not match: {errors:?}"
                    );
                }
            }
        }
    }

    let response = app
        .client
        .get(format!("{}/api/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("/api/v1/openapi.json"));
    assert!(
        !page.contains("<script src"),
        "the page loads no script from elsewhere"
    );
}

// ---------------------------------------------------------------------------------------
// The core's model against the schemas.

/// The field names serde's derive passes to `deserialize_struct`, or the variant names it
/// passes to `deserialize_enum`: exactly the names the model accepts.
#[derive(Debug)]
enum Captured {
    Names(&'static [&'static str]),
    Other(String),
}

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Captured::Names(names) => write!(f, "names {names:?}"),
            Captured::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Captured {}

impl de::Error for Captured {
    fn custom<T: fmt::Display>(message: T) -> Captured {
        Captured::Other(message.to_string())
    }
}

struct Capture;

impl<'de> de::Deserializer<'de> for Capture {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
        Err(Captured::Other("not a struct or enum".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Captured> {
        Err(Captured::Names(fields))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Captured> {
        Err(Captured::Names(variants))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

fn names<'de, T: Deserialize<'de>>() -> BTreeSet<String> {
    match T::deserialize(Capture) {
        Err(Captured::Names(names)) => names.iter().map(|s| (*s).to_owned()).collect(),
        other => panic!(
            "cannot read the names of {}: {:?}",
            std::any::type_name::<T>(),
            other.err()
        ),
    }
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    let found = &document["components"]["schemas"][name];
    assert!(found.is_object(), "no schema {name}");
    found
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Checks properties against serde's field names, and `required` against what the model
/// refuses to go without, using a sample with every field set.
fn check_struct<T: for<'de> Deserialize<'de>>(document: &Value, name: &str, full: Value) {
    let schema = schema(document, name);
    let properties = keys(&schema["properties"]);
    assert_eq!(
        properties,
        names::<T>(),
        "{name}: schema properties and model fields differ"
    );
    assert_eq!(
        schema["additionalProperties"], false,
        "{name}: the model denies unknown fields"
    );
    assert_eq!(
        keys(&full),
        properties,
        "{name}: the test's sample must set every field"
    );
    let errors = validate(document, schema, &full);
    assert!(
        errors.is_empty(),
        "{name}: the full sample does not match the schema: {errors:?}"
    );
    serde_json::from_value::<T>(full.clone())
        .unwrap_or_else(|e| panic!("{name}: the model refuses the sample: {e}"));
    let required = schema.get("required").map(strings).unwrap_or_default();
    for field in &properties {
        let mut without = full.clone();
        without.as_object_mut().unwrap().remove(field);
        let accepted = serde_json::from_value::<T>(without).is_ok();
        assert_eq!(
            !accepted,
            required.contains(field),
            "{name}.{field}: the schema says required = {}, the model says {}",
            required.contains(field),
            !accepted
        );
    }
    let mut unknown = full;
    unknown
        .as_object_mut()
        .unwrap()
        .insert("surely_not_a_field".into(), json!(1));
    assert!(
        serde_json::from_value::<T>(unknown).is_err(),
        "{name}: unknown fields are refused"
    );
}

fn check_enum<T: for<'de> Deserialize<'de>>(document: &Value, schema_path: &str) {
    let found = document
        .pointer(schema_path)
        .unwrap_or_else(|| panic!("no {schema_path}"));
    assert_eq!(
        strings(&found["enum"]),
        names::<T>(),
        "{schema_path}: enum and model variants differ"
    );
}

#[tokio::test]
async fn the_schemas_match_the_core_model() {
    use sluice_core::model::{
        ConditionDef, EnvironmentOverride, FlagDef, FlagFile, FlagType, Operator, PrerequisiteDef,
        Provenance, Risk, RuleDef, SegmentDef, WeightDef,
    };
    use sluice_core::telemetry::{
        BucketReport, CrashReport, EventAggregate, InstanceReport, MetricsBatch,
    };
    let app = spawn_app().await;
    let document = fetch_document(&app).await;

    let condition = json!({
        "attribute": "plan", "op": "in", "value": "pro", "values": ["pro", "team"],
        "segment": "staff", "negate": true,
    });
    let rule = json!({
        "name": "ramp", "when": [condition], "serve": "on",
        "split": [{"variant": "on", "weight": 100_000}], "bucket_by": "accountId",
    });
    let flag = json!({
        "description": "d", "owner": "o", "tags": ["t"], "type": "boolean",
        "variants": {"on": true, "off": false}, "default_variant": "off", "off_variant": "off",
        "enabled": true, "prerequisites": [{"flag": "other", "variant": "on"}], "rules": [rule],
        "bucket_by": "accountId", "salt": "s", "provenance": "ai-assisted", "risk": "high",
        "expires": "2030-01-31", "metadata": {"team": "payments"},
        "goals": [{"event": "purchase", "kind": "mean", "better": "lower"}],
        "environments": {"production": {"enabled": false, "rules": [], "default_variant": "on"}},
    });
    let segment =
        json!({"description": "d", "include": ["a"], "exclude": ["b"], "when": [condition]});
    check_struct::<ConditionDef>(&document, "Condition", condition.clone());
    check_struct::<WeightDef>(&document, "Weight", json!({"variant": "on", "weight": 5}));
    check_struct::<PrerequisiteDef>(
        &document,
        "Prerequisite",
        json!({"flag": "a", "variant": "on"}),
    );
    check_struct::<RuleDef>(&document, "Rule", rule.clone());
    check_struct::<EnvironmentOverride>(
        &document,
        "EnvironmentOverride",
        json!({"enabled": false, "rules": [rule], "default_variant": "on"}),
    );
    check_struct::<sluice_core::model::GoalDef>(
        &document,
        "Goal",
        json!({"event": "purchase", "kind": "mean", "better": "lower"}),
    );
    check_enum::<sluice_core::model::GoalKind>(
        &document,
        "/components/schemas/Goal/properties/kind",
    );
    check_enum::<sluice_core::model::Better>(
        &document,
        "/components/schemas/Goal/properties/better",
    );
    check_struct::<FlagDef>(&document, "FlagDefinition", flag.clone());
    check_struct::<SegmentDef>(&document, "SegmentDefinition", segment.clone());
    check_struct::<FlagFile>(
        &document,
        "FlagFile",
        json!({"version": 1, "environments": ["production"], "segments": {"staff": segment}, "flags": {"f": flag}}),
    );

    // The telemetry wire format, which SDKs post.
    let event = json!({"count": 1, "sum": 2.0, "sumSq": 4.0});
    let mut sketch = sluice_core::rollout::LatencySketch::default();
    sketch.0.add(1.0);
    let bucket = json!({
        "startMs": 0, "flag": "f", "variant": "on", "configVersion": 1, "exposures": 1,
        "errors": 0, "crashes": 0, "latency": sketch, "events": {"e": event},
    });
    let instance = json!({"id": "i", "sdk": "sluice-rust/0.1.0", "configVersion": 1});
    let crash = json!({"atMs": 1, "message": "m", "location": "a.rs:1:1", "variants": {"f": "on"}});
    check_struct::<sluice_core::apps::ReleaseSpec>(
        &document,
        "AppReleaseCreate",
        json!({
            "channel": "stable", "version": "1.0.0", "notes": "n", "pubDate": "2026-01-01T00:00:00Z",
            "percent": 5, "allowManual": true, "plan": {"stages": [{"percent": 100}]},
            "artifacts": [{"os": "macos", "arch": "arm64", "url": "https://dl.example.com/a.zip",
                "size": 1, "sha512": "s", "signature": "g"}],
        }),
    );
    check_struct::<sluice_server::store::NewApp>(
        &document,
        "AppCreate",
        json!({"key": "desk", "name": "Desk", "channels": ["stable"]}),
    );
    check_struct::<sluice_server::store::SessionReport>(
        &document,
        "SessionReport",
        json!({"installId": "i", "version": "1.0.0", "channel": "stable", "clean": 1, "crashed": 0}),
    );
    check_struct::<EventAggregate>(&document, "EventAggregate", event);
    check_struct::<BucketReport>(&document, "BucketReport", bucket.clone());
    check_struct::<InstanceReport>(&document, "InstanceReport", instance.clone());
    check_struct::<CrashReport>(&document, "CrashReport", crash.clone());
    let shadow = json!({
        "startMs": 0, "experiment": "f", "configVersion": 1, "matches": 1, "mismatches": 1,
        "ignored": 0, "noisy": 0, "candidateErrors": 0, "candidateTimeouts": 0, "dropped": 0,
        "noiseComparisons": 1, "noiseMismatches": 0, "controlLatency": sketch,
        "candidateLatency": sketch, "samples": [{"atMs": 1, "control": "1", "candidate": "2"}],
    });
    check_struct::<sluice_core::telemetry::ShadowReport>(&document, "ShadowReport", shadow.clone());
    let dry_run = json!({
        "dryRun": 1, "flag": "f", "transitions": [{"from": "off", "to": "on", "count": 3}],
        "samples": [{"atMs": 1, "context": "{}", "from": "off", "to": "on"}],
    });
    check_struct::<sluice_core::dry_run::DryRunReport>(&document, "DryRunReport", dry_run.clone());
    check_struct::<MetricsBatch>(
        &document,
        "MetricsBatch",
        json!({
            "batchId": "b", "instance": instance, "sentAtMs": 1, "buckets": [bucket],
            "crashes": [crash], "dropped": 0, "shadow": [shadow], "dryRuns": [dry_run],
        }),
    );

    check_enum::<FlagType>(&document, "/components/schemas/FlagType");
    check_enum::<Provenance>(&document, "/components/schemas/Provenance");
    check_enum::<Risk>(&document, "/components/schemas/Risk");
    check_enum::<Operator>(&document, "/components/schemas/Operator");
    check_enum::<sluice_core::Reason>(&document, "/components/schemas/Reason");
    check_enum::<sluice_core::ErrorCode>(&document, "/components/schemas/ErrorCode");
    check_enum::<sluice_server::store::TokenScope>(&document, "/components/schemas/TokenScope");
    check_enum::<sluice_server::store::Backend>(
        &document,
        "/components/schemas/Status/properties/backend",
    );
    check_enum::<sluice_server::store::audit::BreakKind>(
        &document,
        "/components/schemas/ChainBreak/properties/kind",
    );
}

// ---------------------------------------------------------------------------------------
// A small JSON Schema checker: the keywords this document uses, strictly. An object schema
// with `properties` and no `additionalProperties` admits no other fields here, so an
// undocumented response field fails.

fn validate(document: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(document, schema, value, "$", &mut errors);
    errors
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown type {other}"),
    }
}

fn check(document: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(document, schema);
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|option| validate(document, option, value).is_empty())
            .count();
        if matching != 1 {
            errors.push(format!(
                "{at}: matches {matching} of the oneOf schemas: {value}"
            ));
        }
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(kind) => vec![kind.as_str()],
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
            other => panic!("bad type {other}"),
        };
        if !kinds.iter().any(|kind| type_matches(kind, value)) {
            errors.push(format!("{at}: expected {kinds:?}, got {value}"));
            return;
        }
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        errors.push(format!("{at}: expected {expected}, got {value}"));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(text), Some(content)) = (value.as_str(), schema.get("contentSchema")) {
        assert_eq!(schema["contentMediaType"], "application/json", "{at}");
        match serde_json::from_str::<Value>(text) {
            Ok(parsed) => check(document, content, &parsed, &format!("{at}(json)"), errors),
            Err(e) => errors.push(format!("{at}: not JSON ({e})")),
        }
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            errors.push(format!("{at}: {number} < {minimum}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            errors.push(format!("{at}: {number} > {maximum}"));
        }
    }
    if let Some(map) = value.as_object() {
        for field in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = field.as_str().unwrap();
            if !map.contains_key(field) {
                errors.push(format!("{at}: `{field}` is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (field, item) in map {
            let here = format!("{at}.{field}");
            match (properties.and_then(|p| p.get(field)), additional) {
                (Some(property), _) => check(document, property, item, &here, errors),
                (None, Some(Value::Bool(true))) => {}
                (None, Some(Value::Bool(false))) => {
                    errors.push(format!("{here}: not in the schema"))
                }
                (None, Some(additional)) => check(document, additional, item, &here, errors),
                (None, None) if properties.is_some() => {
                    errors.push(format!("{here}: not documented"))
                }
                (None, None) => {}
            }
        }
    }
    if let (Some(items), Some(element)) = (value.as_array(), schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            check(document, element, item, &format!("{at}[{index}]"), errors);
        }
    }
}

#[test]
fn the_checker_catches_what_it_should() {
    let document = json!({"components": {"schemas": {"T": {
        "type": "object", "required": ["a"],
        "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": ["string", "null"]}},
    }}}});
    let t = json!({"$ref": "#/components/schemas/T"});
    assert!(validate(&document, &t, &json!({"a": 1, "b": null})).is_empty());
    assert_eq!(validate(&document, &t, &json!({"b": "x"})).len(), 1);
    assert_eq!(validate(&document, &t, &json!({"a": -1})).len(), 1);
    assert_eq!(validate(&document, &t, &json!({"a": 1, "c": 2})).len(), 1);
    assert_eq!(validate(&document, &t, &json!({"a": "1"})).len(), 1);
    // JSON carried in a string, as in a server-sent event's `data`.
    let event = json!({"type": "object", "properties": {"data": {
        "type": "string", "contentMediaType": "application/json", "contentSchema": t,
    }}});
    assert!(validate(&document, &event, &json!({"data": "{\"a\": 1}"})).is_empty());
    assert_eq!(
        validate(&document, &event, &json!({"data": "{\"a\": -1}"})).len(),
        1
    );
    assert_eq!(validate(&document, &event, &json!({"data": "{"})).len(), 1);
    assert_eq!(
        validate(&document, &event, &json!({"data": {"a": 1}})).len(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Real responses against the document.

enum Body {
    Empty,
    Json(Value),
    Text(&'static str, String),
}

use Body::{Empty, Json, Text};

struct Conformance<'a> {
    app: &'a App,
    document: &'a Value,
    succeeded: BTreeSet<String>,
    /// Server-sent events checked against their stream's schema.
    events_checked: usize,
}

/// The first server-sent event that carries data (comments and heartbeats skipped), or
/// nothing if none arrives within three seconds.
async fn first_event(mut response: reqwest::Response) -> String {
    let mut text = String::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            let frames: Vec<&str> = text.split("\n\n").collect();
            // Every frame but the last is complete.
            if let Some(frame) = frames[..frames.len() - 1]
                .iter()
                .find(|frame| frame.lines().any(|line| line.starts_with("data:")))
            {
                return (*frame).to_owned();
            }
        }
        String::new()
    };
    tokio::time::timeout(Duration::from_secs(3), read)
        .await
        .unwrap_or_default()
}

/// An event frame's fields as a JSON object of strings (`data` lines joined by newlines).
fn event_fields(frame: &str) -> Value {
    let mut fields = serde_json::Map::new();
    for line in frame.lines().filter(|line| !line.starts_with(':')) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        let entry = fields
            .entry(name.to_owned())
            .or_insert_with(|| Value::String(String::new()));
        if let Value::String(joined) = entry {
            if name == "data" && !joined.is_empty() {
                joined.push('\n');
            }
            joined.push_str(value);
        }
    }
    Value::Object(fields)
}

struct Answer {
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }
}

/// A request: the documented operation (`"POST /api/v1/flags/{key}"`), the concrete path
/// (the template's when `None`), the token and extra headers.
struct Call<'a> {
    operation: &'a str,
    path: Option<&'a str>,
    token: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
}

fn to<'a>(operation: &'a str) -> Call<'a> {
    Call {
        operation,
        path: None,
        token: None,
        headers: Vec::new(),
    }
}

impl<'a> Call<'a> {
    fn at(mut self, path: &'a str) -> Call<'a> {
        self.path = Some(path);
        self
    }

    fn by(mut self, token: &'a str) -> Call<'a> {
        self.token = Some(token);
        self
    }

    fn with(mut self, name: &'a str, value: &'a str) -> Call<'a> {
        self.headers.push((name, value));
        self
    }
}

impl Conformance<'_> {
    /// Sends `call`, expects `status`, and checks the answer against the document: the
    /// status is documented, required headers are present, and the body has a documented
    /// content type and matches its schema.
    async fn expect(&mut self, status: u16, call: Call<'_>, body: Body) -> Answer {
        let (method, template) = call.operation.split_once(' ').unwrap();
        let path = call.path.unwrap_or(template);
        let op = &self.document["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        let url = format!("{}{path}", self.app.address);
        let mut request = self
            .app
            .client
            .request(Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(token) = call.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &call.headers {
            request = request.header(*name, *value);
        }
        request = match body {
            Empty => request,
            Json(value) => request.json(&value),
            Text(content_type, text) => request.header(CONTENT_TYPE, content_type).body(text),
        };
        let response = request.send().await.unwrap();
        let received = response.status();
        let headers = response.headers().clone();
        let content_type = headers.get(CONTENT_TYPE).map(|v| {
            v.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_owned()
        });
        let streaming = content_type.as_deref() == Some("text/event-stream");
        let text = if streaming {
            first_event(response).await
        } else {
            response.text().await.unwrap()
        };
        let what = format!("{method} {path} → {received}");
        assert_eq!(received.as_u16(), status, "{what}: {text}");
        let documented = op["responses"]
            .get(received.as_str())
            .map(|r| resolve(self.document, r))
            .unwrap_or_else(|| panic!("{what}: status not documented"));
        for (header, promise) in documented
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if resolve(self.document, promise)["required"] == true {
                assert!(
                    headers.contains_key(header.as_str()),
                    "{what}: promised header {header} is missing"
                );
            }
        }
        let mut body = Value::Null;
        if streaming || !text.is_empty() {
            let content_type =
                content_type.unwrap_or_else(|| panic!("{what}: a body without a content type"));
            let media = documented["content"].get(&content_type).unwrap_or_else(|| {
                panic!("{what}: content type {content_type} is not documented: {text}")
            });
            if content_type == "text/event-stream" {
                // The schema describes each event (as schemathesis reads it, and OpenAPI
                // 3.2's `itemSchema`): its fields, and the JSON in `data`.
                if !text.is_empty() {
                    body = event_fields(&text);
                    let errors = validate(self.document, &media["schema"], &body);
                    assert!(
                        errors.is_empty(),
                        "{what}: the first event does not match the document:\n{}\n{text}",
                        errors.join("\n")
                    );
                    self.events_checked += 1;
                }
            } else if content_type == "application/json" {
                body = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
                let errors = validate(self.document, &media["schema"], &body);
                assert!(
                    errors.is_empty(),
                    "{what}: the body does not match the document:\n{}\n{body:#}",
                    errors.join("\n")
                );
            } else {
                // YAML documents are checked like JSON ones, as clients parse them.
                if content_type == "application/yaml" {
                    let parsed: Value = yaml_serde::from_str(&text)
                        .unwrap_or_else(|e| panic!("{what}: not YAML ({e}): {text}"));
                    let errors = validate(self.document, &media["schema"], &parsed);
                    assert!(
                        errors.is_empty(),
                        "{what}: the YAML body does not match the document:\n{}",
                        errors.join("\n")
                    );
                }
                body = Value::String(text);
            }
        }
        if received.is_success() || received == StatusCode::NOT_MODIFIED {
            self.succeeded.insert(format!("{method} {template}"));
        }
        Answer { headers, body }
    }
}

fn example(document: &Value, operation: &str) -> Value {
    let (method, template) = operation.split_once(' ').unwrap();
    let op = &document["paths"][template][method.to_lowercase()];
    op["requestBody"]["content"]["application/json"]["example"].clone()
}

#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn real_responses_match_the_document() {
    let app = spawn_app().await;
    let document = fetch_document(&app).await;
    let admin = app.admin.as_str();
    let mut c = Conformance {
        app: &app,
        document: &document,
        succeeded: BTreeSet::new(),
        events_checked: 0,
    };

    // Health and documents.
    c.expect(200, to("GET /health"), Empty).await;
    c.expect(200, to("GET /ready"), Empty).await;
    c.expect(200, to("GET /api/v1/status").by(admin), Empty)
        .await;
    c.expect(200, to("GET /metrics"), Empty).await;
    c.expect(200, to("GET /api/v1/openapi.json"), Empty).await;
    c.expect(200, to("GET /api/docs"), Empty).await;

    // Environments.
    let env = "POST /api/v1/environments/{name}";
    let put_env = "PUT /api/v1/environments/{name}";
    let qa = "/api/v1/environments/qa";
    let about = example(&document, env);
    c.expect(201, to(env).at(qa).by(admin), Json(about.clone()))
        .await;
    c.expect(409, to(env).at(qa).by(admin), Json(about.clone()))
        .await;
    c.expect(
        400,
        to(env).at("/api/v1/environments/-bad").by(admin),
        Json(about.clone()),
    )
    .await;
    c.expect(
        422,
        to(env).at("/api/v1/environments/qa2").by(admin),
        Json(json!({"colour": 1})),
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/environments/{name}").at(qa).by(admin),
        Empty,
    )
    .await;
    let missing = to("GET /api/v1/environments/{name}").at("/api/v1/environments/nope");
    c.expect(404, missing.by(admin), Empty).await;
    c.expect(
        412,
        to(put_env).at(qa).by(admin).with("If-Match", "\"9\""),
        Json(about.clone()),
    )
    .await;
    let answer = c
        .expect(
            200,
            to(put_env).at(qa).by(admin).with("If-Match", "\"1\""),
            Json(about),
        )
        .await;
    assert_eq!(answer.header("etag"), "\"2\"");
    c.expect(
        400,
        to(put_env).at(qa).by(admin).with("If-Match", "two"),
        Json(json!({})),
    )
    .await;
    c.expect(200, to("GET /api/v1/environments").by(admin), Empty)
        .await;

    // Flags.
    let create = "POST /api/v1/flags/{key}";
    let update = "PUT /api/v1/flags/{key}";
    let read = "GET /api/v1/flags/{key}";
    let checkout = "/api/v1/flags/checkout";
    let definition = example(&document, create);
    let reason = ("X-Sluice-Reason", "conformance");
    c.expect(
        201,
        to(create).at(checkout).by(admin).with(reason.0, reason.1),
        Json(definition.clone()),
    )
    .await;
    c.expect(
        409,
        to(create).at(checkout).by(admin),
        Json(definition.clone()),
    )
    .await;
    let split = json!({
        "type": "string", "variants": {"a": "A", "b": "B"}, "default_variant": "a",
        "rules": [{"split": [{"variant": "a", "weight": 50_000}, {"variant": "b", "weight": 50_000}]}],
    });
    c.expect(
        201,
        to(create).at("/api/v1/flags/banner").by(admin),
        Json(split),
    )
    .await;
    let broken = json!({"type": "boolean", "variants": {"on": true}, "default_variant": "missing"});
    let answer = c
        .expect(
            422,
            to(create).at("/api/v1/flags/broken").by(admin),
            Json(broken),
        )
        .await;
    assert!(!answer.body["errors"].as_array().unwrap().is_empty());
    let typo =
        json!({"type": "boolean", "variants": {"on": true}, "default_variant": "on", "rulse": []});
    c.expect(
        422,
        to(create).at("/api/v1/flags/typo").by(admin),
        Json(typo),
    )
    .await;
    let not_json = Text("application/json", "{oops".into());
    c.expect(400, to(create).at("/api/v1/flags/oops").by(admin), not_json)
        .await;
    let huge = Text("application/json", "x".repeat(1_100_000));
    c.expect(413, to(create).at("/api/v1/flags/huge").by(admin), huge)
        .await;
    c.expect(200, to(read).at(checkout).by(admin), Empty).await;
    c.expect(404, to(read).at("/api/v1/flags/nope").by(admin), Empty)
        .await;
    c.expect(
        200,
        to(update).at(checkout).by(admin).with("If-Match", "\"1\""),
        Json(definition.clone()),
    )
    .await;
    c.expect(
        412,
        to(update).at(checkout).by(admin).with("If-Match", "\"1\""),
        Json(definition.clone()),
    )
    .await;
    c.expect(
        404,
        to(update).at("/api/v1/flags/nope").by(admin),
        Json(definition.clone()),
    )
    .await;
    c.expect(200, to("GET /api/v1/flags").by(admin), Empty)
        .await;
    let kill = "POST /api/v1/flags/{key}/kill";
    let restore = "POST /api/v1/flags/{key}/restore";
    c.expect(
        200,
        to(kill)
            .at("/api/v1/flags/checkout/kill?env=production")
            .by(admin),
        Empty,
    )
    .await;
    let back = "/api/v1/flags/checkout/restore?env=production&reason=ok";
    c.expect(200, to(restore).at(back).by(admin), Empty).await;
    c.expect(404, to(kill).at("/api/v1/flags/nope/kill").by(admin), Empty)
        .await;
    c.expect(
        412,
        to(kill)
            .at("/api/v1/flags/checkout/kill")
            .by(admin)
            .with("If-Match", "9"),
        Empty,
    )
    .await;

    // Segments.
    let segment = "POST /api/v1/segments/{name}";
    let staff = "/api/v1/segments/staff";
    let audience = example(&document, segment);
    c.expect(201, to(segment).at(staff).by(admin), Json(audience.clone()))
        .await;
    c.expect(
        200,
        to("GET /api/v1/segments/{name}").at(staff).by(admin),
        Empty,
    )
    .await;
    let put_segment = "PUT /api/v1/segments/{name}";
    c.expect(
        200,
        to(put_segment).at(staff).by(admin).with("If-Match", "1"),
        Json(audience),
    )
    .await;
    let bad = json!({"when": [{"attribute": "plan", "op": "lt", "value": "x"}]});
    c.expect(422, to(put_segment).at(staff).by(admin), Json(bad))
        .await;
    c.expect(200, to("GET /api/v1/segments").by(admin), Empty)
        .await;
    let nope = to("GET /api/v1/segments/{name}").at("/api/v1/segments/nope");
    c.expect(404, nope.by(admin), Empty).await;

    // Tokens.
    let tokens = "POST /api/v1/tokens";
    let created = c
        .expect(201, to(tokens).by(admin), Json(example(&document, tokens)))
        .await;
    let client = created.body["secret"].as_str().unwrap().to_owned();
    let server_token = json!({"name": "api", "scope": "server", "environment": "production"});
    let created = c
        .expect(201, to(tokens).by(admin), Json(server_token))
        .await;
    let server = created.body["secret"].as_str().unwrap().to_owned();
    let created = c
        .expect(
            201,
            to(tokens).by(admin),
            Json(json!({"name": "spare", "scope": "admin"})),
        )
        .await;
    let spare = format!("/api/v1/tokens/{}", created.body["id"].as_str().unwrap());
    c.expect(
        400,
        to(tokens).by(admin),
        Json(json!({"name": "x", "scope": "client"})),
    )
    .await;
    let bad_env = json!({"name": "x", "scope": "client", "environment": "nope"});
    c.expect(404, to(tokens).by(admin), Json(bad_env)).await;
    c.expect(
        422,
        to(tokens).by(admin),
        Json(json!({"name": "x", "scope": "root"})),
    )
    .await;
    c.expect(200, to("GET /api/v1/tokens").by(admin), Empty)
        .await;
    c.expect(
        200,
        to("DELETE /api/v1/tokens/{id}").at(&spare).by(admin),
        Empty,
    )
    .await;
    let unknown = to("DELETE /api/v1/tokens/{id}").at("/api/v1/tokens/tok_0000000000000000");
    c.expect(404, unknown.by(admin), Empty).await;
    c.expect(403, to("GET /api/v1/tokens").by(&client), Empty)
        .await;
    c.expect(401, to("GET /api/v1/tokens").by("sluice_nope"), Empty)
        .await;

    // OFREP.
    let one = "POST /ofrep/v1/evaluate/flags/{key}";
    let all = "POST /ofrep/v1/evaluate/flags";
    let flag = "/ofrep/v1/evaluate/flags/checkout";
    let context = example(&document, one);
    let answer = c
        .expect(200, to(one).at(flag).by(&client), Json(context.clone()))
        .await;
    let etag = answer.header("etag");
    c.expect(
        304,
        to(one).at(flag).by(&client).with("If-None-Match", &etag),
        Json(context.clone()),
    )
    .await;
    c.expect(200, to(one).at(flag).by(&server), Json(context.clone()))
        .await;
    c.expect(
        200,
        to(one).at(flag).with("X-API-Key", &client),
        Json(context.clone()),
    )
    .await;
    let nope = "/ofrep/v1/evaluate/flags/nope";
    c.expect(404, to(one).at(nope).by(&client), Json(context.clone()))
        .await;
    // A split without a targeting key, and a context that is not an object.
    let banner = "/ofrep/v1/evaluate/flags/banner";
    c.expect(
        400,
        to(one).at(banner).by(&client),
        Json(json!({"context": {}})),
    )
    .await;
    c.expect(
        400,
        to(one).at(flag).by(&client),
        Json(json!({"context": [1]})),
    )
    .await;
    c.expect(
        400,
        to(one).at(flag).by(&client),
        Text("application/json", "{oops".into()),
    )
    .await;
    c.expect(401, to(one).at(flag), Json(context.clone())).await;
    c.expect(403, to(one).at(flag).by(admin), Json(context.clone()))
        .await;
    let answer = c
        .expect(200, to(all).by(&client), Json(context.clone()))
        .await;
    assert_eq!(answer.body["flags"].as_array().unwrap().len(), 2);
    let etag = answer.header("etag");
    c.expect(
        304,
        to(all).by(&client).with("If-None-Match", &etag),
        Json(context.clone()),
    )
    .await;
    c.expect(200, to(all).by(&client), Empty).await;
    c.expect(
        400,
        to(all).by(&client),
        Text("application/json", "{oops".into()),
    )
    .await;

    // Streams and polling.
    c.expect(200, to("GET /ofrep/v1/events").by(&client), Empty)
        .await;
    c.expect(200, to("GET /api/v1/stream").by(&server), Empty)
        .await;
    // The configuration stream's first event, at least, was checked against the document.
    assert!(c.events_checked >= 1, "no stream event was checked");
    c.expect(403, to("GET /api/v1/stream").by(&client), Empty)
        .await;
    let answer = c
        .expect(200, to("GET /api/v1/config").by(&server), Empty)
        .await;
    let etag = answer.header("etag");
    c.expect(
        304,
        to("GET /api/v1/config")
            .by(&server)
            .with("If-None-Match", &etag),
        Empty,
    )
    .await;
    c.expect(403, to("GET /api/v1/config").by(&client), Empty)
        .await;

    // Telemetry.
    let report = "POST /api/v1/metrics";
    let mut batch = example(&document, report);
    let mut sketch = sluice_core::rollout::LatencySketch::default();
    sketch.0.add(12.5);
    batch["buckets"][0]["latency"] = serde_json::to_value(sketch).unwrap();
    let recorded = c
        .expect(200, to(report).by(&server), Json(batch.clone()))
        .await;
    assert_eq!(recorded.body["accepted"], true);
    let again = c
        .expect(200, to(report).by(&server), Json(batch.clone()))
        .await;
    assert_eq!(again.body["duplicate"], true);
    let mut misaligned = batch.clone();
    misaligned["batchId"] = json!("another");
    misaligned["buckets"][0]["startMs"] = json!(1);
    c.expect(422, to(report).by(&server), Json(misaligned))
        .await;
    c.expect(
        400,
        to(report).by(&server),
        Text("application/json", "{oops".into()),
    )
    .await;
    c.expect(
        415,
        to(report).by(&server).with("Content-Encoding", "br"),
        Json(batch.clone()),
    )
    .await;
    c.expect(403, to(report).by(admin), Json(batch)).await;
    let flag_metrics = "GET /api/v1/flags/{key}/metrics";
    let read = c
        .expect(
            200,
            to(flag_metrics)
                .at("/api/v1/flags/checkout/metrics?env=production&since=0")
                .by(admin),
            Empty,
        )
        .await;
    assert_eq!(read.body["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(read.body["totals"]["on"]["latencyCount"], 1);
    let own = "/api/v1/flags/checkout/metrics?since=0";
    c.expect(200, to(flag_metrics).at(own).by(&server), Empty)
        .await;
    c.expect(403, to(flag_metrics).at(own).by(&client), Empty)
        .await;
    let unnamed = "/api/v1/flags/checkout/metrics";
    c.expect(400, to(flag_metrics).at(unnamed).by(admin), Empty)
        .await;
    let nowhere = "/api/v1/flags/checkout/metrics?env=nope";
    c.expect(404, to(flag_metrics).at(nowhere).by(admin), Empty)
        .await;
    let report = "GET /api/v1/experiments/{key}/report";
    c.expect(
        200,
        to(report)
            .at("/api/v1/experiments/checkout/report?env=production&metric=purchase")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        400,
        to(report)
            .at("/api/v1/experiments/checkout/report?env=production")
            .by(admin),
        Empty,
    )
    .await;
    let shadow = "GET /api/v1/experiments/{key}/shadow";
    c.expect(
        200,
        to(shadow)
            .at("/api/v1/experiments/checkout/shadow?env=production")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        400,
        to(shadow)
            .at("/api/v1/experiments/checkout/shadow")
            .by(admin),
        Empty,
    )
    .await;
    // Dry runs: started, refused twice (a second one, bad staged rules), listed, read,
    // stopped.
    let start = "POST /api/v1/dry-runs";
    let staged = json!({"flag": "checkout", "env": "production", "staged": {"enabled": false}});
    let started = c
        .expect(201, to(start).by(admin), Json(staged.clone()))
        .await;
    c.expect(409, to(start).by(admin), Json(staged)).await;
    let purple = json!({"flag": "checkout", "env": "production", "staged": [{"serve": "purple"}]});
    c.expect(422, to(start).by(admin), Json(purple)).await;
    let missing = json!({"flag": "nope", "env": "production", "staged": {"enabled": false}});
    c.expect(404, to(start).by(admin), Json(missing)).await;
    let staging = json!({"flag": "checkout", "env": "staging", "staged": {"enabled": false}});
    c.expect(403, to(start).by(&server), Json(staging)).await;
    let dry_run = format!("/api/v1/dry-runs/{}", started.body["id"]);
    c.expect(200, to("GET /api/v1/dry-runs").by(admin), Empty)
        .await;
    let read = "GET /api/v1/dry-runs/{id}";
    c.expect(200, to(read).at(&dry_run).by(admin), Empty).await;
    c.expect(404, to(read).at("/api/v1/dry-runs/999999").by(admin), Empty)
        .await;
    let stop = format!("{dry_run}/stop");
    let stopped = c
        .expect(
            200,
            to("POST /api/v1/dry-runs/{id}/stop").at(&stop).by(admin),
            Empty,
        )
        .await;
    assert_eq!(stopped.body["status"], "stopped");
    let apply = "POST /api/v1/dry-runs/{id}/apply";
    let stopped_apply = format!("{dry_run}/apply");
    c.expect(409, to(apply).at(&stopped_apply).by(admin), Empty)
        .await;
    let staged = json!({"flag": "checkout", "env": "production", "staged": {"enabled": true}});
    let second = c.expect(201, to(start).by(admin), Json(staged)).await;
    let second = format!("/api/v1/dry-runs/{}/apply", second.body["id"]);
    let applied = c
        .expect(
            200,
            to(apply).at(&second).by(admin),
            Json(json!({"reason": "reviewed"})),
        )
        .await;
    assert_eq!(applied.body["status"], "stopped");
    let instances = "GET /api/v1/instances";
    let listed = c
        .expect(
            200,
            to(instances)
                .at("/api/v1/instances?env=production")
                .by(admin),
            Empty,
        )
        .await;
    assert_eq!(listed.body["instances"][0]["configVersion"], 12);
    c.expect(200, to(instances).by(&server), Empty).await;
    c.expect(400, to(instances).by(admin), Empty).await;
    let nowhere = "/api/v1/instances?env=nope";
    c.expect(404, to(instances).at(nowhere).by(admin), Empty)
        .await;

    // Rollouts: two flags, one steered through pause, resume, approve and promote, the
    // other pending for an approval, then started, rolled back and killed.
    let probe = json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off"});
    for key in ["rollout-probe", "rollout-probe-2"] {
        let path = format!("/api/v1/flags/{key}");
        c.expect(
            201,
            to("POST /api/v1/flags/{key}").at(&path).by(admin),
            Json(probe.clone()),
        )
        .await;
    }
    let plan = |first: u32, second: u32| json!({"stages": [{"percent": 10, "approvals": first}, {"percent": 100, "approvals": second}]});
    let create = "POST /api/v1/rollouts";
    let body = json!({"flag": "rollout-probe", "env": "production", "plan": plan(0, 1), "reason": "conformance"});
    let created = c
        .expect(201, to(create).by(admin), Json(body.clone()))
        .await;
    assert_eq!(created.body["status"], "running");
    let first = format!("/api/v1/rollouts/{}", created.body["id"].as_str().unwrap());
    c.expect(409, to(create).by(admin), Json(body)).await;
    let bold = json!({"flag": "rollout-probe", "env": "production", "template": "bold"});
    c.expect(422, to(create).by(admin), Json(bold)).await;
    let pending = c
        .expect(
            201,
            to(create).by(admin),
            Json(json!({"flag": "rollout-probe-2", "env": "production", "plan": plan(1, 0)})),
        )
        .await;
    assert_eq!(pending.body["status"], "pending");
    let second = format!("/api/v1/rollouts/{}", pending.body["id"].as_str().unwrap());
    c.expect(200, to("GET /api/v1/rollouts").by(admin), Empty)
        .await;
    c.expect(
        200,
        to("GET /api/v1/rollouts")
            .at("/api/v1/rollouts?env=production&active=true")
            .by(&server),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/rollouts/{id}").at(&first).by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("GET /api/v1/rollouts/{id}")
            .at("/api/v1/rollouts/ro_0000000000000000")
            .by(admin),
        Empty,
    )
    .await;
    let reason = || Json(json!({"reason": "conformance"}));
    let steps: [(&str, &String, u16, bool); 10] = [
        ("pause", &first, 200, true),
        ("pause", &first, 409, true),
        ("resume", &first, 200, false),
        ("approve", &first, 200, false),
        ("promote", &first, 200, true),
        ("start", &second, 409, false),
        ("approve", &second, 200, false),
        ("start", &second, 200, false),
        ("rollback", &second, 200, true),
        ("kill", &second, 200, true),
    ];
    for (command, rollout, status, with_reason) in steps {
        let operation = format!("POST /api/v1/rollouts/{{id}}/{command}");
        let path = format!("{rollout}/{command}");
        let body = if with_reason { reason() } else { Empty };
        c.expect(status, to(&operation).at(&path).by(admin), body)
            .await;
    }
    let done = c
        .expect(
            200,
            to("GET /api/v1/rollouts/{id}").at(&second).by(admin),
            Empty,
        )
        .await;
    assert_eq!(done.body["status"], "killed");
    assert_eq!(done.body["history"].as_array().unwrap().len(), 4);

    // Webhooks.
    let hooks = "POST /api/v1/webhooks";
    let hook = c
        .expect(201, to(hooks).by(admin), Json(example(&document, hooks)))
        .await;
    assert!(hook.body["secret"].as_str().unwrap().starts_with("whsec_"));
    let private = json!({"url": "http://192.168.1.10/hook"});
    c.expect(422, to(hooks).by(admin), Json(private)).await;
    c.expect(200, to("GET /api/v1/webhooks").by(admin), Empty)
        .await;
    let doomed = format!("/api/v1/webhooks/{}", hook.body["id"].as_str().unwrap());
    c.expect(
        204,
        to("DELETE /api/v1/webhooks/{id}").at(&doomed).by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("DELETE /api/v1/webhooks/{id}").at(&doomed).by(admin),
        Empty,
    )
    .await;

    // Audit.
    let audit = "GET /api/v1/audit";
    c.expect(200, to(audit).by(admin), Empty).await;
    let query = "/api/v1/audit?resource=flag:checkout&limit=2&since=0";
    let filtered = c.expect(200, to(audit).at(query).by(admin), Empty).await;
    assert_eq!(filtered.body["records"].as_array().unwrap().len(), 2);
    c.expect(
        400,
        to(audit).at("/api/v1/audit?colour=red").by(admin),
        Empty,
    )
    .await;
    let verified = c
        .expect(200, to("GET /api/v1/audit/verify").by(admin), Empty)
        .await;
    assert_eq!(verified.body["ok"], true);

    // Export and import.
    let export = "GET /api/v1/export";
    let exported = c.expect(200, to(export).by(admin), Empty).await;
    let version = exported.header("x-sluice-config-version");
    let yaml = c
        .expect(
            200,
            to(export).at("/api/v1/export?format=yaml").by(admin),
            Empty,
        )
        .await;
    c.expect(
        400,
        to(export).at("/api/v1/export?format=xml").by(admin),
        Empty,
    )
    .await;
    let import = "POST /api/v1/import";
    let file = example(&document, import);
    let dry = c
        .expect(
            200,
            to(import).at("/api/v1/import?dry_run=true").by(admin),
            Json(file.clone()),
        )
        .await;
    assert_eq!(dry.body["dryRun"], true);
    c.expect(
        412,
        to(import).by(admin).with("If-Match", "\"1\""),
        Json(file.clone()),
    )
    .await;
    let yaml = Text("application/yaml", yaml.body.as_str().unwrap().to_owned());
    let round_trip = to(import)
        .at("/api/v1/import?reason=round-trip")
        .by(admin)
        .with("If-Match", &version);
    c.expect(200, round_trip, yaml).await;
    let invalid =
        json!({"flags": {"f": {"type": "boolean", "variants": {}, "default_variant": "x"}}});
    c.expect(422, to(import).by(admin), Json(invalid)).await;
    c.expect(200, to(import).by(admin), Json(file)).await;

    // Deletions.
    let delete_segment = "DELETE /api/v1/segments/{name}";
    c.expect(
        412,
        to(delete_segment).at(staff).by(admin).with("If-Match", "9"),
        Empty,
    )
    .await;
    c.expect(204, to(delete_segment).at(staff).by(admin), Empty)
        .await;
    c.expect(404, to(delete_segment).at(staff).by(admin), Empty)
        .await;
    c.expect(
        204,
        to("DELETE /api/v1/flags/{key}").at(checkout).by(admin),
        Empty,
    )
    .await;
    let delete_env = "DELETE /api/v1/environments/{name}";
    // Tokens still belong to production.
    c.expect(
        409,
        to(delete_env)
            .at("/api/v1/environments/production")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(204, to(delete_env).at(qa).by(admin), Empty).await;

    // Releases: one created, given evidence, overridden, started, drilled and reported on.
    let probe = json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off"});
    c.expect(
        201,
        to("POST /api/v1/flags/{key}")
            .at("/api/v1/flags/release-probe")
            .by(admin),
        Json(probe),
    )
    .await;
    let release = json!({
        "name": "probe-release",
        "flags": ["release-probe"],
        "provenance": {"kind": "ai-assisted", "tool": "an assistant"},
        "risk": "medium",
        "rollback": {"kind": "flag-off", "steps": ["turn the flag off"], "expected_time_to_restore": "1m", "on_call": "ana"},
    });
    c.expect(
        201,
        to("POST /api/v1/releases").by(admin),
        Json(release.clone()),
    )
    .await;
    c.expect(422, to("POST /api/v1/releases").by(admin), Json(release))
        .await;
    c.expect(200, to("GET /api/v1/releases").by(admin), Empty)
        .await;
    let one = "/api/v1/releases/probe-release";
    c.expect(
        200,
        to("GET /api/v1/releases/{id}").at(one).by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("GET /api/v1/releases/{id}")
            .at("/api/v1/releases/nothing")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/releases/{id}/checklist")
            .at("/api/v1/releases/probe-release/checklist")
            .by(admin),
        Empty,
    )
    .await;
    let evidence = "/api/v1/releases/probe-release/evidence";
    c.expect(
        200,
        to("POST /api/v1/releases/{id}/evidence")
            .at(evidence)
            .by(admin),
        Json(json!({"item": "limitations", "text": "none known"})),
    )
    .await;
    c.expect(
        422,
        to("POST /api/v1/releases/{id}/evidence")
            .at(evidence)
            .by(admin),
        Json(json!({"item": "vibes", "text": "x"})),
    )
    .await;
    c.expect(
        200,
        to("POST /api/v1/releases/{id}/override")
            .at("/api/v1/releases/probe-release/override")
            .by(admin),
        Json(json!({"reason": "conformance"})),
    )
    .await;
    // The plan's first stages need their audiences.
    for segment in ["internal", "beta"] {
        let path = format!("/api/v1/segments/{segment}");
        c.expect(
            201,
            to("POST /api/v1/segments/{name}").at(&path).by(admin),
            Json(json!({"include": ["staff-1"]})),
        )
        .await;
    }
    c.expect(
        201,
        to("POST /api/v1/releases/{id}/start")
            .at("/api/v1/releases/probe-release/start")
            .by(admin),
        Json(json!({"env": "staging"})),
    )
    .await;
    c.expect(
        200,
        to("POST /api/v1/releases/{id}/drills")
            .at("/api/v1/releases/probe-release/drills")
            .by(admin),
        Json(json!({"env": "staging", "timeoutSecs": 0.2})),
    )
    .await;
    c.expect(200, to("GET /api/v1/reports/releases").by(admin), Empty)
        .await;

    // Governance: a protected environment, change requests, stale flags, archiving.
    c.expect(
        201,
        to("POST /api/v1/flags/{key}").at("/api/v1/flags/gov").by(admin),
        Json(json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off"})),
    )
    .await;
    let protection = "PUT /api/v1/environments/{name}/protection";
    let production_protection = "/api/v1/environments/production/protection";
    c.expect(
        200,
        to(protection).at(production_protection).by(admin),
        Json(json!({"requiredApprovals": 1})),
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/environments/{name}/protection")
            .at(production_protection)
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to(protection)
            .at("/api/v1/environments/nope/protection")
            .by(admin),
        Json(json!({"requiredApprovals": 1})),
    )
    .await;
    let gated =
        json!({"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on"});
    let filed = c
        .expect(
            202,
            to("PUT /api/v1/flags/{key}")
                .at("/api/v1/flags/gov")
                .by(admin),
            Json(gated.clone()),
        )
        .await;
    let first = format!(
        "/api/v1/change-requests/{}",
        filed.body["changeRequest"]["id"].as_str().unwrap()
    );
    c.expect(200, to("GET /api/v1/change-requests").by(admin), Empty)
        .await;
    c.expect(
        200,
        to("GET /api/v1/change-requests/{id}").at(&first).by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("GET /api/v1/change-requests/{id}")
            .at("/api/v1/change-requests/cr_0")
            .by(admin),
        Empty,
    )
    .await;
    let reviewer = c
        .expect(
            201,
            to(tokens).by(admin),
            Json(json!({"name": "reviewer", "scope": "admin"})),
        )
        .await;
    let reviewer = reviewer.body["secret"].as_str().unwrap().to_owned();
    let approve = "POST /api/v1/change-requests/{id}/approve";
    let first_approve = format!("{first}/approve");
    c.expect(409, to(approve).at(&first_approve).by(admin), Empty)
        .await;
    c.expect(
        200,
        to(approve).at(&first_approve).by(&reviewer),
        Json(json!({"apply": false})),
    )
    .await;
    let apply = "POST /api/v1/change-requests/{id}/apply";
    c.expect(
        200,
        to(apply).at(&format!("{first}/apply")).by(admin),
        Empty,
    )
    .await;
    c.expect(
        409,
        to(apply).at(&format!("{first}/apply")).by(admin),
        Empty,
    )
    .await;
    let explicit = c
        .expect(
            201,
            to("POST /api/v1/change-requests").by(admin),
            Json(json!({"payload": {"kind": "flag.delete", "key": "gov"}, "reason": "cleanup"})),
        )
        .await;
    let second = format!(
        "/api/v1/change-requests/{}",
        explicit.body["id"].as_str().unwrap()
    );
    c.expect(
        200,
        to("POST /api/v1/change-requests/{id}/reject")
            .at(&format!("{second}/reject"))
            .by(&reviewer),
        Json(json!({"reason": "keep it"})),
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/flags/stale")
            .at("/api/v1/flags/stale?days=0&all=true")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("POST /api/v1/flags/{key}/archive")
            .at("/api/v1/flags/gov/archive")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("POST /api/v1/flags/{key}/unarchive")
            .at("/api/v1/flags/gov/unarchive")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("POST /api/v1/flags/{key}/archive")
            .at("/api/v1/flags/nope/archive")
            .by(admin),
        Empty,
    )
    .await;

    // Desktop apps, their releases, commands and feeds.
    let create_app = "POST /api/v1/apps";
    c.expect(
        201,
        to(create_app).by(admin),
        Json(example(&document, create_app)),
    )
    .await;
    c.expect(
        409,
        to(create_app).by(admin),
        Json(example(&document, create_app)),
    )
    .await;
    c.expect(
        422,
        to(create_app).by(admin),
        Json(json!({"key": "other", "channels": []})),
    )
    .await;
    c.expect(200, to("GET /api/v1/apps").by(admin), Empty).await;
    let create_app_release = "POST /api/v1/apps/{app}/releases";
    let release = |version: &str, percent: f64| {
        json!({
            "channel": "stable", "version": version, "percent": percent, "notes": "Notes.",
            "artifacts": [{"os": "macos", "arch": "arm64", "url": format!("https://dl.example.com/Desk-{version}.zip"),
                "size": 1000, "sha512": format!("{}==", "A".repeat(86)), "signature": "c2lnbmF0dXJl"}],
        })
    };
    let desk_releases = "/api/v1/apps/desk/releases";
    c.expect(
        201,
        to(create_app_release).at(desk_releases).by(admin),
        Json(release("1.0.0", 100.0)),
    )
    .await;
    c.expect(
        201,
        to(create_app_release).at(desk_releases).by(admin),
        Json(release("1.1.0", 0.0)),
    )
    .await;
    c.expect(
        409,
        to(create_app_release).at(desk_releases).by(admin),
        Json(release("1.1.0", 0.0)),
    )
    .await;
    c.expect(
        422,
        to(create_app_release).at(desk_releases).by(admin),
        Json(release("1.2", 0.0)),
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/apps/{app}")
            .at("/api/v1/apps/desk")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("GET /api/v1/apps/{app}")
            .at("/api/v1/apps/none")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/apps/{app}/releases")
            .at("/api/v1/apps/desk/releases?channel=stable")
            .by(admin),
        Empty,
    )
    .await;
    let one_release = "/api/v1/apps/desk/channels/stable/releases/1.1.0";
    c.expect(
        200,
        to("GET /api/v1/apps/{app}/channels/{channel}/releases/{version}")
            .at(one_release)
            .by(admin),
        Empty,
    )
    .await;
    let release_command = "POST /api/v1/apps/{app}/channels/{channel}/releases/{version}/{command}";
    c.expect(
        200,
        to(release_command)
            .at(&format!("{one_release}/promote"))
            .by(admin),
        Json(json!({"percent": 5})),
    )
    .await;
    c.expect(
        409,
        to(release_command)
            .at(&format!("{one_release}/resume"))
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("GET /apps/{app}/{file}").at("/apps/desk/stable-mac.yml"),
        Empty,
    )
    .await;
    c.expect(
        404,
        to("GET /apps/{app}/{file}").at("/apps/desk/stable.yml"),
        Empty,
    )
    .await;
    c.expect(
        200,
        to("GET /apps/{app}/{channel}/appcast.xml").at("/apps/desk/stable/appcast.xml?arch=arm64"),
        Empty,
    )
    .await;
    let tauri = "GET /apps/{app}/{channel}/tauri/{target}/{arch}/{current_version}";
    c.expect(
        204,
        to(tauri).at("/apps/desk/stable/tauri/darwin/aarch64/1.0.0"),
        Empty,
    )
    .await;
    c.expect(
        200,
        to(tauri).at("/apps/desk/stable/tauri/darwin/aarch64/0.9.0"),
        Empty,
    )
    .await;
    c.expect(
        400,
        to(tauri).at("/apps/desk/stable/tauri/beos/aarch64/0.9.0"),
        Empty,
    )
    .await;
    let sessions = "POST /apps/{app}/sessions";
    c.expect(202, to(sessions).at("/apps/desk/sessions"), Json(json!({"installId": "i-1", "version": "1.0.0", "channel": "stable", "clean": 3, "crashed": 1})))
        .await;
    c.expect(
        422,
        to(sessions).at("/apps/desk/sessions"),
        Json(json!({"installId": "i-1", "version": "9.9.9", "channel": "stable", "clean": 1})),
    )
    .await;
    c.expect(
        200,
        to("GET /api/v1/apps/{app}/status")
            .at("/api/v1/apps/desk/status")
            .by(admin),
        Empty,
    )
    .await;

    // The router's own 400s, before any handler: a path segment that is not UTF-8, and a
    // query string that cannot be read (schemathesis found these undocumented).
    c.expect(
        400,
        to("GET /api/v1/apps/{app}/status")
            .at("/api/v1/apps/desk/status?sinceMs=9223372036854775808")
            .by(admin),
        Empty,
    )
    .await;
    c.expect(
        400,
        to("GET /api/v1/apps/{app}/releases")
            .at("/api/v1/apps/desk/releases?unknown=1")
            .by(admin),
        Empty,
    )
    .await;
    for (operation, path) in [
        ("GET /api/v1/flags/{key}", "/api/v1/flags/%FF"),
        ("GET /api/v1/apps/{app}", "/api/v1/apps/%FF"),
        ("DELETE /api/v1/webhooks/{id}", "/api/v1/webhooks/%FF"),
        ("GET /apps/{app}/{file}", "/apps/%FF/stable.yml"),
    ] {
        c.expect(400, to(operation).at(path).by(admin), Empty).await;
    }

    // Every operation answered with success at least once.
    let all_operations: BTreeSet<String> = operations(&document)
        .into_iter()
        .map(|(path, method, _)| format!("{} {path}", method.to_uppercase()))
        .collect();
    let missed: Vec<&String> = all_operations.difference(&c.succeeded).collect();
    assert!(
        missed.is_empty(),
        "operations never exercised with success: {missed:?}"
    );
}
