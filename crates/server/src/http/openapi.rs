//! The OpenAPI 3.1 document of every route, at `GET /api/v1/openapi.json`, and a small
//! self-contained page at `GET /api/docs` that renders it and can send requests. Both are
//! public.
//!
//! The document is written by hand, next to the routes it describes, because the handlers
//! read and write `serde_json::Value` and the core's model carries no OpenAPI derives (core
//! must not depend on an HTTP crate). `tests/openapi.rs` keeps it honest: every `.route(…)`
//! in `src/http.rs` and `src/http/` must appear here with exactly its methods; the core's
//! serde field and variant names must equal the schemas' properties and enums; and a
//! scenario against a real server checks that every status and body it receives is one this
//! document promises. The docs page is plain HTML with a little script of our own; nothing
//! is fetched from anywhere but this server.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::state::AppState;

mod dry_runs;
mod governance;
mod links;

/// The document and docs routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/docs", get(docs_page))
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| document().to_string());

async fn openapi_json() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        DOCUMENT.as_str(),
    )
        .into_response()
}

async fn docs_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                     frame-ancestors 'none'",
                ),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        DOCS_PAGE,
    )
        .into_response()
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone.
    Public,
    /// Admin tokens.
    Admin,
    /// Client or server tokens; the token's environment is the one evaluated.
    Evaluate,
    /// Server tokens.
    Server,
    /// Admin tokens, or server tokens of the environment read.
    Observe,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Admin => "admin",
            Access::Evaluate => "client or server",
            Access::Server => "server",
            Access::Observe => "admin or server",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            Access::Public => "No credential needed.",
            Access::Admin => "Needs an admin token.",
            Access::Evaluate => {
                "Needs a client or server token; its environment is the one evaluated."
            }
            Access::Server => "Needs a server token, which selects the environment.",
            Access::Observe => {
                "Needs an admin token with `env`, or a server token, which reads only its own environment."
            }
        }
    }
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn parameter(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn response(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn json_response(description: &str, body: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": body } } })
}

/// A JSON response whose `ETag` is the resource's version, for `If-Match`.
fn versioned_response(description: &str, body: Value) -> Value {
    json!({
        "description": description,
        "headers": { "ETag": { "$ref": "#/components/headers/VersionETag" } },
        "content": { "application/json": { "schema": body } },
    })
}

fn json_body(body: Value, example: Value) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": body, "example": example } },
    })
}

fn path_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// One server-sent event of a stream (the schema of a `text/event-stream` body describes each
/// event, as OpenAPI 3.2's `itemSchema` does): its `data` is JSON of schema `data`, and its
/// `event` is `name` (with `id`, the configuration version) or absent.
fn event_schema(name: Option<&str>, data: &str) -> Value {
    let data = json!({
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": schema(data),
    });
    match name {
        Some(name) => json!({
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {
                "event": { "const": name },
                "id": { "type": "string", "pattern": "^[0-9]+$" },
                "data": data,
                "retry": { "type": "integer" },
            },
        }),
        None => json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "event": { "type": "string" },
                "id": { "type": "string" },
                "data": data,
                "retry": { "type": "integer" },
            },
        }),
    }
}

fn key_schema() -> Value {
    json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        "maxLength": 256,
    })
}

/// Completes an operation: its id, tag, security, access note and the responses every
/// operation of that kind can give.
fn operation(id: &str, tag: &str, summary: &str, access: Access, details: Value) -> Value {
    let mut op = match details {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    op.insert("operationId".into(), json!(id));
    op.insert("tags".into(), json!([tag]));
    op.insert("summary".into(), json!(summary));
    let description = match op.get("description").and_then(Value::as_str) {
        Some(text) => format!("{} {text}", access.sentence()),
        None => access.sentence().to_owned(),
    };
    op.insert("description".into(), json!(description));
    op.insert("x-sluice-access".into(), json!(access.name()));
    let security = match access {
        Access::Public => json!([]),
        _ => json!([{ "bearer": [] }, { "apiKey": [] }]),
    };
    op.insert("security".into(), security);
    let has_body = op.contains_key("requestBody");
    let streaming = id == "ofrepEvents" || id == "stream";
    if let Some(Value::Object(responses)) = op.get_mut("responses") {
        if !matches!(access, Access::Public) {
            responses
                .entry("401")
                .or_insert_with(|| response("Unauthorized"));
            responses
                .entry("403")
                .or_insert_with(|| response("Forbidden"));
        }
        if has_body {
            responses
                .entry("413")
                .or_insert_with(|| response("PayloadTooLarge"));
        }
        if !streaming {
            responses
                .entry("408")
                .or_insert_with(|| response("Timeout"));
        }
        responses
            .entry("500")
            .or_insert_with(|| response("Internal"));
    }
    Value::Object(op)
}

/// The whole OpenAPI document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Sluice",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Self-hosted feature flags and progressive delivery.",
            "description": INFO_DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "tags": [
            { "name": "flags", "description": "Flag definitions and the per-environment kill switch." },
            { "name": "segments", "description": "Reusable audiences that flag rules refer to." },
            { "name": "environments", "description": "Environments; each token other than admin belongs to one." },
            { "name": "tokens", "description": "API tokens. A secret is shown once, when created." },
            { "name": "audit", "description": "The hash-chained audit log of every write." },
            { "name": "files", "description": "A whole flags file, in the core's format." },
            { "name": "ofrep", "description": "OpenFeature Remote Evaluation Protocol (OFREP) v0.3.0." },
            { "name": "stream", "description": "The configuration feed for server SDKs: live, or polled." },
            { "name": "telemetry", "description": "What SDKs report: exposures, errors, latency and events per flag variant, and the configuration each instance applied." },
            { "name": "rollouts", "description": "Staged rollouts: a flag's new variant widened stage by stage, judged on SDK telemetry, rolled back on a failed guardrail." },
            { "name": "governance", "description": "Protected environments and their change requests, and the flag lifecycle: stale flags and archiving." },
            { "name": "experiments", "description": "Shadow experiments: a candidate run beside the control, compared, and never served." },
            { "name": "dry-runs", "description": "Dry runs: staged rule changes evaluated beside the rules served, counting what they would change." },
            { "name": "webhooks", "description": "Where rollout transitions are announced, signed with HMAC-SHA256." },
            { "name": "releases", "description": "Releases: provenance, risk, rollback procedure, the pre-release checklist that gates promotion, the policy's plan, rollback drills, history and the learning report." },
            { "name": "apps", "description": "Desktop apps: update channels, releases with a staged share, halts and the crash gate." },
            { "name": "feeds", "description": "What desktop installs fetch (electron-updater, Sparkle and Tauri update feeds) and report (session outcomes). Public: see docs/desktop.md." },
            { "name": "health", "description": "Liveness, readiness, status and metrics." },
            { "name": "docs", "description": "This document and a page that renders it." },
        ],
        "paths": all_paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer sluice_…`. When both are sent, `Authorization` wins.",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "`X-API-Key: sluice_…`, for clients that cannot set `Authorization`.",
                },
            },
            "parameters": {
                "IfMatch": {
                    "name": "If-Match",
                    "in": "header",
                    "required": false,
                    "description": "The version from the resource's `ETag`: `\"3\"`, `W/\"3\"` or `3`. When it is not the current version the write gets 412 and nothing is written; without it the write is unconditional.",
                    "schema": { "type": "string", "examples": ["\"3\""] },
                },
                "IfMatchConfig": {
                    "name": "If-Match",
                    "in": "header",
                    "required": false,
                    "description": "The configuration version the caller expects (from `X-Sluice-Config-Version` of an export): `\"12\"`, `W/\"12\"` or `12`. When another write happened since, the import gets 412 and nothing is written.",
                    "schema": { "type": "string", "examples": ["\"12\""] },
                },
                "IfNoneMatch": {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": false,
                    "description": "ETags the caller already holds (a list, weak or strong, or `*`). When the evaluated body's ETag is among them the answer is 304 with no body.",
                    "schema": { "type": "string" },
                },
                "Reason": {
                    "name": "X-Sluice-Reason",
                    "in": "header",
                    "required": false,
                    "description": "Why, recorded in the audit log.",
                    "schema": { "type": "string" },
                },
            },
            "headers": {
                "VersionETag": {
                    "required": true,
                    "description": "The resource's version, quoted, such as `\"3\"`. Send it back in `If-Match`.",
                    "schema": { "type": "string" },
                },
                "EvaluationETag": {
                    "required": true,
                    "description": "A hash of the evaluated body. Send it back in `If-None-Match` to get 304 while nothing changed.",
                    "schema": { "type": "string" },
                },
                "ConfigETag": {
                    "required": true,
                    "description": "The configuration version, quoted, such as `\"12\"`. Send it back in `If-None-Match`.",
                    "schema": { "type": "string" },
                },
                "ConfigVersion": {
                    "required": true,
                    "description": "The configuration version exported, for `If-Match` on import.",
                    "schema": { "type": "integer" },
                },
                "WwwAuthenticate": {
                    "required": true,
                    "description": "Always `Bearer`.",
                    "schema": { "type": "string", "const": "Bearer" },
                },
            },
            "responses": {
                "BadRequest": {
                    "description": "The request is malformed: a body that is not JSON, an invalid key or name, a bad `If-Match`, or an unknown query parameter. Query-string and path errors are answered by the router in plain text.",
                    "content": {
                        "application/json": { "schema": schema("Error") },
                        "text/plain": { "schema": { "type": "string" } },
                    },
                },
                "Unauthorized": {
                    "description": "No credential, or one that matches no live token.",
                    "headers": { "WWW-Authenticate": { "$ref": "#/components/headers/WwwAuthenticate" } },
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "Forbidden": {
                    "description": "The token's scope does not allow this.",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "NotFound": {
                    "description": "The resource does not exist.",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "Conflict": {
                    "description": "The resource already exists, is still in use, or files own it (GitOps mode).",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "PreconditionFailed": {
                    "description": "`If-Match` named a version that is no longer current; nothing was written. `currentVersion` says which is.",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "Invalid": {
                    "description": "The definition is invalid. `errors` lists every problem with its path, and line and column for text bodies; nothing was written.",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "PayloadTooLarge": {
                    "description": "The body is over the limit (1 MiB unless configured). Refused before it is read when `Content-Length` says so (plain text), otherwise while reading (JSON).",
                    "content": {
                        "application/json": { "schema": schema("Error") },
                        "text/plain": { "schema": { "type": "string" } },
                    },
                },
                "UnsupportedMediaType": {
                    "description": "The body's `Content-Encoding` is not one the route reads.",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "Timeout": {
                    "description": "The request took longer than the request timeout (30 s unless configured). No body.",
                },
                "TooManyRequests": {
                    "description": "The token, from this client address, is over the evaluation rate limit (1,000 requests a second unless configured; a bulk request counts once). Retry after `Retry-After` seconds.",
                    "headers": { "Retry-After": { "description": "Whole seconds to wait, at least 1.", "schema": { "type": "integer", "minimum": 1 } } },
                    "content": { "application/json": { "schema": schema("Error") } },
                },
                "Internal": {
                    "description": "The server failed. The body names the request id under which the log has details.",
                    "content": { "application/json": { "schema": schema("Error") } },
                },
            },
            "schemas": schemas(),
        },
    })
}

const INFO_DESCRIPTION: &str = "\
Sluice stores flags per environment, evaluates them over OFREP, and pushes changes to SDKs.

**Credentials.** Send a token as `Authorization: Bearer <token>` or `X-API-Key: <token>`. \
Admin tokens manage everything; server tokens read one environment's full configuration; \
client tokens only evaluate in one environment and never see rules. A missing or unknown \
token gets 401, a token without the needed scope 403.

**Errors.** Every error is JSON: `{\"error\": kind, \"message\": text}`, plus `errors` (each \
with `path`, `message`, `line` and `column`) for invalid definitions and `currentVersion` \
for stale writes. OFREP endpoints answer evaluation failures in OFREP's own shape \
(`errorCode`, `errorDetails`).

**Versions.** Reads return the resource's version as an `ETag`; writes may send it in \
`If-Match` and get 412, writing nothing, when it is stale. Every write is recorded in the \
audit log, with the reason from `X-Sluice-Reason` when given.

**Requests.** Each response carries `X-Request-Id` (the caller's, or a new one). Bodies are \
limited (1 MiB by default, 413 beyond) and requests other than streams time out (408). \
CORS allows any origin without credentials and exposes `ETag` and `Retry-After`.";

/// Adds 400 to every operation whose path has parameters or that takes query parameters:
/// the router answers a path segment that is not UTF-8, and a query string it cannot read
/// (an unknown field, a number out of range), with 400 before any handler runs.
fn mark_bad_request(paths: &mut Map<String, Value>) {
    for (template, item) in paths.iter_mut() {
        let Value::Object(methods) = item else {
            continue;
        };
        let has_query = |parameters: Option<&Value>| {
            parameters
                .and_then(Value::as_array)
                .is_some_and(|list| list.iter().any(|p| p["in"] == "query"))
        };
        let shared_query = has_query(methods.get("parameters"));
        for (method, operation) in methods.iter_mut() {
            if method == "parameters" {
                continue;
            }
            let query = shared_query || has_query(operation.get("parameters"));
            if (template.contains('{') || query)
                && let Some(Value::Object(responses)) = operation.get_mut("responses")
            {
                responses
                    .entry("400")
                    .or_insert_with(|| response("BadRequest"));
            }
        }
    }
}

/// Every path: the configuration API's and telemetry's.
fn all_paths() -> Value {
    let mut all = match paths() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Value::Object(telemetry) = telemetry_paths() {
        all.extend(telemetry);
    }
    if let Value::Object(rollouts) = rollout_paths() {
        all.extend(rollouts);
    }
    if let Value::Object(governance) = governance::paths() {
        all.extend(governance);
    }
    if let Value::Object(releases) = release_paths() {
        all.extend(releases);
    }
    if let Value::Object(experiments) = experiment_paths() {
        all.extend(experiments);
    }
    if let Value::Object(dry_runs) = dry_runs::paths() {
        all.extend(dry_runs);
    }
    if let Value::Object(apps) = app_paths() {
        all.extend(apps);
    }
    governance::mark_gated(&mut all);
    links::add(&mut all);
    mark_bad_request(&mut all);
    Value::Object(all)
}

#[allow(clippy::too_many_lines)]
fn paths() -> Value {
    let key = path_parameter("key", "The flag key.", key_schema());
    let segment_name = path_parameter("name", "The segment name.", key_schema());
    let environment_name = path_parameter("name", "The environment name.", key_schema());
    let token_id = path_parameter(
        "id",
        "The token id (`tok_` and 16 hex digits), not its secret.",
        json!({ "type": "string" }),
    );
    let switch_parameters = json!([
        query_parameter(
            "env",
            "The environment whose switch to set. Without it, the flag's base `enabled` is set, which every environment without its own override inherits.",
            json!({ "type": "string" }),
        ),
        query_parameter(
            "reason",
            "Why, for the audit log.",
            json!({ "type": "string" })
        ),
        parameter("IfMatch"),
        parameter("Reason"),
    ]);
    let write_headers = json!([parameter("IfMatch"), parameter("Reason")]);
    json!({
        "/api/v1/flags": {
            "get": operation("listFlags", "flags", "List flags", Access::Admin, json!({
                "responses": { "200": json_response("Every flag, by key.", schema("FlagList")) },
            })),
        },
        "/api/v1/flags/{key}": {
            "parameters": [key.clone()],
            "get": operation("getFlag", "flags", "Read a flag", Access::Admin, json!({
                "responses": {
                    "200": versioned_response("The flag.", schema("StoredFlag")),
                    "404": response("NotFound"),
                },
            })),
            "post": operation("createFlag", "flags", "Create a flag", Access::Admin, json!({
                "description": "The key is in the path; the body is the definition. The new flag has version 1.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("FlagDefinition"), flag_example()),
                "responses": {
                    "201": versioned_response("Created.", schema("StoredFlag")),
                    "400": response("BadRequest"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
            "put": operation("updateFlag", "flags", "Replace a flag's definition", Access::Admin, json!({
                "parameters": write_headers.clone(),
                "requestBody": json_body(schema("FlagDefinition"), flag_example()),
                "responses": {
                    "200": versioned_response("Updated; the version grew by one.", schema("StoredFlag")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
            "delete": operation("deleteFlag", "flags", "Delete a flag", Access::Admin, json!({
                "description": "Refused with 422 while another flag requires it.",
                "parameters": write_headers.clone(),
                "responses": {
                    "204": { "description": "Deleted." },
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/flags/{key}/kill": {
            "parameters": [key.clone()],
            "post": operation("killFlag", "flags", "Switch a flag off", Access::Admin, json!({
                "description": "Sets `enabled: false` for one environment (or the base definition), so it serves its off variant, or the caller's default when it has none.",
                "parameters": switch_parameters.clone(),
                "responses": {
                    "200": versioned_response("Switched off.", schema("StoredFlag")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/flags/{key}/restore": {
            "parameters": [key],
            "post": operation("restoreFlag", "flags", "Switch a flag back on", Access::Admin, json!({
                "description": "Sets `enabled: true` for one environment (or the base definition).",
                "parameters": switch_parameters,
                "responses": {
                    "200": versioned_response("Switched on.", schema("StoredFlag")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/segments": {
            "get": operation("listSegments", "segments", "List segments", Access::Admin, json!({
                "responses": { "200": json_response("Every segment, by name.", schema("SegmentList")) },
            })),
        },
        "/api/v1/segments/{name}": {
            "parameters": [segment_name],
            "get": operation("getSegment", "segments", "Read a segment", Access::Admin, json!({
                "responses": {
                    "200": versioned_response("The segment.", schema("StoredSegment")),
                    "404": response("NotFound"),
                },
            })),
            "post": operation("createSegment", "segments", "Create a segment", Access::Admin, json!({
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("SegmentDefinition"), segment_example()),
                "responses": {
                    "201": versioned_response("Created.", schema("StoredSegment")),
                    "400": response("BadRequest"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
            "put": operation("updateSegment", "segments", "Replace a segment's definition", Access::Admin, json!({
                "parameters": write_headers.clone(),
                "requestBody": json_body(schema("SegmentDefinition"), segment_example()),
                "responses": {
                    "200": versioned_response("Updated; the version grew by one.", schema("StoredSegment")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
            "delete": operation("deleteSegment", "segments", "Delete a segment", Access::Admin, json!({
                "description": "Refused with 422 while a flag or segment refers to it.",
                "parameters": write_headers.clone(),
                "responses": {
                    "204": { "description": "Deleted." },
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/environments": {
            "get": operation("listEnvironments", "environments", "List environments", Access::Admin, json!({
                "responses": { "200": json_response("Every environment, by name.", schema("EnvironmentList")) },
            })),
        },
        "/api/v1/environments/{name}": {
            "parameters": [environment_name],
            "get": operation("getEnvironment", "environments", "Read an environment", Access::Admin, json!({
                "responses": {
                    "200": versioned_response("The environment.", schema("Environment")),
                    "404": response("NotFound"),
                },
            })),
            "post": operation("createEnvironment", "environments", "Create an environment", Access::Admin, json!({
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("EnvironmentWrite"), json!({ "description": "Pre-production, refreshed nightly" })),
                "responses": {
                    "201": versioned_response("Created.", schema("Environment")),
                    "400": response("BadRequest"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
            "put": operation("updateEnvironment", "environments", "Replace an environment's description", Access::Admin, json!({
                "parameters": write_headers.clone(),
                "requestBody": json_body(schema("EnvironmentWrite"), json!({ "description": "Production, EU and US" })),
                "responses": {
                    "200": versioned_response("Updated; the version grew by one.", schema("Environment")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
            "delete": operation("deleteEnvironment", "environments", "Delete an environment", Access::Admin, json!({
                "description": "Refused with 422 while flags override it, and with 409 while unrevoked tokens belong to it.",
                "parameters": write_headers,
                "responses": {
                    "204": { "description": "Deleted." },
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/tokens": {
            "get": operation("listTokens", "tokens", "List tokens", Access::Admin, json!({
                "description": "Secrets are never listed; only their SHA-256 is stored.",
                "responses": { "200": json_response("Every token, revoked ones included.", schema("TokenList")) },
            })),
            "post": operation("createToken", "tokens", "Create a token", Access::Admin, json!({
                "description": "The response carries the secret, once.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("TokenCreate"), json!({ "name": "checkout web", "scope": "client", "environment": "production" })),
                "responses": {
                    "201": json_response("Created; `secret` is shown only now.", schema("CreatedToken")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/tokens/{id}": {
            "parameters": [token_id],
            "delete": operation("revokeToken", "tokens", "Revoke a token", Access::Admin, json!({
                "description": "A revoked token stops working as soon as the change is seen. Revoking twice changes nothing.",
                "parameters": [parameter("IfMatch"), parameter("Reason")],
                "responses": {
                    "200": json_response("The revoked token.", schema("Token")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "412": response("PreconditionFailed"),
                },
            })),
        },
        "/api/v1/audit": {
            "get": operation("listAudit", "audit", "List audit records", Access::Admin, json!({
                "description": "Newest first. Page backwards with `before` set to the smallest `seq` of the last page.",
                "parameters": [
                    query_parameter("resource", "Exactly this resource, such as `flag:checkout`.", json!({ "type": "string" })),
                    query_parameter("action", "Exactly this action, such as `flag.kill`.", json!({ "type": "string" })),
                    query_parameter("actor", "Exactly this actor token id.", json!({ "type": "string" })),
                    query_parameter("since", "Records at or after this time, in milliseconds since the Unix epoch.", json!({ "type": "integer", "format": "int64" })),
                    query_parameter("until", "Records strictly before this time, in milliseconds since the Unix epoch.", json!({ "type": "integer", "format": "int64" })),
                    query_parameter("before", "Records with a smaller `seq`.", json!({ "type": "integer", "format": "int64" })),
                    query_parameter("limit", "At most this many records: 100 by default, never more than 1000.", json!({ "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64 })),
                ],
                "responses": {
                    "200": json_response("The matching records.", schema("AuditList")),
                    "400": response("BadRequest"),
                },
            })),
        },
        "/api/v1/audit/verify": {
            "get": operation("verifyAudit", "audit", "Verify the audit chain", Access::Admin, json!({
                "description": "Recomputes every record's hash and link, and names the first broken one.",
                "responses": { "200": json_response("The verification report.", schema("AuditVerification")) },
            })),
        },
        "/api/v1/export": {
            "get": operation("exportFlags", "files", "Export every flag and segment", Access::Admin, json!({
                "description": "A whole flags file in the core's format, every environment's state included.",
                "parameters": [query_parameter("format", "`json` (the default) or `yaml`.", json!({ "type": "string", "enum": ["json", "yaml"], "default": "json" }))],
                "responses": {
                    "200": {
                        "description": "The flags file.",
                        "headers": { "X-Sluice-Config-Version": { "$ref": "#/components/headers/ConfigVersion" } },
                        "content": {
                            "application/json": { "schema": schema("FlagFile") },
                            "application/yaml": { "schema": schema("FlagFile") },
                        },
                    },
                    "400": response("BadRequest"),
                },
            })),
        },
        "/api/v1/import": {
            "post": operation("importFlags", "files", "Replace every flag and segment with a file's", Access::Admin, json!({
                "description": "One audited transaction: definitions that changed get a new version, identical ones keep theirs, and ones the file lacks are deleted. Environments the file lists are created. The body is YAML when `Content-Type` contains `yaml`, JSON otherwise; flagd documents are refused.",
                "parameters": [
                    query_parameter("dry_run", "Report what would change, writing nothing.", json!({ "type": "boolean", "default": false })),
                    query_parameter("reason", "Why, for the audit log.", json!({ "type": "string" })),
                    parameter("IfMatchConfig"),
                    parameter("Reason"),
                ],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/json": { "schema": schema("FlagFile"), "example": file_example() },
                        "application/yaml": { "schema": { "type": "string" } },
                    },
                },
                "responses": {
                    "200": json_response(
                        "What changed, or with `dry_run`, what would.",
                        json!({ "oneOf": [schema("ImportResult"), schema("ImportDryRun")] }),
                    ),
                    "400": response("BadRequest"),
                    "409": response("Conflict"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/ofrep/v1/evaluate/flags/{key}": {
            "parameters": [path_parameter("key", "The flag key.", json!({ "type": "string" }))],
            "post": operation("evaluateFlag", "ofrep", "Evaluate one flag", Access::Evaluate, json!({
                "description": "Every evaluation, failed ones included, carries an `ETag` of its body; send it back in `If-None-Match` to get 304 while the result is unchanged.",
                "parameters": [parameter("IfNoneMatch")],
                "requestBody": {
                    "required": false,
                    "content": { "application/json": { "schema": schema("EvaluationRequest"), "example": { "context": { "targetingKey": "user-1", "plan": "pro" } } } },
                },
                "responses": {
                    "200": {
                        "description": "The evaluation.",
                        "headers": { "ETag": { "$ref": "#/components/headers/EvaluationETag" } },
                        "content": { "application/json": { "schema": schema("EvaluationSuccess") } },
                    },
                    "304": {
                        "description": "The caller's `If-None-Match` still matches.",
                        "headers": { "ETag": { "$ref": "#/components/headers/EvaluationETag" } },
                    },
                    "400": {
                        "description": "The evaluation failed (`INVALID_CONTEXT`, `TARGETING_KEY_MISSING`, `TYPE_MISMATCH`, `PARSE_ERROR`, `GENERAL`), or the body is not an OFREP request.",
                        "headers": { "ETag": { "description": "A hash of the body, when the flag was evaluated; absent when the request could not be read.", "schema": { "type": "string" } } },
                        "content": { "application/json": { "schema": schema("EvaluationFailure") } },
                    },
                    "404": {
                        "description": "No flag has that key (`FLAG_NOT_FOUND`), or the token's environment has no configuration (an `Error`).",
                        "content": { "application/json": { "schema": { "oneOf": [schema("EvaluationFailure"), schema("Error")] } } },
                    },
                    "429": response("TooManyRequests"),
                },
            })),
        },
        "/ofrep/v1/evaluate/flags": {
            "post": operation("evaluateFlags", "ofrep", "Evaluate every flag", Access::Evaluate, json!({
                "description": "Flags that fail are listed with their error; the request itself succeeds. The response advertises the SSE stream that says when to evaluate again.",
                "parameters": [parameter("IfNoneMatch")],
                "requestBody": {
                    "required": false,
                    "content": { "application/json": { "schema": schema("EvaluationRequest"), "example": { "context": { "targetingKey": "user-1", "plan": "pro" } } } },
                },
                "responses": {
                    "200": {
                        "description": "Every flag's evaluation, by key.",
                        "headers": { "ETag": { "$ref": "#/components/headers/EvaluationETag" } },
                        "content": { "application/json": { "schema": schema("BulkEvaluation") } },
                    },
                    "304": {
                        "description": "The caller's `If-None-Match` still matches.",
                        "headers": { "ETag": { "$ref": "#/components/headers/EvaluationETag" } },
                    },
                    "400": json_response("The context is invalid, or the body is not an OFREP request.", schema("BulkFailure")),
                    "404": response("NotFound"),
                    "429": response("TooManyRequests"),
                },
            })),
        },
        "/ofrep/v1/events": {
            "get": operation("ofrepEvents", "ofrep", "Change notifications", Access::Evaluate, json!({
                "description": "A server-sent event stream. Each time the token's environment changes it sends `data: {\"type\":\"refetchEvaluation\",\"version\":N}`; comments keep the connection alive. A reader that falls far behind is disconnected and should reconnect and evaluate again; revoking the token ends the stream. This stream does not time out.",
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "content": { "text/event-stream": { "schema": event_schema(None, "RefetchEvent"), "x-sluice-event-data": schema("RefetchEvent") } },
                    },
                },
            })),
        },
        "/api/v1/stream": {
            "get": operation("stream", "stream", "Live configuration feed", Access::Server, json!({
                "description": "A server-sent event stream. On connect it sends the environment's whole configuration as a `put` event whose `id` is the configuration version, then one `put` per change. Reconnect with `Last-Event-ID` to skip a configuration already held. Comments keep the connection alive; a reader that falls far behind is disconnected, and revoking the token ends the stream. This stream does not time out.",
                "parameters": [{
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": false,
                    "description": "The configuration version the client holds.",
                    "schema": { "type": "integer" },
                }],
                "responses": {
                    "200": {
                        "description": "The event stream.",
                        "content": { "text/event-stream": { "schema": event_schema(Some("put"), "ConfigPayload"), "x-sluice-event-data": schema("ConfigPayload") } },
                    },
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/config": {
            "get": operation("config", "stream", "Poll the configuration", Access::Server, json!({
                "description": "The same configuration a `put` event of the live stream carries, for SDKs that poll. The `ETag` is the configuration version; a matching `If-None-Match` gets 304.",
                "parameters": [parameter("IfNoneMatch")],
                "responses": {
                    "200": {
                        "description": "The environment's configuration.",
                        "headers": { "ETag": { "$ref": "#/components/headers/ConfigETag" } },
                        "content": { "application/json": { "schema": schema("ConfigPayload") } },
                    },
                    "304": {
                        "description": "The caller's `If-None-Match` still matches.",
                        "headers": { "ETag": { "$ref": "#/components/headers/ConfigETag" } },
                    },
                    "404": response("NotFound"),
                },
            })),
        },
        "/metrics": {
            "get": operation("metrics", "health", "Prometheus metrics", Access::Public, json!({
                "description": "Requests by route template, method and status with latency; OFREP evaluations by flag, variant and reason; connected live streams. Flag keys and variant names appear in labels, never contexts, values, rules or tokens.",
                "responses": {
                    "200": { "description": "The Prometheus text format.", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "503": { "description": "Another metrics recorder is installed in this process.", "content": { "text/plain": { "schema": { "type": "string" } } } },
                },
            })),
        },
        "/health": {
            "get": operation("health", "health", "Liveness", Access::Public, json!({
                "responses": { "200": json_response("The process is alive.", schema("Health")) },
            })),
        },
        "/ready": {
            "get": operation("ready", "health", "Readiness", Access::Public, json!({
                "description": "Ready once the store answers and a configuration is loaded. A failed reload is reported while the last good configuration keeps being served.",
                "responses": {
                    "200": json_response("Ready.", schema("Readiness")),
                    "503": json_response("Not ready yet.", schema("Readiness")),
                },
            })),
        },
        "/api/v1/status": {
            "get": operation("status", "health", "Server status", Access::Admin, json!({
                "responses": { "200": json_response("This replica's status.", schema("Status")) },
            })),
        },
        "/api/v1/openapi.json": {
            "get": operation("openapi", "docs", "This document", Access::Public, json!({
                "responses": { "200": json_response("The OpenAPI 3.1 document.", json!({ "type": "object" })) },
            })),
        },
        "/api/docs": {
            "get": operation("docs", "docs", "Interactive documentation", Access::Public, json!({
                "description": "A page that renders this document and can send requests with a token you paste.",
                "responses": { "200": { "description": "HTML.", "content": { "text/html": { "schema": { "type": "string" } } } } },
            })),
        },
    })
}

fn experiment_paths() -> Value {
    json!({
        "/api/v1/experiments/{key}/report": {
            "parameters": [path_parameter("key", "The experiment's key: the flag whose variants are compared.", json!({ "type": "string" }))],
            "get": operation("abReport", "experiments", "An A/B experiment's report on one goal event", Access::Observe, json!({
                "description": "Per variant of the flag: exposures (n), goal events, the conversion rate (events per exposure, capped at 1) or the mean value per exposure, and against the control the difference and relative lift with an always-valid interval (the guardrails' confidence sequence, two-sided at α = 0.05 shared among the treatments), its p-value and a call. The exposures are checked against the flag's split weights in the environment (chi-square, SRM at p < 0.001). `verdict` is `winner`, `loser`, `inconclusive` or `srm` (do not trust), with a `summary` in plain words. The control is `control`, else `off`, else `false`, else the flag's off variant, else its default variant, unless `control` names one.",
                "parameters": [
                    query_parameter("env", "The environment. Required with an admin token; a server token may leave it out or name its own.", json!({ "type": "string" })),
                    query_parameter("metric", "The goal event's name, as sent to the SDK's `track`. Without it, the flag's first declared goal (400 when it declares none).", json!({ "type": "string" })),
                    query_parameter("kind", "`conversion`: events per exposure. `mean`: the summed value per exposure. By default, what the flag's goal of that name declares, else `conversion`.", json!({ "type": "string", "enum": ["conversion", "mean"] })),
                    query_parameter("better", "`higher` or `lower`: which way is an improvement. By default what the flag's goal of that name declares, else `higher`.", json!({ "type": "string", "enum": ["higher", "lower"] })),
                    query_parameter("control", "The control variant, when the default choice is not it.", json!({ "type": "string" })),
                    query_parameter("since", "The first bucket's time, in milliseconds since the Unix epoch. Seven days ago by default.", json!({ "type": "integer", "format": "int64" })),
                ],
                "responses": {
                    "200": json_response("The experiment's report.", json!({ "type": "object", "required": ["flag", "env", "metric", "kind", "better", "goals", "since", "alpha", "report"] })),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/experiments/{key}/shadow": {
            "parameters": [path_parameter("key", "The experiment's key: the key of the flag that samples it.", json!({ "type": "string" }))],
            "get": operation("shadowReport", "experiments", "A shadow experiment's results", Access::Observe, json!({
                "description": "The experiment's shadow results in the environment since `since` (one day ago by default): the mismatch rate over comparisons with always-valid bounds (the guardrails' confidence sequence, α = 0.05 each side), the noise floor (control against itself), the candidate's error and timeout rates over its runs, both sides' latency, and the newest mismatching pairs. Experiments nobody reported answer with no comparisons, not 404.",
                "parameters": [
                    query_parameter("env", "The environment. Required with an admin token; a server token may leave it out or name its own.", json!({ "type": "string" })),
                    query_parameter("since", "The first bucket's time, in milliseconds since the Unix epoch. One day ago by default.", json!({ "type": "integer", "format": "int64" })),
                ],
                "responses": {
                    "200": json_response("The experiment's shadow results.", json!({ "type": "object", "required": ["experiment", "env", "since", "analysis", "samples"] })),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                },
            })),
        },
    })
}

fn telemetry_paths() -> Value {
    let window = |what: &str| {
        json!([
            query_parameter(
                "env",
                "The environment. Required with an admin token; a server token may leave it out or name its own.",
                json!({ "type": "string" })
            ),
            query_parameter(
                "since",
                &format!("{what}, in milliseconds since the Unix epoch. One hour ago by default."),
                json!({ "type": "integer", "format": "int64" })
            ),
        ])
    };
    json!({
        "/api/v1/metrics": {
            "post": operation("postMetrics", "telemetry", "Report a telemetry batch", Access::Server, json!({
                "description": "One flush of an SDK: aggregates per flag, variant, configuration version and 10-second bucket, crash reports, and the configuration version the instance has applied. The token's environment is the batch's. Send it as JSON, optionally with `Content-Encoding: gzip`; a gzip body may decompress to at most 8 MiB (413 beyond). Idempotent per `batchId`: a batch already recorded counts nothing and is answered `duplicate`, so retry until any 2xx. Unknown flags and variants are recorded too: the SDK may have a newer configuration. Recording does not change the configuration version and writes no audit record.",
                "parameters": [{
                    "name": "Content-Encoding",
                    "in": "header",
                    "required": false,
                    "description": "`gzip` (or `x-gzip`), or none. Anything else gets 415.",
                    "schema": { "type": "string", "enum": ["gzip", "x-gzip", "identity"] },
                }],
                "requestBody": json_body(schema("MetricsBatch"), metrics_example()),
                "responses": {
                    "200": json_response("Recorded (`accepted`), or already recorded before (`duplicate`), which counts nothing.", schema("MetricsIngested")),
                    "400": response("BadRequest"),
                    "415": response("UnsupportedMediaType"),
                    "422": json_response("The batch breaks a rule. `errors` names every problem by its path, such as `buckets[3].startMs`; nothing was recorded.", schema("Error")),
                },
            })),
        },
        "/api/v1/flags/{key}/metrics": {
            "parameters": [path_parameter("key", "The flag key. Flags that no longer exist, or never did, answer what was reported for them.", json!({ "type": "string" }))],
            "get": operation("flagMetrics", "telemetry", "A flag's telemetry", Access::Observe, json!({
                "description": "Every aggregate row of the flag in the environment from the 10-second bucket holding `since` on, oldest first, with per-variant totals over them (latency quantiles from the merged sketches). At most 10,000 rows: when there are more, `truncated` is true and `next` is the `since` of the next page.",
                "parameters": window("The first bucket's time"),
                "responses": {
                    "200": json_response("The flag's aggregates.", schema("FlagMetrics")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/instances": {
            "get": operation("listInstances", "telemetry", "SDK instances and the configuration they applied", Access::Observe, json!({
                "description": "The SDK instances that reported since `since`, most recently seen first, each with the configuration version it last reported applying, and a summary per version. `behind` counts instances on an older version than the one served now (or none yet): after a kill switch, wait until it is 0 to know every instance turned the feature off.",
                "parameters": window("Instances last seen at or after this time"),
                "responses": {
                    "200": json_response("The instances.", schema("InstanceList")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                },
            })),
        },
    })
}

fn metrics_example() -> Value {
    json!({
        "batchId": "0f8e6d4c2b1a",
        "instance": { "id": "a1b2c3d4", "sdk": "sluice-rust/0.1.0", "configVersion": 12 },
        "sentAtMs": 1_700_000_012_345_i64,
        "buckets": [{
            "startMs": 1_700_000_000_000_i64,
            "flag": "checkout",
            "variant": "on",
            "configVersion": 12,
            "exposures": 120,
            "errors": 1,
            "crashes": 0,
            "events": { "purchase": { "count": 3, "sum": 149.7, "sumSq": 7_470.03 } },
        }],
        "crashes": [],
        "dropped": 0,
    })
}

fn counter(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

/// The rollout and webhook paths.
#[allow(clippy::too_many_lines)]
fn rollout_paths() -> Value {
    let id = path_parameter(
        "id",
        "The rollout id (`ro_` and 16 hex digits).",
        json!({ "type": "string" }),
    );
    let command = |op: &str, summary: &str, description: &str| {
        operation(
            op,
            "rollouts",
            summary,
            Access::Admin,
            json!({
                "description": description,
                "parameters": [parameter("Reason")],
                "requestBody": {
                    "required": false,
                    "content": { "application/json": { "schema": schema("RolloutCommand"), "example": { "reason": "checkout errors in the EU" } } },
                },
                "responses": {
                    "200": json_response("Applied (or, with `applied: false`, already applied). `transition` is the transition with its evidence.", schema("RolloutChanged")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": json_response("Refused in the rollout's status (such as resuming a running rollout), or the flag is managed by files.", schema("Error")),
                    "422": response("Invalid"),
                },
            }),
        )
    };
    json!({
        "/api/v1/rollouts": {
            "get": operation("listRollouts", "rollouts", "List rollouts", Access::Observe, json!({
                "description": "Newest first. An admin token sees every environment unless `env` is given; a server token sees its own.",
                "parameters": [
                    query_parameter("env", "Only this environment.", json!({ "type": "string" })),
                    query_parameter("flag", "Only this flag.", json!({ "type": "string" })),
                    query_parameter("active", "Only rollouts that are not finished.", json!({ "type": "boolean" })),
                    query_parameter("limit", "At most this many (100 by default, 1,000 at most).", json!({ "type": "integer", "minimum": 0 })),
                ],
                "responses": {
                    "200": json_response("The rollouts.", schema("RolloutList")),
                    "400": response("BadRequest"),
                },
            })),
            "post": operation("createRollout", "rollouts", "Start a rollout", Access::Admin, json!({
                "description": "Creates a rollout of `flag` in `env` from a `plan` (the plan format) or a `template` (`standard` or `cautious`) and starts it: its first stage's exposure is written into the flag at once, in the same audited write. When the first stage needs approvals it stays `pending` until approved and started. `control` defaults to the environment's default variant, `treatment` to the flag's other variant when it has two. A flag has at most one unfinished rollout per environment (409).",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("RolloutCreate"), json!({ "flag": "checkout", "env": "production", "template": "standard", "treatment": "on", "control": "off", "reason": "new checkout flow" })),
                "responses": {
                    "201": json_response("Created, and started unless it waits for approvals.", schema("Rollout")),
                    "400": response("BadRequest"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/rollouts/{id}": {
            "parameters": [id.clone()],
            "get": operation("getRollout", "rollouts", "Read a rollout, and why it is where it is", Access::Observe, json!({
                "description": "The rollout, the current stage's window (time spent, exposures per arm), what the controller would decide now with every guardrail's verdict and numbers (`decision`), every transition with its evidence (`history`), and its webhook deliveries.",
                "responses": {
                    "200": json_response("The rollout.", schema("RolloutDetail")),
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/rollouts/{id}/start": { "parameters": [id.clone()], "post": command("startRollout", "Start a pending rollout", "For a rollout whose first stage needed approvals, once they are given.") },
        "/api/v1/rollouts/{id}/pause": { "parameters": [id.clone()], "post": command("pauseRollout", "Pause a rollout", "Stops advancing. A failing guardrail still rolls back while paused.") },
        "/api/v1/rollouts/{id}/resume": { "parameters": [id.clone()], "post": command("resumeRollout", "Resume a paused rollout", "The stage starts over, with a new bake time and window.") },
        "/api/v1/rollouts/{id}/promote": { "parameters": [id.clone()], "post": command("promoteRollout", "Skip to the next stage", "Moves to the next stage without the evidence; `reason` is required. The next stage's approvals are still needed.") },
        "/api/v1/rollouts/{id}/rollback": { "parameters": [id.clone()], "post": command("rollbackRollout", "Roll back now", "Everyone gets the control variant at once, without analysis; SDKs receive the change immediately.") },
        "/api/v1/rollouts/{id}/kill": { "parameters": [id.clone()], "post": command("killRollout", "Turn the flag off", "Turns the flag off in the rollout's environment, at once.") },
        "/api/v1/rollouts/{id}/approve": { "parameters": [id.clone()], "post": command("approveRollout", "Approve the next stage", "Records this token's approval of entering the next stage (the first while pending). Each token counts once.") },
        "/api/v1/webhooks": {
            "get": operation("listWebhooks", "webhooks", "List webhooks", Access::Admin, json!({
                "description": "Every webhook, without secrets, and the 100 newest deliveries.",
                "responses": { "200": json_response("The webhooks.", schema("WebhookList")) },
            })),
            "post": operation("createWebhook", "webhooks", "Add a webhook", Access::Admin, json!({
                "description": "Each rollout transition (of `env`, or of every environment) whose kind is in `events` (or any, when empty) is posted to `url` as JSON, with `X-Sluice-Timestamp` (Unix ms) and `X-Sluice-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>`, retried with exponential backoff until a 2xx. Destinations that are loopback, private, link-local or otherwise not public are refused unless allow-listed (`--webhook-allow`). The secret is generated when not given, and shown only in this answer.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("WebhookCreate"), json!({ "url": "https://hooks.example.com/sluice", "events": ["rollback", "kill"], "env": "production" })),
                "responses": {
                    "201": json_response("Created. `secret` is shown this once.", schema("WebhookCreated")),
                    "400": response("BadRequest"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/webhooks/{id}": {
            "parameters": [path_parameter("id", "The webhook id (`whk_` and 16 hex digits).", json!({ "type": "string" }))],
            "delete": operation("deleteWebhook", "webhooks", "Delete a webhook", Access::Admin, json!({
                "description": "Its undelivered deliveries are dropped.",
                "parameters": [parameter("Reason")],
                "responses": {
                    "204": { "description": "Deleted." },
                    "404": response("NotFound"),
                },
            })),
        },
    })
}

/// The desktop app paths: the admin API and the public feeds.
#[allow(clippy::too_many_lines)]
fn app_paths() -> Value {
    let app = path_parameter("app", "The app's key.", key_schema());
    let channel = path_parameter("channel", "The channel, such as `stable`.", key_schema());
    let version = path_parameter("version", "The release's semantic version.", string());
    let install = [
        json!({ "name": "x-user-staging-id", "in": "header", "required": false, "description": "The install's stable id, as electron-updater sends it. Without any id the install is outside every partial cohort.", "schema": string() }),
        json!({ "name": "x-sluice-install-id", "in": "header", "required": false, "description": "The install's stable id, for the other updaters.", "schema": string() }),
        query_parameter(
            "install",
            "The install's stable id, when no header can be set.",
            string(),
        ),
        json!({ "name": "x-sluice-manual", "in": "header", "required": false, "description": "`1` for a manual check, which gets a rolling release that allows it whatever the cohort.", "schema": string() }),
        query_parameter("manual", "`1` for a manual check.", string()),
    ];
    let feed_params = |extra: Vec<Value>| {
        let mut all = vec![app.clone()];
        all.extend(extra);
        all.extend(install.iter().cloned());
        Value::Array(all)
    };
    json!({
        "/api/v1/apps": {
            "get": operation("listApps", "apps", "List apps", Access::Admin, json!({
                "responses": { "200": json_response("The apps.", json!({ "type": "object", "properties": { "apps": { "type": "array", "items": schema("App") } } })) },
            })),
            "post": operation("createApp", "apps", "Create an app", Access::Admin, json!({
                "description": "Channels default to stable, beta and nightly. Audited as `app.create`.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("AppCreate"), json!({ "key": "desk", "name": "Desk" })),
                "responses": {
                    "201": json_response("Created.", schema("App")),
                    "400": response("BadRequest"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/apps/{app}": {
            "parameters": [app.clone()],
            "get": operation("getApp", "apps", "Read an app and its releases", Access::Admin, json!({
                "responses": { "200": json_response("The app and its releases.", json!({ "type": "object" })), "404": response("NotFound") },
            })),
        },
        "/api/v1/apps/{app}/status": {
            "parameters": [app.clone(), query_parameter("sinceMs", "Count installs that reported since then; the last 7 days by default.", int64())],
            "get": operation("appStatus", "apps", "Installs per version, and each channel's releases", Access::Admin, json!({
                "description": "Per channel: how many installs reported each version since `sinceMs`, with its share, and every release with its state and share.",
                "responses": { "200": json_response("The status.", json!({ "type": "object" })), "404": response("NotFound") },
            })),
        },
        "/api/v1/apps/{app}/releases": {
            "parameters": [app.clone()],
            "get": operation("listAppReleases", "apps", "List an app's releases", Access::Admin, json!({
                "parameters": [query_parameter("channel", "Only this channel's.", key_schema())],
                "responses": { "200": json_response("The releases, oldest first.", json!({ "type": "object", "properties": { "releases": { "type": "array", "items": schema("AppRelease") } } })), "404": response("NotFound") },
            })),
            "post": operation("createAppRelease", "apps", "Create a release", Access::Admin, json!({
                "description": "A release in one channel, offered at first to `percent` of its installs (0 when left out), or following `plan`. Audited as `release.create`.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("AppReleaseCreate"), json!({
                    "channel": "stable", "version": "1.4.0", "percent": 1, "notes": "Faster sync.",
                    "artifacts": [{ "os": "macos", "arch": "arm64", "url": "https://dl.example.com/Desk-1.4.0-arm64.zip", "size": 81234567, "sha512": "<88 base64 characters>", "signature": "<EdDSA or minisign signature>" }],
                })),
                "responses": {
                    "201": json_response("Created.", schema("AppRelease")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/apps/{app}/channels/{channel}/releases/{version}": {
            "parameters": [app.clone(), channel.clone(), version.clone()],
            "get": operation("getAppRelease", "apps", "Read a release and what its crash gate says now", Access::Admin, json!({
                "responses": { "200": json_response("The release, and for a plan the gate's decision with the sessions it judged.", json!({ "type": "object" })), "404": response("NotFound") },
            })),
        },
        "/api/v1/apps/{app}/channels/{channel}/releases/{version}/{command}": {
            "parameters": [app.clone(), channel.clone(), version.clone(), path_parameter("command", "What to do.", json!({ "type": "string", "enum": ["promote", "halt", "resume", "pull"] }))],
            "post": operation("appReleaseCommand", "apps", "Promote, halt, resume or pull a release", Access::Admin, json!({
                "description": "`promote` widens the share to `percent` (never narrower), or to the plan's next stage, or to everyone (complete); `halt` stops offering it at once; `resume` offers it again; `pull` never offers it again. Audited as `release.<command>`.",
                "parameters": [parameter("Reason")],
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "percent": { "type": "number" }, "reason": string() }, "additionalProperties": false } } } },
                "responses": {
                    "200": json_response("The release after the command.", schema("AppRelease")),
                    "404": response("NotFound"),
                    "409": response("Conflict"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/apps/{app}/{file}": {
            "get": operation("electronFeed", "feeds", "electron-updater feed", Access::Public, json!({
                "description": "`{channel}.yml` (Windows), `{channel}-mac.yml`, `{channel}-linux.yml`: the release this install is offered, as electron-updater's `latest.yml`. `latest` means `stable`. 404 when the channel has nothing to offer.",
                "parameters": feed_params(vec![path_parameter("file", "Such as `stable.yml` or `beta-mac.yml`.", string())]),
                "responses": { "200": { "description": "The feed.", "content": { "text/yaml": { "schema": string() } } }, "404": response("NotFound") },
            })),
        },
        "/apps/{app}/{channel}/appcast.xml": {
            "get": operation("sparkleFeed", "feeds", "Sparkle appcast", Access::Public, json!({
                "description": "An appcast with the one item this install is offered, or none.",
                "parameters": feed_params(vec![channel.clone(), query_parameter("os", "macos (default), windows or linux.", string()), query_parameter("arch", "x64, arm64 or universal.", string())]),
                "responses": { "200": { "description": "The appcast.", "content": { "application/rss+xml": { "schema": string() } } }, "404": response("NotFound") },
            })),
        },
        "/apps/{app}/{channel}/tauri/{target}/{arch}/{current_version}": {
            "get": operation("tauriFeed", "feeds", "Tauri update endpoint", Access::Public, json!({
                "description": "Tauri's dynamic update JSON for the release this install is offered, or 204 when it is not newer than `current_version`.",
                "parameters": feed_params(vec![channel.clone(), path_parameter("target", "darwin, windows or linux.", string()), path_parameter("arch", "x86_64, aarch64 or i686.", string()), path_parameter("current_version", "The running version.", string())]),
                "responses": { "200": json_response("An update.", json!({ "type": "object" })), "204": { "description": "No update." }, "400": response("BadRequest"), "404": response("NotFound") },
            })),
        },
        "/apps/{app}/sessions": {
            "post": operation("reportSessions", "feeds", "Report session outcomes", Access::Public, json!({
                "description": "One install's sessions of one version: how many ended cleanly and how many crashed (at most 1,000 per report), for the crash gate and `sluice app status`. Rate limited per client address.",
                "parameters": [app.clone()],
                "requestBody": json_body(schema("SessionReport"), json!({ "installId": "6f1c…", "version": "1.4.0", "channel": "stable", "clean": 3, "crashed": 1 })),
                "responses": { "202": json_response("Recorded.", json!({ "type": "object" })), "400": response("BadRequest"), "404": response("NotFound"), "422": response("Invalid"), "429": response("TooManyRequests") },
            })),
        },
    })
}

/// The desktop app schemas. Plans follow `docs/desktop.md`.
fn app_schemas() -> Value {
    let artifact = json!({
        "type": "object",
        "required": ["os", "arch", "url", "size", "sha512"],
        "properties": {
            "os": { "type": "string", "enum": ["windows", "macos", "linux"] },
            "arch": { "type": "string", "enum": ["x64", "arm64", "ia32", "universal"] },
            "url": string(),
            "size": int64(),
            "sha512": described(string(), "Base64, 88 characters."),
            "signature": described(string(), "Sparkle's EdDSA signature, or the content of Tauri's `.sig` file."),
        },
        "additionalProperties": false,
    });
    json!({
        "App": {
            "type": "object",
            "required": ["key", "channels", "createdMs", "version"],
            "properties": { "key": string(), "name": nullable("string", "A name for people."), "channels": strings(), "createdMs": millis("Created"), "version": int64() },
        },
        "AppCreate": {
            "type": "object",
            "required": ["key"],
            "properties": { "key": key_schema(), "name": string(), "channels": strings() },
            "additionalProperties": false,
        },
        "AppReleaseCreate": {
            "type": "object",
            "required": ["channel", "version", "artifacts"],
            "properties": {
                "channel": key_schema(),
                "version": string(),
                "artifacts": { "type": "array", "items": artifact.clone() },
                "notes": string(),
                "pubDate": described(string(), "RFC 3339; now when left out."),
                "percent": described(json!({ "type": "number", "minimum": 0, "maximum": 100 }), "Percent of installs, in steps of 0.001."),
                "allowManual": { "type": "boolean" },
                "plan": described(json!({ "type": "object" }), "Stages with `percent`, `bake` and `minSessions`, and the crash rate `tolerance`."),
            },
            "additionalProperties": false,
        },
        "AppRelease": {
            "type": "object",
            "required": ["id", "app", "channel", "version", "artifacts", "pubDateMs", "share", "state", "allowManual", "salt", "createdMs", "updatedMs", "revision"],
            "properties": {
                "id": string(), "app": string(), "channel": string(), "version": string(),
                "artifacts": { "type": "array", "items": artifact },
                "notes": string(), "pubDateMs": millis("Published"),
                "share": { "type": "number" },
                "state": { "type": "string", "enum": ["rolling", "halted", "complete", "pulled"] },
                "allowManual": { "type": "boolean" }, "salt": string(),
                "plan": { "type": "object" }, "gate": { "type": "object" },
                "createdMs": millis("Created"), "updatedMs": millis("Last changed"), "revision": int64(),
            },
        },
        "SessionReport": {
            "type": "object",
            "required": ["installId", "version", "channel"],
            "properties": { "installId": string(), "version": string(), "channel": string(), "clean": int64(), "crashed": int64() },
            "additionalProperties": false,
        },
    })
}

/// The rollout and webhook schemas. Nested core types (plans, transitions, decisions) are
/// described in `docs/statistics.md` and left open here.
#[allow(clippy::too_many_lines)]
fn release_paths() -> Value {
    let id = path_parameter(
        "id",
        "The release id (`rel_` and 16 hex digits) or its name.",
        json!({ "type": "string" }),
    );
    let errors = |extra: Value| {
        let mut responses = json!({
            "400": response("BadRequest"),
            "404": response("NotFound"),
            "422": response("Invalid"),
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut responses, extra) {
            map.extend(more);
        }
        responses
    };
    let with_ok = |description: &str, body: Value, extra: Value| {
        let mut responses = errors(extra);
        if let Value::Object(map) = &mut responses {
            map.insert("200".into(), json_response(description, body));
        }
        responses
    };
    json!({
        "/api/v1/releases": {
            "get": operation("listReleases", "releases", "List releases", Access::Admin, json!({
                "description": "Newest first, each with its provenance, risk, the policy rule that chose its plan, and whether its checklist passes.",
                "responses": { "200": json_response("The releases.", schema("ReleaseList")) },
            })),
            "post": operation("createRelease", "releases", "Create a release", Access::Admin, json!({
                "description": "Takes a release in the release format (docs/releases.md). The server applies its policy (`--policy`, or the built-in one) to the provenance and risk, and stores the effective policy with the rule that chose it and the resulting plan. One audited write (`release.create`).",
                "requestBody": json_body(schema("ReleaseSpec"), json!({
                    "name": "checkout-v2", "flags": ["new-checkout"],
                    "provenance": { "kind": "ai-assisted", "tool": "an assistant", "link": "https://git.example/pr/42", "reviewer": "ana" },
                    "risk": "high",
                    "rollback": { "kind": "flag-off", "steps": ["turn new-checkout off"], "expected_time_to_restore": "5m", "data_at_risk": "none", "on_call": "ana" },
                    "known_limitations": ["no gift cards yet"], "escalation": ["ana", "payments on-call"], "audience": "beta-testers"
                })),
                "responses": errors(json!({ "201": json_response("Created, with its effective policy and checklist.", schema("Release")) })),
            })),
        },
        "/api/v1/releases/{id}": {
            "parameters": [id.clone()],
            "get": operation("getRelease", "releases", "Read a release, its checklist and its timeline", Access::Admin, json!({
                "description": "The release, its effective policy and plan, its checklist now, its override (shown for good once given), and its timeline: release events (created, evidence, override, holds, drills) and its rollouts' transitions, oldest first.",
                "responses": with_ok("The release.", schema("Release"), json!({})),
            })),
        },
        "/api/v1/releases/{id}/checklist": {
            "parameters": [id.clone()],
            "get": operation("getReleaseChecklist", "releases", "Evaluate a release's checklist now", Access::Admin, json!({
                "description": "Each of the six items with whether it passes, from data or from evidence, and what the data says.",
                "responses": with_ok("The checklist.", schema("ReleaseChecklist"), json!({})),
            })),
        },
        "/api/v1/releases/{id}/evidence": {
            "parameters": [id.clone()],
            "post": operation("addReleaseEvidence", "releases", "Record evidence for a checklist item", Access::Admin, json!({
                "description": "`item` is one of `flag`, `rollback`, `monitoring`, `audience`, `limitations`, `escalation`; `text` or `link` is required. The token's name and id are recorded as who gave it. One audited write (`release.evidence`).",
                "requestBody": json_body(schema("ReleaseEvidence"), json!({ "item": "monitoring", "link": "https://grafana.example/d/checkout" })),
                "responses": with_ok("The release.", schema("Release"), json!({})),
            })),
        },
        "/api/v1/releases/{id}/override": {
            "parameters": [id.clone()],
            "post": operation("overrideReleaseChecklist", "releases", "Override a failing checklist", Access::Admin, json!({
                "description": "Opens the gate although items fail; `reason` is required. Audited (`release.override`) and shown on the release for good; a second override is 409.",
                "requestBody": json_body(schema("ReleaseOverride"), json!({ "reason": "security fix; monitored by hand" })),
                "responses": with_ok("The release.", schema("Release"), json!({ "409": response("Conflict") })),
            })),
        },
        "/api/v1/releases/{id}/start": {
            "parameters": [id.clone()],
            "post": operation("startRelease", "releases", "Start a release's rollouts", Access::Admin, json!({
                "description": "Starts one rollout per flag in `env` with the release's plan, each linked to the release (one audited write per flag). Promotion past the first stage then waits for the checklist.",
                "requestBody": json_body(schema("ReleaseStart"), json!({ "env": "production" })),
                "responses": errors(json!({
                    "201": json_response("The rollouts started.", json!({ "type": "object" })),
                    "409": response("Conflict"),
                })),
            })),
        },
        "/api/v1/releases/{id}/drills": {
            "parameters": [id.clone()],
            "post": operation("drillRelease", "releases", "Run a rollback drill", Access::Admin, json!({
                "description": "Turns the release's flags off in `env`, waits until every SDK instance live there (reported in the last two minutes) has acknowledged the configuration version that did it, or `timeoutSecs` (30 by default, 600 at most), then restores each flag exactly. Reports time-to-kill p50, p99 and max and the instances that never acknowledged, and records the drill on the release. Not under the request timeout.",
                "requestBody": json_body(schema("ReleaseDrill"), json!({ "env": "staging", "timeoutSecs": 30 })),
                "responses": with_ok("The drill's report.", schema("DrillReport"), json!({ "409": response("Conflict") })),
            })),
        },
        "/api/v1/reports/releases": {
            "get": operation("releaseReport", "releases", "The learning report", Access::Admin, json!({
                "description": "Change failure rate, median time to full rollout, mean time to restore and rollbacks by cause, in total and split by provenance, by risk and by both, each with its counts.",
                "parameters": [query_parameter("since", "Releases created at or after this time, in Unix milliseconds.", json!({ "type": "integer" }))],
                "responses": {
                    "200": json_response("The report.", schema("ReleaseReport")),
                    "400": response("BadRequest"),
                },
            })),
        },
    })
}

fn release_schemas() -> Value {
    let object = |description: &str| json!({ "type": "object", "description": description });
    json!({
        "ReleaseSpec": object("A release in the release format: name, description, flags, provenance {kind, tool, link, reviewer}, risk, guardrails, rollback {kind, commit, steps, expected_time_to_restore, data_at_risk, on_call}, known_limitations, escalation, audience. See docs/releases.md."),
        "Release": object("A release: id, name, spec, effectivePolicy {rule, reason, template, approvals, minBakeSecs, requiredStages, ...}, plan, stages, checklist, override, evidence, rollouts and, when read alone, timeline."),
        "ReleaseList": {
            "type": "object",
            "required": ["releases"],
            "properties": { "releases": { "type": "array", "items": { "type": "object" } } },
        },
        "ReleaseChecklist": object("items (item, title, passed, source: data|evidence|missing, detail, evidence), passed, override, open."),
        "ReleaseEvidence": {
            "type": "object",
            "additionalProperties": false,
            "required": ["item"],
            "properties": {
                "item": { "type": "string", "enum": ["flag", "rollback", "monitoring", "audience", "limitations", "escalation"] },
                "text": { "type": "string" },
                "link": { "type": "string" },
            },
        },
        "ReleaseOverride": {
            "type": "object",
            "additionalProperties": false,
            "required": ["reason"],
            "properties": { "reason": { "type": "string", "minLength": 1 } },
        },
        "ReleaseStart": {
            "type": "object",
            "additionalProperties": false,
            "required": ["env"],
            "properties": {
                "env": { "type": "string" },
                "treatment": { "type": "string" },
                "control": { "type": "string" },
                "reason": { "type": "string" },
            },
        },
        "ReleaseDrill": {
            "type": "object",
            "additionalProperties": false,
            "required": ["env"],
            "properties": {
                "env": { "type": "string" },
                "timeoutSecs": { "type": "number", "exclusiveMinimum": 0, "maximum": 600 },
            },
        },
        "DrillReport": object("release, env, flags, startedMs, killVersion, finishedMs, timeoutMs, timedOut, instances (id, sdk, versionBefore, acknowledgedMs, timeToKillMs), neverAcknowledged, timings {acknowledged, p50Ms, p99Ms, maxMs}, restored, restoreVersion, restoreErrors."),
        "ReleaseReport": object("since, and report {total, byProvenance, byRisk, byProvenanceAndRisk}, each group with releases, started, failed, changeFailureRate, fullRollouts, medianTimeToFullRolloutMs, restores, meanTimeToRestoreMs, rollbacksByCause."),
    })
}

fn rollout_schemas() -> Value {
    let any = json!({});
    let rollout_properties = json!({
        "id": { "type": "string" },
        "env": { "type": "string" },
        "flag": { "type": "string" },
        "treatment": { "type": "string", "description": "The new variant." },
        "control": { "type": "string", "description": "The old variant." },
        "status": { "type": "string", "enum": ["pending", "running", "awaiting_approval", "paused", "rolled_back", "completed", "killed"] },
        "statusReason": nullable("string", "Why it is paused, rolled back or killed."),
        "active": { "type": "boolean", "description": "Not finished: at most one per flag and environment." },
        "stage": { "type": "integer", "minimum": 0, "description": "The current stage's index." },
        "stageLabel": nullable("string", "The current stage's name."),
        "stageStartedMs": { "type": "integer", "description": "When the current stage started; its window counts from here." },
        "seq": { "type": "integer", "minimum": 0, "description": "Transitions applied." },
        "approvals": { "type": "array", "items": { "type": "string" }, "description": "Tokens that approved entering the next stage." },
        "stages": { "type": "array", "items": schema("RolloutStage") },
        "plan": { "type": "object", "description": "The plan followed, in the plan format." },
        "last": { "type": ["object", "null"], "description": "The last transition: `seq`, `kind`, `atMs`, `summary`, `actor`, `reason`." },
        "exposureVersion": { "type": "integer", "description": "The configuration version that wrote the current exposure; only telemetry reported under it or later is judged." },
        "version": { "type": "integer", "minimum": 1 },
        "createdMs": { "type": "integer" },
        "updatedMs": { "type": "integer" },
    });
    let with = |extra: Value| {
        let mut properties = rollout_properties.clone();
        if let (Some(map), Value::Object(extra)) = (properties.as_object_mut(), extra) {
            map.extend(extra);
        }
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "env", "flag", "treatment", "control", "status", "stage", "seq", "stages"],
            "properties": properties,
        })
    };
    let transition = json!({
        "type": "object",
        "description": "One transition and its evidence: what happened, who or what did it, and the stage decision with every guardrail's verdict and numbers.",
        "properties": {
            "seq": { "type": "integer" },
            "kind": { "type": "string", "enum": ["start", "advance", "await_approval", "approve", "pause", "resume", "promote", "rollback", "kill", "complete"] },
            "atMs": { "type": "integer" },
            "configVersion": { "type": "integer" },
            "from": any.clone(),
            "to": any.clone(),
            "exposure": any.clone(),
            "actor": nullable("string", "The token that acted; null for the controller."),
            "reason": nullable("string", "The reason given."),
            "summary": { "type": "string", "description": "What happened and why, one sentence per line." },
            "decision": { "type": ["object", "null"], "description": "The stage decision the controller acted on: `action`, `verdicts` (each with `outcome` and `evidence`: n per arm, values, difference, threshold, interval, test, p-value), `srm`, `summary`." },
        },
    });
    json!({
        "RolloutStage": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "index": { "type": "integer" },
                "label": { "type": "string" },
                "audience": any.clone(),
                "percent": { "type": "number" },
                "bakeSecs": { "type": "integer", "minimum": 0 },
                "minSamples": { "type": "integer", "minimum": 0 },
                "approvals": { "type": "integer", "minimum": 0 },
                "gate": { "type": "string", "enum": ["pass", "no_failure"] },
            },
        },
        "Rollout": with(json!({})),
        "RolloutList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["rollouts"],
            "properties": { "rollouts": { "type": "array", "items": schema("Rollout") } },
        },
        "RolloutTransition": transition,
        "RolloutDetail": with(json!({
            "nowMs": { "type": "integer", "description": "The server's clock when this was decided." },
            "window": {
                "type": "object",
                "description": "The current stage's window: time spent and exposures per arm.",
                "properties": {
                    "elapsedSecs": { "type": "integer", "minimum": 0 },
                    "exposures": { "type": "object", "properties": { "control": { "type": "integer" }, "treatment": { "type": "integer" } } },
                },
            },
            "decision": { "type": ["object", "null"], "description": "What the controller would decide now, while the new variant is exposed." },
            "history": { "type": "array", "items": schema("RolloutTransition") },
            "deliveries": { "type": "array", "items": schema("WebhookDelivery") },
        })),
        "RolloutChanged": with(json!({
            "applied": { "type": "boolean", "description": "False when the same transition had already been applied." },
            "transition": { "oneOf": [schema("RolloutTransition"), { "type": "null" }] },
        })),
        "RolloutCreate": {
            "type": "object",
            "additionalProperties": false,
            "required": ["flag", "env"],
            "properties": {
                "flag": { "type": "string" },
                "env": { "type": "string" },
                "plan": { "type": "object", "description": "A plan in the plan format; or give `template`." },
                "template": { "type": "string", "enum": ["standard", "cautious"] },
                "treatment": { "type": "string" },
                "control": { "type": "string" },
                "reason": { "type": "string" },
            },
        },
        "RolloutCommand": {
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": { "type": "string", "description": "Why; required to promote." } },
        },
        "Webhook": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "url", "events", "env", "createdMs", "version"],
            "properties": {
                "id": { "type": "string" },
                "url": { "type": "string" },
                "events": { "type": "array", "items": { "type": "string" }, "description": "Transition kinds announced; empty for all." },
                "env": nullable("string", "Only this environment; null for all."),
                "createdMs": { "type": "integer" },
                "version": { "type": "integer" },
            },
        },
        "WebhookCreate": {
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": { "type": "string" },
                "secret": { "type": "string", "minLength": 1, "maxLength": 256 },
                "events": { "type": "array", "items": { "type": "string", "enum": ["start", "advance", "await_approval", "approve", "pause", "resume", "promote", "rollback", "kill", "complete"] } },
                "env": { "type": "string" },
                "reason": { "type": "string" },
            },
        },
        "WebhookCreated": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "url", "secret"],
            "properties": {
                "id": { "type": "string" },
                "url": { "type": "string" },
                "events": { "type": "array", "items": { "type": "string" } },
                "env": nullable("string", "Only this environment; null for all."),
                "createdMs": { "type": "integer" },
                "version": { "type": "integer" },
                "secret": { "type": "string", "description": "The signing secret, shown only now." },
            },
        },
        "WebhookDelivery": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "id": { "type": "integer" },
                "webhookId": { "type": "string" },
                "rolloutId": { "type": "string" },
                "seq": { "type": "integer" },
                "event": { "type": "string" },
                "attempts": { "type": "integer", "minimum": 0 },
                "nextAttemptMs": { "type": "integer" },
                "deliveredMs": nullable("integer", "When a 2xx answered."),
                "failedMs": nullable("integer", "When it was given up."),
                "lastError": nullable("string", "The last failure."),
            },
        },
        "WebhookList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["webhooks", "deliveries"],
            "properties": {
                "webhooks": { "type": "array", "items": schema("Webhook") },
                "deliveries": { "type": "array", "items": schema("WebhookDelivery") },
            },
        },
    })
}

#[allow(clippy::too_many_lines)]
fn telemetry_schemas() -> Value {
    let events = json!({
        "type": "object",
        "additionalProperties": schema("EventAggregate"),
        "description": "Custom events, by name.",
    });
    json!({
        "MetricsBatch": {
            "type": "object",
            "description": "One flush of one SDK instance. The environment is the posting token's.",
            "additionalProperties": false,
            "required": ["batchId", "instance", "sentAtMs"],
            "properties": {
                "batchId": { "type": "string", "minLength": 1, "maxLength": 128, "description": "Unique per batch; a batch posted again counts once." },
                "instance": schema("InstanceReport"),
                "sentAtMs": { "type": "integer", "format": "int64", "minimum": 0, "description": "When the SDK sent it, by its own clock, in milliseconds since the Unix epoch. Orders an instance's reports." },
                "buckets": { "type": "array", "items": schema("BucketReport"), "maxItems": 10_000, "description": "Aggregates per flag, variant, configuration version and bucket." },
                "crashes": { "type": "array", "items": schema("CrashReport"), "maxItems": 100, "description": "Panics recorded since the last flush." },
                "dropped": counter("Telemetry the SDK dropped since it started, because its buffers were full."),
                "shadow": { "type": "array", "items": schema("ShadowReport"), "maxItems": 1_000, "description": "Shadow experiment results per experiment, configuration version and bucket." },
                "dryRuns": { "type": "array", "items": schema("DryRunReport"), "maxItems": 100, "description": "Dry-run tallies since the last flush. Reports for dry runs of other environments, or unknown ones, are ignored." },
            },
        },
        "ShadowReport": {
            "type": "object",
            "description": "What one shadow experiment recorded under one configuration version in one 10-second bucket.",
            "additionalProperties": false,
            "required": ["startMs", "experiment", "configVersion"],
            "properties": {
                "startMs": millis("The bucket's start, a multiple of 10,000"),
                "experiment": { "type": "string", "minLength": 1, "maxLength": 256, "description": "The experiment's key: the key of the flag that samples it." },
                "configVersion": { "type": "integer", "format": "int64", "minimum": 0 },
                "matches": counter("Candidate results equal to the control's."),
                "mismatches": counter("Candidate results different from the control's."),
                "ignored": counter("Differences the `ignore` hook waived."),
                "noisy": counter("Runs whose control disagreed with itself; not judged."),
                "candidateErrors": counter("Candidate panics."),
                "candidateTimeouts": counter("Candidates that did not finish in time."),
                "dropped": counter("Runs dropped because the background queue was full."),
                "noiseComparisons": counter("Control-against-control comparisons."),
                "noiseMismatches": counter("Of those, disagreements."),
                "controlLatency": { "type": "object", "description": "A DDSketch of the control's latency in ms." },
                "candidateLatency": { "type": "object", "description": "A DDSketch of the candidate's latency in ms." },
                "samples": { "type": "array", "maxItems": 3, "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["atMs", "control", "candidate"],
                    "properties": {
                        "atMs": millis("When it was recorded"),
                        "control": { "type": "string", "maxLength": 1024 },
                        "candidate": { "type": "string", "maxLength": 1024 },
                    },
                }, "description": "A few mismatching pairs, as the `clean` hook rendered them." },
            },
        },
        "InstanceReport": {
            "type": "object",
            "description": "Which SDK instance sent a batch, and the configuration version it has applied: the acknowledgement a rollback drill reads.",
            "additionalProperties": false,
            "required": ["id"],
            "properties": {
                "id": { "type": "string", "minLength": 1, "maxLength": 128, "description": "Random per process, stable for its life." },
                "sdk": { "type": "string", "maxLength": 256, "description": "The SDK and its version, such as `sluice-rust/0.1.0`." },
                "configVersion": nullable("integer", "The configuration version it evaluates with now; null before it has one."),
            },
        },
        "BucketReport": {
            "type": "object",
            "description": "What one flag variant, served under one configuration version, saw in one 10-second bucket.",
            "additionalProperties": false,
            "required": ["startMs", "flag", "variant", "configVersion"],
            "properties": {
                "startMs": { "type": "integer", "format": "int64", "minimum": 0, "description": "The bucket's start, a multiple of 10,000 milliseconds since the Unix epoch, at most a day after the server's clock." },
                "flag": { "type": "string", "minLength": 1, "maxLength": 256, "description": "The flag key." },
                "variant": { "type": "string", "maxLength": 256, "description": "The variant served; empty for errors recorded when none was." },
                "configVersion": { "type": "integer", "format": "int64", "minimum": 0, "description": "The configuration version it was served under." },
                "exposures": counter("Evaluations that served this variant, at most 10^12."),
                "errors": counter("Errors recorded against it, at most 10^12."),
                "crashes": counter("Crashes recorded while it was active, at most 10^12."),
                "latency": schema("LatencySketch"),
                "events": {
                    "type": "object",
                    "additionalProperties": schema("EventAggregate"),
                    "description": "Custom events by name, at most 64.",
                },
            },
        },
        "EventAggregate": {
            "type": "object",
            "description": "Count, sum and sum of squares of one custom event's values.",
            "additionalProperties": false,
            "required": ["count", "sum"],
            "properties": {
                "count": counter("How many times it was tracked."),
                "sum": { "type": "number", "description": "The sum of the tracked values." },
                "sumSq": { "type": "number", "minimum": 0, "description": "The sum of the squared values, for variances." },
            },
        },
        "CrashReport": {
            "type": "object",
            "description": "One panic, with the variants active on its thread.",
            "additionalProperties": false,
            "required": ["atMs", "message"],
            "properties": {
                "atMs": { "type": "integer", "format": "int64", "minimum": 0, "description": "When it happened, in milliseconds since the Unix epoch." },
                "message": { "type": "string", "maxLength": 4096, "description": "The panic message." },
                "location": nullable("string", "`file:line:column`, when known."),
                "variants": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Flag key to the variant active at the time." },
            },
        },
        "LatencySketch": {
            "type": "object",
            "description": "Latencies in milliseconds as a mergeable DDSketch, in the serde form of the `sketches-ddsketch` crate, with its default configuration (1% relative accuracy, 2048 bins). Sketches are checked before they are merged; any other configuration is refused.",
            "additionalProperties": true,
        },
        "MetricsIngested": {
            "type": "object",
            "additionalProperties": false,
            "required": ["accepted", "duplicate", "buckets", "crashes"],
            "properties": {
                "accepted": { "type": "boolean", "description": "Recorded now." },
                "duplicate": { "type": "boolean", "description": "Already recorded before; nothing was counted again." },
                "buckets": counter("How many aggregate rows the batch was merged into."),
                "crashes": counter("How many crash reports were stored."),
            },
        },
        "AggregateRow": {
            "type": "object",
            "description": "One stored aggregate: a flag variant under one configuration version in one 10-second bucket, summed over every batch.",
            "additionalProperties": false,
            "required": ["flag", "variant", "configVersion", "startMs", "exposures", "errors", "crashes", "events"],
            "properties": {
                "flag": string(),
                "variant": string(),
                "configVersion": int64(),
                "startMs": millis("The bucket's start"),
                "exposures": counter("Evaluations that served the variant."),
                "errors": counter("Errors recorded against it."),
                "crashes": counter("Crashes recorded while it was active."),
                "latency": schema("LatencySketch"),
                "events": events.clone(),
            },
        },
        "VariantTotals": {
            "type": "object",
            "description": "One variant's totals over the rows returned, for people.",
            "additionalProperties": false,
            "required": ["exposures", "errors", "crashes", "latencyCount", "p50", "p95", "p99", "events"],
            "properties": {
                "exposures": counter("Exposures."),
                "errors": counter("Errors."),
                "crashes": counter("Crashes."),
                "latencyCount": counter("Latencies recorded."),
                "p50": nullable("number", "The median latency in milliseconds; null without latencies."),
                "p95": nullable("number", "The 95th percentile latency in milliseconds."),
                "p99": nullable("number", "The 99th percentile latency in milliseconds."),
                "events": events,
            },
        },
        "FlagMetrics": {
            "type": "object",
            "additionalProperties": false,
            "required": ["flag", "env", "since", "buckets", "totals", "truncated", "next"],
            "properties": {
                "flag": string(),
                "env": string(),
                "since": millis("The first bucket's start"),
                "buckets": { "type": "array", "items": schema("AggregateRow") },
                "totals": { "type": "object", "additionalProperties": schema("VariantTotals"), "description": "Per variant." },
                "truncated": { "type": "boolean", "description": "Whether more rows follow." },
                "next": nullable("integer", "The `since` of the next page when truncated."),
            },
        },
        "SdkInstance": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "sdk", "configVersion", "dropped", "firstSeenMs", "lastSeenMs"],
            "properties": {
                "id": string(),
                "sdk": string(),
                "configVersion": nullable("integer", "The configuration version it last reported applying (from its newest report)."),
                "dropped": counter("Telemetry it dropped since it started."),
                "firstSeenMs": millis("When its first batch arrived, by the server's clock"),
                "lastSeenMs": millis("When its latest batch arrived, by the server's clock"),
            },
        },
        "AppliedVersion": {
            "type": "object",
            "additionalProperties": false,
            "required": ["configVersion", "instances", "lastSeenMs"],
            "properties": {
                "configVersion": nullable("integer", "A configuration version; null for instances that had none yet."),
                "instances": counter("How many instances listed report it."),
                "lastSeenMs": millis("When one of them was last seen"),
            },
        },
        "InstanceList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["env", "since", "currentConfigVersion", "behind", "configVersions", "instances", "truncated"],
            "properties": {
                "env": string(),
                "since": millis("Instances last seen at or after this time are listed"),
                "currentConfigVersion": nullable("integer", "The configuration version this replica serves the environment now."),
                "behind": counter("Instances listed on an older configuration version than that, or on none."),
                "configVersions": { "type": "array", "items": schema("AppliedVersion"), "description": "Per applied version, newest first." },
                "instances": { "type": "array", "items": schema("SdkInstance") },
                "truncated": { "type": "boolean", "description": "Whether more than 10,000 instances matched; the most recently seen are listed." },
            },
        },
    })
}

fn flag_example() -> Value {
    json!({
        "description": "The new checkout flow",
        "owner": "payments",
        "type": "boolean",
        "variants": { "on": true, "off": false },
        "default_variant": "off",
        "off_variant": "off",
        "rules": [
            { "name": "paying plans", "when": [{ "attribute": "plan", "op": "in", "values": ["pro", "enterprise"] }], "serve": "on" },
            { "name": "ramp", "split": [{ "variant": "on", "weight": 10_000 }, { "variant": "off", "weight": 90_000 }] },
        ],
        "environments": { "development": { "default_variant": "on" } },
    })
}

fn segment_example() -> Value {
    json!({
        "description": "Staff",
        "include": ["user-1"],
        "when": [{ "attribute": "email", "op": "ends_with", "value": "@example.com" }],
    })
}

fn file_example() -> Value {
    json!({
        "version": 1,
        "segments": { "staff": segment_example() },
        "flags": { "checkout": flag_example() },
    })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn int64() -> Value {
    json!({ "type": "integer", "format": "int64" })
}

fn millis(what: &str) -> Value {
    json!({ "type": "integer", "format": "int64", "description": format!("{what}, in milliseconds since the Unix epoch.") })
}

fn nullable(kind: &str, description: &str) -> Value {
    json!({ "type": [kind, "null"], "description": description })
}

fn described(mut schema: Value, description: &str) -> Value {
    if let Value::Object(map) = &mut schema {
        map.insert("description".into(), json!(description));
    }
    schema
}

fn token_properties() -> Map<String, Value> {
    let properties = json!({
        "id": described(string(), "`tok_` and 16 hex digits."),
        "name": described(string(), "A name for people."),
        "scope": schema("TokenScope"),
        "environment": described(string(), "The environment of a server or client token; admin tokens have none."),
        "created_at_ms": millis("When it was created"),
        "revoked_at_ms": nullable("integer", "When it was revoked, in milliseconds since the Unix epoch; a revoked token authorizes nothing."),
        "version": described(int64(), "Starts at 1, grows by one on every write."),
    });
    match properties {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn schemas() -> Value {
    let mut all = Map::new();
    for group in [
        error_schemas(),
        definition_schemas(),
        resource_schemas(),
        token_schemas(),
        import_schemas(),
        telemetry_schemas(),
        rollout_schemas(),
        governance::schemas(),
        dry_runs::schemas(),
        release_schemas(),
        app_schemas(),
        runtime_schemas(),
        evaluation_schemas(),
    ] {
        if let Value::Object(map) = group {
            all.extend(map);
        }
    }
    Value::Object(all)
}

fn error_schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "description": "Every error of the admin API, and OFREP errors that are not about one evaluation.",
            "additionalProperties": false,
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "enum": ["unauthorized", "forbidden", "not_found", "bad_request", "conflict", "precondition_failed", "invalid", "payload_too_large", "unsupported_media_type", "internal"],
                    "description": "The kind, stable for programs.",
                },
                "message": described(string(), "What went wrong, for people."),
                "errors": { "type": "array", "items": schema("FieldError"), "description": "Every problem of an invalid definition (`invalid` only)." },
                "currentVersion": described(int64(), "The current version (`precondition_failed` only)."),
                "requestId": described(string(), "The request id the log has details under (a handler panicked)."),
            },
        },
        "FieldError": {
            "type": "object",
            "additionalProperties": false,
            "required": ["path", "message", "line", "column"],
            "properties": {
                "path": described(string(), "Where in the definition, such as `flags.checkout.rules[0].serve`."),
                "message": described(string(), "What is wrong there."),
                "line": nullable("integer", "The line in the request body, from 1, when the problem has a position."),
                "column": nullable("integer", "The column in the request body, from 1, when the problem has a position."),
            },
        },
        "FlagType": {
            "type": "string",
            "enum": ["boolean", "string", "number", "object"],
            "description": "The value type every variant of a flag shares.",
        },
        "Provenance": {
            "type": "string",
            "enum": ["ai-assisted", "human", "mixed"],
            "description": "Who wrote the change a flag guards.",
        },
        "Risk": {
            "type": "string",
            "enum": ["low", "medium", "high"],
            "description": "How much harm the guarded change could do.",
        },
        "Operator": {
            "type": "string",
            "enum": [
                "eq", "neq", "in", "not_in", "contains", "starts_with", "ends_with", "matches",
                "lt", "lte", "gt", "gte", "semver_eq", "semver_lt", "semver_lte", "semver_gt",
                "semver_gte", "before", "after", "exists",
            ],
            "description": "`eq` (numbers compare numerically), `neq` (equal to no operand), `in`, `not_in`, string `contains`/`starts_with`/`ends_with`/`matches` (a regular expression), numeric `lt`/`lte`/`gt`/`gte`, semantic-version `semver_*`, time `before`/`after` (RFC 3339 or Unix seconds), and `exists` (present and not null; no operand). A missing attribute never matches, even negated.",
        },
    })
}

#[allow(clippy::too_many_lines)]
fn definition_schemas() -> Value {
    json!({
        "FlagDefinition": {
            "type": "object",
            "description": "One flag, in the core's format. Checked as a whole: references, types, operands, weights and cycles; every problem is reported with its path (422).",
            "additionalProperties": false,
            "required": ["type", "variants", "default_variant"],
            "properties": {
                "description": described(string(), "What the flag guards, for people."),
                "owner": described(string(), "The team or person responsible for it."),
                "tags": described(strings(), "Free labels."),
                "type": schema("FlagType"),
                "variants": {
                    "type": "object",
                    "additionalProperties": true,
                    "description": "Variant name to value; every value is of the flag's type.",
                },
                "default_variant": described(string(), "Served when no rule matches."),
                "off_variant": described(string(), "Served when the flag is disabled. Without it, a disabled flag yields the caller's default."),
                "enabled": { "type": "boolean", "default": true, "description": "The kill switch: `false` serves the off variant everywhere." },
                "prerequisites": { "type": "array", "items": schema("Prerequisite"), "description": "Flags that must evaluate to a given variant before this flag's rules apply." },
                "rules": { "type": "array", "items": schema("Rule"), "description": "Ordered rules; the first that matches decides." },
                "bucket_by": described(string(), "The context attribute splits bucket by. Defaults to the targeting key."),
                "salt": described(string(), "The bucketing salt. Defaults to the flag key."),
                "provenance": schema("Provenance"),
                "risk": schema("Risk"),
                "expires": { "type": "string", "format": "date", "description": "The date by which the flag should be removed, `YYYY-MM-DD`." },
                "metadata": { "type": "object", "additionalProperties": true, "description": "Free metadata, returned with every evaluation." },
                "goals": { "type": "array", "items": schema("Goal"), "description": "The goal metrics of an A/B experiment on this flag, the primary one first: what `GET /api/v1/experiments/{key}/report` reads without `metric`. Changing them never needs approvals." },
                "environments": {
                    "type": "object",
                    "additionalProperties": schema("EnvironmentOverride"),
                    "description": "Per-environment overrides, by environment name.",
                },
            },
        },
        "Goal": {
            "type": "object",
            "description": "A goal metric: an event sent through the SDK's `track`.",
            "additionalProperties": false,
            "required": ["event"],
            "properties": {
                "event": { "type": "string", "minLength": 1, "maxLength": 256, "description": "The event's name." },
                "kind": { "type": "string", "enum": ["conversion", "mean"], "default": "conversion", "description": "`conversion`: events per exposure. `mean`: the event's value per exposure." },
                "better": { "type": "string", "enum": ["higher", "lower"], "default": "higher", "description": "Which way is an improvement: `lower` for latency, refunds or tickets." },
            },
        },
        "EnvironmentOverride": {
            "type": "object",
            "description": "What one environment changes about a flag. Absent fields inherit the flag's own.",
            "additionalProperties": false,
            "properties": {
                "enabled": described(json!({ "type": "boolean" }), "Overrides the kill switch."),
                "rules": { "type": "array", "items": schema("Rule"), "description": "Replaces the rules entirely." },
                "default_variant": described(string(), "Overrides the default variant."),
            },
        },
        "Prerequisite": {
            "type": "object",
            "description": "A dependency on another flag's outcome.",
            "additionalProperties": false,
            "required": ["flag", "variant"],
            "properties": {
                "flag": described(string(), "The flag that must be evaluated first."),
                "variant": described(string(), "The variant it must evaluate to."),
            },
        },
        "Rule": {
            "type": "object",
            "description": "When all conditions hold, serve a variant or a split. Exactly one of `serve` and `split` is set.",
            "additionalProperties": false,
            "properties": {
                "name": described(string(), "A name for people and for evaluation reasons."),
                "when": { "type": "array", "items": schema("Condition"), "description": "Conditions, all of which must hold. Empty means always." },
                "serve": described(string(), "The variant to serve."),
                "split": { "type": "array", "items": schema("Weight"), "description": "A weighted split; the weights total 100,000." },
                "bucket_by": described(string(), "Overrides the flag's `bucket_by` for this rule's split."),
            },
        },
        "Weight": {
            "type": "object",
            "description": "One arm of a split.",
            "additionalProperties": false,
            "required": ["variant", "weight"],
            "properties": {
                "variant": described(string(), "The variant this arm serves."),
                "weight": { "type": "integer", "minimum": 0, "maximum": 100_000, "description": "Its weight, out of 100,000 (one unit is 1/1000 of a percent)." },
            },
        },
        "Condition": {
            "type": "object",
            "description": "Either `attribute` with `op` (and `value` or `values`), or `segment`.",
            "additionalProperties": false,
            "properties": {
                "attribute": described(string(), "A dotted path into the context, such as `app.version`. `targetingKey` is the targeting key."),
                "op": schema("Operator"),
                "value": { "description": "One operand." },
                "values": { "type": "array", "description": "Several operands; the condition holds when any of them does." },
                "segment": described(string(), "A segment the context must belong to."),
                "negate": { "type": "boolean", "default": false, "description": "Inverts the outcome." },
            },
        },
        "SegmentDefinition": {
            "type": "object",
            "description": "A named, reusable audience.",
            "additionalProperties": false,
            "properties": {
                "description": described(string(), "What the audience is, for people."),
                "include": described(strings(), "Targeting keys that always belong."),
                "exclude": described(strings(), "Targeting keys that never belong; exclusion wins over inclusion."),
                "when": { "type": "array", "items": schema("Condition"), "description": "Conditions, all of which must hold. Empty means only `include` belongs." },
            },
        },
        "FlagFile": {
            "type": "object",
            "description": "A whole flags file: flags, segments and the environments they are described for.",
            "additionalProperties": false,
            "properties": {
                "version": { "type": "integer", "const": 1, "default": 1, "description": "The format version; only 1 exists." },
                "environments": described(strings(), "Environment names. Defaults to development, staging and production."),
                "segments": { "type": "object", "additionalProperties": schema("SegmentDefinition"), "description": "Segments, by name." },
                "flags": { "type": "object", "additionalProperties": schema("FlagDefinition"), "description": "Flags, by key." },
            },
        },
    })
}

fn resource_schemas() -> Value {
    json!({
        "StoredFlag": {
            "type": "object",
            "additionalProperties": false,
            "required": ["key", "version", "createdAt", "updatedAt", "definition"],
            "properties": {
                "key": string(),
                "version": described(int64(), "Starts at 1, grows by one on every write; also the `ETag`."),
                "createdAt": millis("When it was created"),
                "updatedAt": millis("When it was last written"),
                "definition": schema("FlagDefinition"),
            },
        },
        "FlagList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["flags"],
            "properties": { "flags": { "type": "array", "items": schema("StoredFlag") } },
        },
        "StoredSegment": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "version", "createdAt", "updatedAt", "definition"],
            "properties": {
                "name": string(),
                "version": described(int64(), "Starts at 1, grows by one on every write; also the `ETag`."),
                "createdAt": millis("When it was created"),
                "updatedAt": millis("When it was last written"),
                "definition": schema("SegmentDefinition"),
            },
        },
        "SegmentList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["segments"],
            "properties": { "segments": { "type": "array", "items": schema("StoredSegment") } },
        },
        "Environment": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "description", "version", "created_at_ms", "updated_at_ms"],
            "properties": {
                "name": described(string(), "Its name, such as `production`."),
                "description": nullable("string", "What it is for, for people."),
                "version": described(int64(), "Starts at 1, grows by one on every write; also the `ETag`."),
                "created_at_ms": millis("When it was created"),
                "updated_at_ms": millis("When it was last written"),
            },
        },
        "EnvironmentList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["environments"],
            "properties": { "environments": { "type": "array", "items": schema("Environment") } },
        },
        "EnvironmentWrite": {
            "type": "object",
            "additionalProperties": false,
            "properties": { "description": described(string(), "What it is for, for people.") },
        },
        "TokenScope": {
            "type": "string",
            "enum": ["admin", "server", "client"],
            "description": "`admin`: everything, in every environment. `server`: one environment's full configuration, and metrics. `client`: evaluation in one environment, never rules.",
        },
    })
}

fn token_schemas() -> Value {
    let mut created_token = token_properties();
    created_token.insert(
        "secret".into(),
        described(
            string(),
            "The token itself, `sluice_` and 64 hex digits. Shown once.",
        ),
    );
    let token_required = json!([
        "id",
        "name",
        "scope",
        "created_at_ms",
        "revoked_at_ms",
        "version"
    ]);
    let mut created_required = token_required.clone();
    if let Value::Array(list) = &mut created_required {
        list.push(json!("secret"));
    }
    json!({
        "TokenCreate": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "scope"],
            "properties": {
                "name": { "type": "string", "minLength": 1, "description": "A name for people, such as `checkout-service`." },
                "scope": schema("TokenScope"),
                "environment": described(string(), "Required for server and client tokens, refused for admin tokens."),
            },
        },
        "Token": {
            "type": "object",
            "additionalProperties": false,
            "required": token_required,
            "properties": Value::Object(token_properties()),
        },
        "CreatedToken": {
            "type": "object",
            "additionalProperties": false,
            "required": created_required,
            "properties": Value::Object(created_token),
        },
        "TokenList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["tokens"],
            "properties": { "tokens": { "type": "array", "items": schema("Token") } },
        },
        "AuditRecord": {
            "type": "object",
            "additionalProperties": false,
            "required": ["seq", "config_version", "time_ms", "actor", "action", "resource", "before", "after", "reason", "request_id", "prev_hash", "hash"],
            "properties": {
                "seq": described(int64(), "Position in the chain: 1, 2, 3, … with no gaps."),
                "config_version": described(int64(), "The configuration version the write produced."),
                "time_ms": millis("When"),
                "actor": nullable("string", "The acting token's id; null for the server itself."),
                "action": described(string(), "What happened, such as `flag.create` or `flag.kill`."),
                "resource": described(string(), "What it happened to, such as `flag:checkout`."),
                "before": nullable("string", "The resource before, as JSON text; null when it was created."),
                "after": nullable("string", "The resource after, as JSON text; null when it was deleted."),
                "reason": nullable("string", "Why, in the actor's words."),
                "request_id": nullable("string", "The HTTP request id."),
                "prev_hash": described(string(), "The previous record's hash."),
                "hash": described(string(), "`hex(sha256(prev_hash ‖ canonical record))`."),
            },
        },
        "AuditList": {
            "type": "object",
            "additionalProperties": false,
            "required": ["records"],
            "properties": { "records": { "type": "array", "items": schema("AuditRecord") } },
        },
        "ChainBreak": {
            "type": "object",
            "additionalProperties": false,
            "required": ["seq", "kind", "message"],
            "properties": {
                "seq": described(int64(), "The `seq` at which the chain breaks."),
                "kind": { "type": "string", "enum": ["edited", "missing", "reordered"] },
                "message": described(string(), "A sentence for people."),
            },
        },
        "AuditVerification": {
            "type": "object",
            "additionalProperties": false,
            "required": ["ok", "report"],
            "properties": {
                "ok": described(json!({ "type": "boolean" }), "Whether the whole chain verifies."),
                "report": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["records", "head_seq", "head_hash", "first_break"],
                    "properties": {
                        "records": described(int64(), "How many records were checked."),
                        "head_seq": described(int64(), "The last `seq` recorded as the chain head."),
                        "head_hash": described(string(), "Its hash (64 zeros for an empty log)."),
                        "first_break": { "oneOf": [schema("ChainBreak"), { "type": "null" }], "description": "The first broken link, or null." },
                    },
                },
            },
        },
    })
}

fn import_schemas() -> Value {
    let changes = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["created", "updated", "deleted"],
        "properties": {
            "created": described(strings(), "Keys that are new."),
            "updated": { "type": "array", "items": schema("UpdatedDefinition"), "description": "Keys whose definition changed." },
            "deleted": described(strings(), "Keys that are gone."),
        },
    });
    let tally = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["created", "updated", "deleted", "unchanged"],
        "properties": {
            "created": described(strings(), "Keys that did not exist before."),
            "updated": described(strings(), "Keys whose definition changed; their version grew by one."),
            "deleted": described(strings(), "Keys that the file no longer has."),
            "unchanged": { "type": "integer", "minimum": 0, "description": "How many definitions were already identical." },
        },
    });
    json!({
        "ImportTally": tally,
        "ImportSummary": {
            "type": "object",
            "additionalProperties": false,
            "required": ["environments_created", "segments", "flags"],
            "properties": {
                "environments_created": described(strings(), "Environments the file lists that did not exist."),
                "segments": schema("ImportTally"),
                "flags": schema("ImportTally"),
            },
        },
        "ImportResult": {
            "type": "object",
            "additionalProperties": false,
            "required": ["configVersion", "summary"],
            "properties": {
                "configVersion": described(int64(), "The configuration version after the import."),
                "summary": schema("ImportSummary"),
            },
        },
        "UpdatedDefinition": {
            "type": "object",
            "additionalProperties": false,
            "required": ["key", "fields"],
            "properties": {
                "key": string(),
                "fields": described(strings(), "The top-level fields that differ, such as `rules`."),
            },
        },
        "Changes": changes,
        "ImportDryRun": {
            "type": "object",
            "additionalProperties": false,
            "required": ["dryRun", "changes"],
            "properties": {
                "dryRun": { "type": "boolean", "const": true },
                "changes": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["flags", "segments"],
                    "properties": { "flags": schema("Changes"), "segments": schema("Changes") },
                },
            },
        },
    })
}

fn runtime_schemas() -> Value {
    json!({
        "Health": {
            "type": "object",
            "additionalProperties": false,
            "required": ["status"],
            "properties": { "status": { "type": "string", "const": "ok" } },
        },
        "Readiness": {
            "type": "object",
            "additionalProperties": false,
            "required": ["store", "configVersion", "lastReloadError"],
            "properties": {
                "store": { "type": "string", "enum": ["ok", "unreachable"] },
                "configVersion": nullable("integer", "The configuration version served; null before one loaded."),
                "lastReloadError": nullable("string", "Why the last reload failed, while the last good configuration is served."),
            },
        },
        "Status": {
            "type": "object",
            "additionalProperties": false,
            "required": ["version", "replica", "leader", "backend", "gitops", "configVersion", "streams"],
            "properties": {
                "version": described(string(), "The server's version."),
                "replica": described(string(), "This replica's random id."),
                "leader": described(json!({ "type": "boolean" }), "Whether this replica holds the leader lock."),
                "backend": { "type": "string", "enum": ["sqlite", "postgres"] },
                "gitops": described(json!({ "type": "boolean" }), "Whether files own the flags."),
                "configVersion": nullable("integer", "The configuration version served."),
                "streams": { "type": "integer", "minimum": 0, "description": "Connected live streams." },
            },
        },
        "EvaluationRequest": {
            "type": "object",
            "description": "An empty body, or a body without `context`, evaluates with an empty context.",
            "properties": {
                "context": {
                    "type": ["object", "null"],
                    "description": "The evaluation context: any attributes, with `targetingKey` as the targeting key.",
                    "properties": { "targetingKey": string() },
                    "additionalProperties": true,
                },
            },
            "additionalProperties": true,
        },
        "Reason": {
            "type": "string",
            "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT", "ERROR"],
            "description": "Why this value was served, in OpenFeature's vocabulary.",
        },
        "ErrorCode": {
            "type": "string",
            "enum": ["FLAG_NOT_FOUND", "TYPE_MISMATCH", "PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"],
            "description": "What went wrong, in OpenFeature's vocabulary.",
        },
    })
}

fn evaluation_schemas() -> Value {
    json!({
        "EvaluationSuccess": {
            "type": "object",
            "additionalProperties": false,
            "required": ["key", "reason", "metadata"],
            "properties": {
                "key": string(),
                "value": { "description": "The value served; absent when a disabled flag has no off variant, so the caller's default applies." },
                "variant": described(string(), "The variant served."),
                "reason": schema("Reason"),
                "metadata": { "type": "object", "additionalProperties": true, "description": "The flag's metadata." },
            },
        },
        "EvaluationFailure": {
            "type": "object",
            "additionalProperties": false,
            "required": ["key", "errorCode", "errorDetails"],
            "properties": {
                "key": string(),
                "errorCode": schema("ErrorCode"),
                "errorDetails": string(),
            },
        },
        "BulkFailure": {
            "type": "object",
            "additionalProperties": false,
            "required": ["errorCode", "errorDetails"],
            "properties": { "errorCode": schema("ErrorCode"), "errorDetails": string() },
        },
        "BulkEvaluation": {
            "type": "object",
            "additionalProperties": false,
            "required": ["flags", "metadata"],
            "properties": {
                "flags": { "type": "array", "items": { "oneOf": [schema("EvaluationSuccess"), schema("EvaluationFailure")] } },
                "metadata": { "type": "object", "additionalProperties": true },
                "eventStreams": {
                    "type": "array",
                    "description": "Where to listen for changes; present when the request named its `Host`.",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["type", "url", "inactivityDelaySec"],
                        "properties": {
                            "type": { "type": "string", "const": "sse" },
                            "url": { "type": "string", "format": "uri" },
                            "inactivityDelaySec": { "type": "integer", "minimum": 0 },
                        },
                    },
                },
            },
        },
        "RefetchEvent": {
            "type": "object",
            "description": "The data of an OFREP change notification.",
            "additionalProperties": false,
            "required": ["type", "version"],
            "properties": {
                "type": { "type": "string", "const": "refetchEvaluation" },
                "version": described(int64(), "The new configuration version."),
            },
        },
        "ConfigPayload": {
            "type": "object",
            "description": "One environment's whole configuration, as server SDKs receive it.",
            "additionalProperties": false,
            "required": ["version", "environment", "format", "flags"],
            "properties": {
                "version": described(int64(), "The configuration version; also the event id and the `ETag`."),
                "environment": string(),
                "format": { "type": "string", "enum": ["sluice", "flagd"], "description": "The format of `flags`." },
                "flags": {
                    "type": "object",
                    "description": "The whole definition document: a `FlagFile` when `format` is `sluice`, flagd's document when it is `flagd` (GitOps mode with a flagd file). Rules are included: only server tokens see this.",
                },
                "dry_runs": { "type": "array", "items": schema("DryRunListing"), "description": "The environment's running dry runs; absent when there are none." },
            },
        },

    })
}

/// The docs page: it fetches the document and renders operations, parameters, bodies,
/// responses and schemas, with a form per operation that sends a request from the browser.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sluice API</title>
<style>
:root { --fg: #1d2327; --muted: #5f6b73; --bg: #fff; --panel: #f5f7f8; --line: #dde3e6; --accent: #0b6e99; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e3e8eb; --muted: #9aa7b0; --bg: #14191c; --panel: #1d2428; --line: #2e393f; --accent: #5fb4dc; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 1rem 1.5rem; border-bottom: 1px solid var(--line); position: sticky; top: 0; background: var(--bg); z-index: 1; }
header h1 { margin: 0; font-size: 1.3rem; }
.auth { display: flex; gap: .75rem; flex-wrap: wrap; align-items: center; margin-top: .5rem; font-size: .9rem; }
.auth input { width: 22rem; max-width: 100%; }
.layout { display: grid; grid-template-columns: 16rem 1fr; }
nav { padding: 1rem; border-right: 1px solid var(--line); font-size: .85rem; position: sticky; top: 6.5rem; align-self: start; max-height: calc(100vh - 7rem); overflow: auto; }
nav h3 { margin: .8rem 0 .2rem; font-size: .8rem; text-transform: uppercase; color: var(--muted); }
nav a { display: block; color: var(--fg); text-decoration: none; padding: .1rem 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
main { padding: 1rem 1.5rem 4rem; min-width: 0; }
a { color: var(--accent); }
code, pre, textarea, input, select { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
pre { background: var(--panel); padding: .75rem; overflow: auto; max-height: 28rem; border-radius: 4px; }
section.op { border: 1px solid var(--line); border-radius: 6px; margin: 1rem 0; padding: .5rem 1rem 1rem; }
section.op h3 { margin: .5rem 0; font-size: 1rem; display: flex; gap: .6rem; align-items: baseline; flex-wrap: wrap; }
.method { font-weight: 700; text-transform: uppercase; font-size: .8rem; padding: .1rem .45rem; border-radius: 3px; color: #fff; }
.get { background: #2b7a3d; } .post { background: #0b6e99; } .put { background: #9a6a00; } .delete { background: #b3261e; }
.muted { color: var(--muted); }
.access { font-size: .85rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0; font-size: .9rem; }
th, td { text-align: left; vertical-align: top; padding: .3rem .5rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); }
h4 { margin: 1rem 0 .2rem; font-size: .9rem; }
.req { color: #b3261e; }
details { margin-top: .8rem; }
summary { cursor: pointer; color: var(--accent); }
.try label { display: block; margin: .3rem 0; }
.try input, .try textarea, .try select { width: 100%; padding: .3rem; background: var(--panel); color: var(--fg); border: 1px solid var(--line); }
.try textarea { min-height: 10rem; }
button { margin-top: .5rem; padding: .35rem 1rem; cursor: pointer; }
.schema-block { margin-left: 1rem; }
@media (max-width: 800px) { .layout { grid-template-columns: 1fr; } nav { display: none; } }
</style>
</head>
<body>
<header>
  <h1 id="title">Sluice API</h1>
  <div class="auth">
    <label>Token <input id="token" type="password" autocomplete="off" placeholder="sluice_…"></label>
    <label>sent as <select id="scheme"><option value="bearer">Authorization: Bearer</option><option value="apiKey">X-API-Key</option></select></label>
    <a href="/api/v1/openapi.json">openapi.json</a>
    <span class="muted">The token stays in this page; reloading forgets it.</span>
  </div>
</header>
<div class="layout">
  <nav id="toc"></nav>
  <main id="main"><p>Loading <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>…</p>
  <noscript>This page renders the OpenAPI document with a little JavaScript; the document itself is at /api/v1/openapi.json.</noscript></main>
</div>
<script>
"use strict";
const METHODS = ["get", "post", "put", "patch", "delete"];
let spec = null;

function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.append(kid instanceof Node ? kid : String(kid));
  }
  return node;
}

// Text with `code` spans and **bold**, without ever parsing HTML.
function prose(text) {
  const out = [];
  String(text || "").split(/(`[^`]*`|\*\*[^*]+\*\*)/).forEach(part => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) out.push(el("code", {}, part.slice(1, -1)));
    else if (part.startsWith("**") && part.endsWith("**")) out.push(el("strong", {}, part.slice(2, -2)));
    else if (part) out.push(part);
  });
  return out;
}

function paragraphs(text) {
  return String(text || "").split(/\n\n+/).map(p => el("p", {}, prose(p)));
}

function resolve(obj) {
  let seen = 0;
  while (obj && obj.$ref && seen++ < 10) {
    obj = obj.$ref.replace(/^#\//, "").split("/").reduce((o, k) => (o ? o[k] : undefined), spec);
  }
  return obj || {};
}

function refName(ref) { return ref.split("/").pop(); }

function typeLabel(s) {
  if (!s || Object.keys(s).length === 0) return "any";
  if (s.$ref) return el("a", { href: "#schema-" + refName(s.$ref) }, refName(s.$ref));
  if (s.oneOf) return joinNodes(s.oneOf.map(typeLabel), " | ");
  if ("const" in s) return el("code", {}, JSON.stringify(s.const));
  if (s.enum) return joinNodes(s.enum.map(v => el("code", {}, JSON.stringify(v))), " | ");
  const types = Array.isArray(s.type) ? s.type : (s.type ? [s.type] : []);
  const parts = types.map(t => {
    if (t === "array") return ["array of ", s.items ? typeLabel(s.items) : "any"];
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object" && !s.properties) {
      return ["map of ", typeLabel(s.additionalProperties)];
    }
    return t + (s.format ? " (" + s.format + ")" : "");
  });
  return parts.length ? joinNodes(parts, " | ") : "any";
}

function joinNodes(items, sep) {
  const out = [];
  items.forEach((item, i) => { if (i) out.push(sep); out.push(item); });
  return el("span", {}, out);
}

function constraints(s) {
  const notes = [];
  if ("default" in s) notes.push(["default ", el("code", {}, JSON.stringify(s.default))]);
  if ("minimum" in s) notes.push("≥ " + s.minimum);
  if ("maximum" in s) notes.push("≤ " + s.maximum);
  if ("minLength" in s) notes.push("at least " + s.minLength + " characters");
  if ("maxLength" in s) notes.push("at most " + s.maxLength + " characters");
  if (s.pattern) notes.push(["matches ", el("code", {}, s.pattern)]);
  return notes.length ? el("div", { class: "muted" }, joinNodes(notes, ", ")) : null;
}

function schemaTable(s) {
  s = s.$ref ? resolve(s) : s;
  if (!s.properties) return null;
  const required = new Set(s.required || []);
  const rows = Object.entries(s.properties).map(([name, prop]) => el("tr", {},
    el("td", {}, el("code", {}, name), required.has(name) ? el("span", { class: "req", title: "required" }, " *") : null),
    el("td", {}, typeLabel(prop)),
    el("td", {}, prose(prop.description || (prop.$ref ? resolve(prop).description : "")), constraints(prop))));
  const closed = s.additionalProperties === false ? el("p", { class: "muted" }, "No other fields are accepted.") : null;
  return el("div", {}, el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description")), rows), closed);
}

function schemaView(s) {
  return el("div", { class: "schema-block" }, el("div", {}, typeLabel(s)), s.$ref ? null : schemaTable(s));
}

function parametersOf(pathItem, op) {
  return [...(pathItem.parameters || []), ...(op.parameters || [])].map(resolve);
}

function operationView(path, method, pathItem, op) {
  const params = parametersOf(pathItem, op);
  const body = op.requestBody ? resolve(op.requestBody) : null;
  const parts = [
    el("h3", {}, el("span", { class: "method " + method }, method), el("code", {}, path), el("span", { class: "muted" }, op.summary || "")),
    paragraphs(op.description),
  ];
  if (params.length) {
    parts.push(el("h4", {}, "Parameters"), el("table", {},
      el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description")),
      params.map(p => el("tr", {},
        el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req", title: "required" }, " *") : null),
        el("td", {}, p.in), el("td", {}, typeLabel(p.schema)), el("td", {}, prose(p.description), constraints(p.schema || {}))))));
  }
  if (body) {
    parts.push(el("h4", {}, "Request body", body.required ? "" : " (optional)"));
    for (const [type, media] of Object.entries(body.content || {})) {
      parts.push(el("div", {}, el("code", {}, type)), schemaView(media.schema || {}));
    }
  }
  parts.push(el("h4", {}, "Responses"), el("table", {},
    el("tr", {}, el("th", {}, "status"), el("th", {}, "description"), el("th", {}, "body")),
    Object.entries(op.responses || {}).map(([status, r]) => {
      r = resolve(r);
      const bodies = Object.entries(r.content || {}).map(([type, media]) =>
        el("div", {}, el("code", {}, type), " ", media.schema ? typeLabel(media.schema) : ""));
      const headers = Object.keys(r.headers || {}).map(h => el("div", { class: "muted" }, "header ", el("code", {}, h)));
      return el("tr", {}, el("td", {}, el("code", {}, status)), el("td", {}, prose(r.description)), el("td", {}, bodies, headers));
    })));
  parts.push(tryIt(path, method, params, body, op));
  return el("section", { class: "op", id: "op-" + (op.operationId || method + path) }, parts);
}

function tryIt(path, method, params, body, op) {
  const inputs = params.map(p => {
    const input = el("input", { "data-name": p.name, "data-in": p.in, placeholder: p.schema && "default" in p.schema ? String(p.schema.default) : "" });
    return el("label", {}, el("code", {}, p.name), " (", p.in, ")", input);
  });
  let textarea = null, typeSelect = null;
  if (body) {
    const types = Object.keys(body.content || {});
    typeSelect = el("select", {}, types.map(t => el("option", { value: t }, t)));
    const example = types.length ? body.content[types[0]].example : undefined;
    textarea = el("textarea", { spellcheck: "false" });
    textarea.value = example === undefined ? "" : JSON.stringify(example, null, 2);
  }
  const output = el("pre", {}, "");
  const streaming = Object.values(op.responses || {}).some(r => resolve(r).content && resolve(r).content["text/event-stream"]);
  const button = el("button", { type: "button" }, "Send");
  button.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const label of inputs) {
      const input = label.querySelector("input");
      const value = input.value;
      if (!value) continue;
      const where = input.getAttribute("data-in"), name = input.getAttribute("data-name");
      if (where === "path") url = url.replace("{" + name + "}", encodeURIComponent(value));
      else if (where === "query") query.set(name, value);
      else if (where === "header") headers[name] = value;
    }
    if (/\{[^}]+\}/.test(url)) { output.textContent = "Fill in the path parameters first."; return; }
    if ([...query].length) url += "?" + query.toString();
    const token = document.getElementById("token").value.trim();
    if (token) {
      if (document.getElementById("scheme").value === "bearer") headers["Authorization"] = "Bearer " + token;
      else headers["X-API-Key"] = token;
    }
    const init = { method: method.toUpperCase(), headers };
    if (textarea && textarea.value.trim()) { init.body = textarea.value; headers["Content-Type"] = typeSelect.value; }
    const controller = new AbortController();
    init.signal = controller.signal;
    output.textContent = "…";
    try {
      const response = await fetch(url, init);
      const head = [response.status + " " + response.statusText];
      response.headers.forEach((v, k) => head.push(k + ": " + v));
      let text = "";
      if (streaming && response.ok && response.body) {
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const stop = setTimeout(() => controller.abort(), 5000);
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            text += decoder.decode(value, { stream: true });
            output.textContent = head.join("\n") + "\n\n" + text + "\n(listening for 5 s)";
          }
        } catch (e) { /* aborted after 5 s */ }
        clearTimeout(stop);
      } else {
        text = await response.text();
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
      }
      output.textContent = head.join("\n") + "\n\n" + text;
    } catch (e) {
      output.textContent = "The request failed: " + e;
    }
  });
  return el("details", { class: "try" }, el("summary", {}, "Try it"),
    inputs, textarea ? [el("label", {}, "Body ", typeSelect), textarea] : null, button, output);
}

function render() {
  document.getElementById("title").textContent = spec.info.title + " API " + spec.info.version;
  document.title = spec.info.title + " API";
  const main = document.getElementById("main");
  const toc = document.getElementById("toc");
  main.replaceChildren(el("div", {}, paragraphs(spec.info.description)));
  toc.replaceChildren();
  const byTag = new Map((spec.tags || []).map(t => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
      byTag.get(tag).ops.push([path, method, item, op]);
    }
  }
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    toc.append(el("h3", {}, tag.name));
    main.append(el("h2", { id: "tag-" + tag.name }, tag.name), paragraphs(tag.description));
    for (const [path, method, item, op] of ops) {
      const id = "op-" + (op.operationId || method + path);
      toc.append(el("a", { href: "#" + id }, method.toUpperCase() + " " + path));
      main.append(operationView(path, method, item, op));
    }
  }
  toc.append(el("h3", {}, "schemas"));
  main.append(el("h2", { id: "schemas" }, "Schemas"));
  for (const [name, s] of Object.entries(spec.components.schemas)) {
    toc.append(el("a", { href: "#schema-" + name }, name));
    main.append(el("section", { class: "op", id: "schema-" + name },
      el("h3", {}, el("code", {}, name), el("span", { class: "muted" }, typeLabel(s))),
      paragraphs(s.description), schemaTable(s)));
  }
  if (location.hash) { const target = document.getElementById(location.hash.slice(1)); if (target) target.scrollIntoView(); }
}

fetch("/api/v1/openapi.json")
  .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
  .then(doc => { spec = doc; render(); })
  .catch(e => { document.getElementById("main").textContent = "Cannot load the OpenAPI document: " + e; });
</script>
</body>
</html>
"##;
