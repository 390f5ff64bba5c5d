//! The OpenAPI paths and schemas of dry runs: staged rule changes evaluated beside the rules
//! served, and their would-change reports.

use serde_json::{Value, json};

use super::{
    Access, described, int64, json_body, json_response, key_schema, millis, nullable, operation,
    parameter, path_parameter, query_parameter, response, schema, string,
};

pub(super) fn paths() -> Value {
    let id = path_parameter("id", "The dry run's id.", int64());
    json!({
        "/api/v1/dry-runs": {
            "post": operation("startDryRun", "dry-runs", "Start a dry run of staged rules", Access::Admin, json!({
                "description": "Stages a change to one flag's rules in one environment. The current rules keep serving; SDKs (which receive the running dry runs with their configuration) and the server (for OFREP) also evaluate the staged rules for every evaluation of the flag and count how many would get a different variant, keeping a few sampled contexts. `staged` is what an environment override holds (`rules`, `default_variant`, `enabled`; the fields given replace the flag's in that environment) or a bare list of rules. It must compile against the flag as it is (422 with paths under `staged`). One dry run runs per flag and environment (409). Audited as `dry_run.start` on `dry-run:<id>`; not gated by environment protection, since nobody is served the staged rules.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("DryRunStart"), json!({
                    "flag": "checkout", "env": "production", "reason": "widen the beta",
                    "staged": { "rules": [{ "when": [{ "segment": "beta-testers" }], "serve": "on" }] },
                })),
                "responses": {
                    "201": json_response("Started, with its (empty) report and the configuration version SDKs evaluate it from.", schema("DryRun")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": json_response("The flag already has a running dry run in the environment, or flags are managed by files (GitOps mode).", schema("Error")),
                    "422": response("Invalid"),
                },
            })),
            "get": operation("listDryRuns", "dry-runs", "List dry runs", Access::Admin, json!({
                "description": "Newest first, without reports.",
                "parameters": [
                    query_parameter("env", "Only this environment's.", json!({ "type": "string" })),
                    query_parameter("flag", "Only this flag's.", json!({ "type": "string" })),
                ],
                "responses": {
                    "200": json_response("The dry runs.", schema("DryRunList")),
                    "400": response("BadRequest"),
                },
            })),
        },
        "/api/v1/dry-runs/{id}": {
            "parameters": [id.clone()],
            "get": operation("getDryRun", "dry-runs", "Read a dry run and its report", Access::Admin, json!({
                "description": "The would-change report: evaluations compared, how many would get a different variant, the count per (served, staged) pair, the newest sampled contexts that would change, and `problem` when the staged rules no longer compile against the flag as it is now (then nothing evaluates them). What this server counted is written first, so the report is current for its OFREP evaluations; SDKs report with their telemetry flushes.",
                "responses": {
                    "200": json_response("The dry run with its report.", schema("DryRun")),
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/dry-runs/{id}/apply": {
            "parameters": [id.clone()],
            "post": operation("applyDryRun", "dry-runs", "Apply a dry run's staged rules", Access::Admin, json!({
                "description": "Writes the staged rules into the flag's override for the dry run's environment, as `PUT /api/v1/flags/{key}` would (audited as `flag.update`), then stops the dry run. In a protected environment this files a change request (202) and the dry run keeps running until it is applied. The flag must be at the version the dry run started from, so that what was measured is what is applied; `force` applies anyway.",
                "parameters": [parameter("Reason")],
                "requestBody": {
                    "required": false,
                    "content": { "application/json": { "schema": schema("DryRunApply"), "example": { "reason": "would-change counts reviewed" } } },
                },
                "responses": {
                    "200": json_response("Applied: the dry run, stopped, with its report.", schema("DryRun")),
                    "202": super::governance::accepted(),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": json_response("The dry run is stopped, the flag changed since it started (without `force`), or flags are managed by files.", schema("Error")),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/dry-runs/{id}/stop": {
            "parameters": [id],
            "post": operation("stopDryRun", "dry-runs", "Stop a dry run", Access::Admin, json!({
                "description": "SDKs and the server stop evaluating the staged rules; the report stays readable. Stopping a stopped dry run changes nothing. Audited as `dry_run.stop`.",
                "parameters": [parameter("Reason")],
                "requestBody": {
                    "required": false,
                    "content": { "application/json": { "schema": schema("DryRunStop"), "example": { "reason": "looks right; applying" } } },
                },
                "responses": {
                    "200": json_response("The dry run, stopped, with its report.", schema("DryRun")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "422": response("Invalid"),
                },
            })),
        },
    })
}

pub(super) fn schemas() -> Value {
    let pair = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["from", "to", "count"],
        "properties": {
            "from": { "type": "string", "description": "The variant served (`(none)` for an evaluation that served none)." },
            "to": { "type": "string", "description": "The variant the staged rules would serve." },
            "count": { "type": "integer", "minimum": 0, "description": "Evaluations." },
        },
    });
    let sample = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["atMs", "context", "from", "to"],
        "properties": {
            "atMs": millis("When it was evaluated"),
            "context": { "type": "string", "maxLength": 1024, "description": "The evaluation context as JSON, cut at 1,024 bytes." },
            "from": string(),
            "to": string(),
        },
    });
    json!({
        "DryRunStart": {
            "type": "object",
            "additionalProperties": false,
            "required": ["flag", "env", "staged"],
            "properties": {
                "flag": key_schema(),
                "env": key_schema(),
                "staged": {
                    "oneOf": [schema("EnvironmentOverride"), { "type": "array", "items": schema("Rule") }],
                    "description": "The staged override, or a bare list of rules.",
                },
                "reason": string(),
            },
        },
        "DryRunApply": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "reason": string(),
                "force": { "type": "boolean", "description": "Apply although the flag changed since the dry run started." },
            },
        },
        "DryRunStop": {
            "type": "object",
            "additionalProperties": false,
            "properties": { "reason": string() },
        },
        "DryRun": {
            "type": "object",
            "required": ["id", "env", "flag", "staged", "flagVersion", "status", "createdMs"],
            "properties": {
                "id": int64(),
                "env": string(),
                "flag": string(),
                "staged": schema("EnvironmentOverride"),
                "flagVersion": described(int64(), "The flag's version when the dry run started."),
                "status": { "type": "string", "enum": ["running", "stopped"] },
                "createdMs": millis("When it started"),
                "createdBy": nullable("string", "The token that started it."),
                "reason": nullable("string", "Why, in its author's words."),
                "endedMs": nullable("integer", "When it stopped, in milliseconds since the Unix epoch."),
                "configVersion": described(int64(), "On start only: the configuration version SDKs evaluate it from."),
                "problem": nullable("string", "Why nothing evaluates the staged rules now, if so."),
                "report": {
                    "type": "object",
                    "required": ["evaluations", "wouldChange", "transitions", "samples"],
                    "properties": {
                        "evaluations": { "type": "integer", "minimum": 0 },
                        "wouldChange": { "type": "integer", "minimum": 0 },
                        "wouldChangeShare": nullable("number", "`wouldChange / evaluations`; null before any evaluation."),
                        "transitions": { "type": "array", "items": pair.clone(), "description": "Per (served, staged) pair, the changing ones first." },
                        "samples": { "type": "array", "items": sample.clone(), "description": "The newest contexts that would change (at most 20)." },
                    },
                },
            },
        },
        "DryRunList": {
            "type": "object",
            "required": ["dryRuns"],
            "properties": { "dryRuns": { "type": "array", "items": schema("DryRun") } },
        },
        "DryRunReport": {
            "type": "object",
            "description": "What one SDK tallied for one dry run since its last flush.",
            "additionalProperties": false,
            "required": ["dryRun", "flag", "transitions"],
            "properties": {
                "dryRun": int64(),
                "flag": key_schema(),
                "transitions": { "type": "array", "items": pair, "maxItems": 1024 },
                "samples": { "type": "array", "items": sample, "maxItems": 5 },
            },
        },
        "DryRunListing": {
            "type": "object",
            "description": "A running dry run, as server SDKs receive it with their configuration.",
            "required": ["id", "flag", "staged"],
            "properties": {
                "id": int64(),
                "flag": string(),
                "staged": schema("EnvironmentOverride"),
            },
        },
    })
}
