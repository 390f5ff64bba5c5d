//! The OpenAPI paths and schemas of governance: environment protection, change requests and
//! the flag lifecycle (stale flags, archiving).

use serde_json::{Value, json};

use super::{
    Access, int64, json_body, json_response, key_schema, millis, operation, parameter,
    path_parameter, query_parameter, response, schema, string, versioned_response,
};

/// The 202 answer of a write that a protected environment turns into a change request.
pub(super) fn accepted() -> Value {
    json_response(
        "The write touches a protected environment: nothing changed yet, and this change request waits for approvals.",
        schema("ChangeRequestFiled"),
    )
}

#[allow(clippy::too_many_lines)]
pub(super) fn paths() -> Value {
    let id = path_parameter(
        "id",
        "The change request id (`cr_` and 16 hex digits).",
        json!({ "type": "string" }),
    );
    let key = path_parameter("key", "The flag key.", key_schema());
    let name = path_parameter("name", "The environment name.", key_schema());
    let step_body = json!({
        "required": false,
        "content": { "application/json": { "schema": schema("ChangeRequestStep"), "example": { "reason": "reviewed the diff" } } },
    });
    let step = |op: &str, summary: &str, description: &str| {
        operation(
            op,
            "governance",
            summary,
            Access::Admin,
            json!({
                "description": description,
                "parameters": [parameter("Reason")],
                "requestBody": step_body.clone(),
                "responses": {
                    "200": json_response("The change request after this step.", schema("ChangeRequest")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": json_response("Refused (self-approval, a second approval by the same token, a request already rejected or applied), or the resource moved past the base version: nothing changed.", schema("Error")),
                },
            }),
        )
    };
    json!({
        "/api/v1/environments/{name}/protection": {
            "parameters": [name],
            "get": operation("getProtection", "governance", "Read an environment's protection", Access::Admin, json!({
                "responses": {
                    "200": versioned_response("The protection; version 0 when never set.", schema("Protection")),
                    "404": response("NotFound"),
                },
            })),
            "put": operation("protectEnvironment", "governance", "Protect an environment", Access::Admin, json!({
                "description": "Changes that touch a protected environment become change requests needing `requiredApprovals` approvals from admins other than the author (unless `allowSelfApproval`). 0 unprotects. Weakening a protected environment's protection is itself a change request.",
                "parameters": [parameter("IfMatch"), parameter("Reason")],
                "requestBody": json_body(schema("ProtectionBody"), json!({ "requiredApprovals": 2, "allowSelfApproval": false })),
                "responses": {
                    "200": versioned_response("Set.", schema("Protection")),
                    "202": accepted(),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "412": response("PreconditionFailed"),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/change-requests": {
            "get": operation("listChangeRequests", "governance", "List change requests", Access::Admin, json!({
                "parameters": [
                    query_parameter("status", "Only requests in this status.", json!({ "enum": ["pending", "approved", "rejected", "applied"] })),
                    query_parameter("limit", "At most this many (default 100, at most 1000).", json!({ "type": "integer", "minimum": 0 })),
                ],
                "responses": {
                    "200": json_response("Newest first.", schema("ChangeRequestList")),
                    "400": response("BadRequest"),
                },
            })),
            "post": operation("createChangeRequest", "governance", "File a change request", Access::Admin, json!({
                "description": "Files a change explicitly. The gated routes file the same thing by themselves.",
                "parameters": [parameter("Reason")],
                "requestBody": json_body(schema("ChangeRequestCreate"), json!({ "payload": { "kind": "flag.delete", "key": "old-banner" }, "reason": "cleanup" })),
                "responses": {
                    "201": json_response("Filed.", schema("ChangeRequest")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                    "409": json_response("The change touches no protected environment, or the flag is managed by files.", schema("Error")),
                    "422": response("Invalid"),
                },
            })),
        },
        "/api/v1/change-requests/{id}": {
            "parameters": [id.clone()],
            "get": operation("getChangeRequest", "governance", "Read a change request", Access::Admin, json!({
                "responses": {
                    "200": json_response("The change request.", schema("ChangeRequest")),
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/change-requests/{id}/approve": { "parameters": [id.clone()], "post": step("approveChangeRequest", "Approve a change request", "Adds this token's approval. The approval that reaches the required number applies the change at once, in one audited write.") },
        "/api/v1/change-requests/{id}/reject": { "parameters": [id.clone()], "post": step("rejectChangeRequest", "Reject a change request", "A rejected request never applies.") },
        "/api/v1/change-requests/{id}/apply": { "parameters": [id], "post": step("applyChangeRequest", "Apply an approved change request", "Applies a request that has its approvals (again, after a failure). 409 when the resource moved past its base version.") },
        "/api/v1/flags/stale": {
            "get": operation("staleFlags", "governance", "List stale flags", Access::Admin, json!({
                "description": "Each flag's lifecycle stage (active, rolled-out, stale, archived) and why it is stale: settled (0% or 100% in every environment) and unchanged for `days`, not evaluated for `days`, or past its `expires` date.",
                "parameters": [
                    query_parameter("days", "The window in days (default 14).", json!({ "type": "integer", "minimum": 0, "maximum": 3650 })),
                    query_parameter("at", "Classify as of this time (Unix ms) instead of now.", json!({ "type": "integer" })),
                    query_parameter("all", "List every flag with its stage, not only stale ones.", json!({ "type": "boolean" })),
                ],
                "responses": {
                    "200": json_response("The flags.", schema("StaleReport")),
                    "400": response("BadRequest"),
                },
            })),
        },
        "/api/v1/flags/{key}/archive": {
            "parameters": [key.clone()],
            "post": operation("archiveFlag", "governance", "Archive a flag", Access::Admin, json!({
                "description": "Marks the flag archived (audited as `flag.archive`); how it is served does not change.",
                "parameters": [parameter("Reason")],
                "responses": {
                    "200": json_response("Archived.", schema("ArchiveResult")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                },
            })),
        },
        "/api/v1/flags/{key}/unarchive": {
            "parameters": [key],
            "post": operation("unarchiveFlag", "governance", "Unarchive a flag", Access::Admin, json!({
                "parameters": [parameter("Reason")],
                "responses": {
                    "200": json_response("Unarchived.", schema("ArchiveResult")),
                    "400": response("BadRequest"),
                    "404": response("NotFound"),
                },
            })),
        },
    })
}

#[allow(clippy::too_many_lines)]
pub(super) fn schemas() -> Value {
    let any = json!({});
    let requirement = json!({
        "type": "object",
        "required": ["environments", "requiredApprovals", "allowSelfApproval"],
        "properties": {
            "environments": { "type": "array", "items": string() },
            "requiredApprovals": { "type": "integer", "minimum": 0 },
            "allowSelfApproval": { "type": "boolean" },
        },
    });
    json!({
        "ChangeRequestStep": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "reason": string(),
                "apply": { "type": "boolean", "description": "Approve only: `false` records the approval without applying, even when it completes the count." },
            },
        },
        "ProtectionBody": {
            "type": "object",
            "required": ["requiredApprovals"],
            "additionalProperties": false,
            "properties": {
                "requiredApprovals": { "type": "integer", "minimum": 0, "maximum": 100 },
                "allowSelfApproval": { "type": "boolean" },
                "reason": string(),
            },
        },
        "Protection": {
            "type": "object",
            "required": ["environment", "requiredApprovals", "allowSelfApproval", "version"],
            "properties": {
                "environment": string(),
                "requiredApprovals": { "type": "integer", "minimum": 0 },
                "allowSelfApproval": { "type": "boolean" },
                "version": int64(),
            },
        },
        "ChangePayload": {
            "type": "object",
            "description": "The write: `kind` is one of flag.create, flag.update (`key`, `definition`), flag.delete (`key`), flag.restore (`key`, `environment`), segment.update (`name`, `definition`), segment.delete (`name`), rollout.command (`rollout`, `command`: start, resume or promote), environment.protect (`name`, `protection`).",
            "required": ["kind"],
            "properties": {
                "kind": { "enum": ["flag.create", "flag.update", "flag.delete", "flag.restore", "segment.update", "segment.delete", "rollout.command", "environment.protect"] },
                "key": string(),
                "name": string(),
                "definition": any.clone(),
                "environment": { "type": ["string", "null"] },
                "rollout": string(),
                "command": { "enum": ["start", "resume", "promote"] },
                "protection": any.clone(),
            },
        },
        "ChangeRequestCreate": {
            "type": "object",
            "required": ["payload"],
            "additionalProperties": false,
            "properties": { "payload": schema("ChangePayload"), "reason": string() },
        },
        "ChangeRequest": {
            "type": "object",
            "required": ["id", "kind", "resource", "payload", "baseVersion", "author", "requirement", "approvals", "status", "createdMs", "updatedMs", "version", "approvalsNeeded"],
            "properties": {
                "id": string(),
                "kind": string(),
                "resource": { "type": "string", "description": "As the audit log names it: `flag:<key>`, `segment:<name>`, `rollout:<id>`, `environment:<name>`." },
                "payload": schema("ChangePayload"),
                "baseVersion": { "type": "integer", "description": "The resource's version (a rollout's transition seq; 0 for a flag not yet created) when requested. Applying fails with 409 when it moved." },
                "author": string(),
                "reason": { "type": ["string", "null"] },
                "requirement": requirement,
                "approvals": { "type": "array", "items": { "type": "object", "properties": { "actor": string(), "atMs": millis("When.") } } },
                "status": { "enum": ["pending", "approved", "rejected", "applied"] },
                "resolvedBy": { "type": ["string", "null"] },
                "appliedVersion": { "type": ["integer", "null"] },
                "createdMs": millis("When filed."),
                "updatedMs": millis("When last changed."),
                "version": int64(),
                "approvalsNeeded": { "type": "integer", "minimum": 0 },
            },
        },
        "ChangeRequestFiled": {
            "type": "object",
            "required": ["changeRequest"],
            "properties": {
                "changeRequest": schema("ChangeRequest"),
                "rollout": { "description": "For a rollout created pending in a protected environment.", "type": "object" },
            },
        },
        "ChangeRequestList": {
            "type": "object",
            "required": ["changeRequests"],
            "properties": { "changeRequests": { "type": "array", "items": schema("ChangeRequest") } },
        },
        "StaleReport": {
            "type": "object",
            "required": ["days", "at", "flags"],
            "properties": {
                "days": { "type": "integer" },
                "at": millis("The time classified at."),
                "flags": { "type": "array", "items": {
                    "type": "object",
                    "required": ["key", "stage", "reasons", "serving"],
                    "properties": {
                        "key": string(),
                        "stage": { "enum": ["active", "rolled-out", "stale", "archived"] },
                        "reasons": { "type": "array", "items": {
                            "type": "object",
                            "required": ["reason", "message"],
                            "properties": {
                                "reason": { "enum": ["settled", "not-evaluated", "expired"] },
                                "message": string(),
                                "days": { "type": "integer" },
                                "lastChangedMs": { "type": "integer" },
                                "lastEvaluatedMs": { "type": ["integer", "null"] },
                                "expires": string(),
                            },
                        } },
                        "serving": { "type": "object", "description": "Per environment: `{serves: off}`, `{serves: everyone, variant}` or `{serves: mixed}`.", "additionalProperties": any.clone() },
                        "createdMs": int64(),
                        "lastChangedMs": int64(),
                        "lastEvaluatedMs": { "type": ["integer", "null"] },
                        "archivedMs": { "type": ["integer", "null"] },
                        "expires": { "type": ["string", "null"] },
                        "owner": { "type": ["string", "null"] },
                    },
                } },
            },
        },
        "ArchiveResult": {
            "type": "object",
            "required": ["key", "archived", "configVersion"],
            "properties": {
                "key": string(),
                "archived": { "type": "boolean" },
                "archivedMs": { "type": ["integer", "null"] },
                "configVersion": int64(),
            },
        },
    })
}

/// The operations a protected environment turns into change requests.
const GATED: [&str; 10] = [
    "createFlag",
    "updateFlag",
    "deleteFlag",
    "restoreFlag",
    "updateSegment",
    "deleteSegment",
    "createRollout",
    "startRollout",
    "resumeRollout",
    "promoteRollout",
];

/// Adds the 202 answer to every gated operation of `paths`.
pub(super) fn mark_gated(paths: &mut serde_json::Map<String, Value>) {
    for item in paths.values_mut() {
        let Value::Object(methods) = item else {
            continue;
        };
        for operation in methods.values_mut() {
            let gated = operation
                .get("operationId")
                .and_then(Value::as_str)
                .is_some_and(|id| GATED.contains(&id));
            if gated && let Some(Value::Object(responses)) = operation.get_mut("responses") {
                responses.insert("202".into(), accepted());
            }
        }
    }
}
