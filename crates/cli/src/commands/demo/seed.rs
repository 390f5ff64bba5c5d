//! Seeding the demo through the admin API, as a person would with curl or the CLI: the
//! audience segments, the flag the change ships dark behind, the release with its
//! provenance and filled checklist, a server token for the applications, and the rollout.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::scenario::{ENV, FLAG, RELEASE, plan};
use crate::client::Client;

/// The segments the plan's first two stages target.
pub const SEGMENTS: [(&str, &str); 2] = [("internal", "staff"), ("beta-testers", "beta_opt_in")];

fn post(client: &Client, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
    let reply = client
        .post_value(segments, body, Some("sluice demo"))
        .with_context(|| format!("seeding /{}", segments.join("/")))?;
    Ok(reply.json)
}

/// The flag: a boolean whose `control` variant (the old checkout) everyone gets until the
/// rollout starts, so the new code ships dark.
pub fn flag() -> Value {
    json!({
        "type": "boolean",
        "description": "The one-page checkout (release checkout-v2).",
        "variants": {"control": false, "treatment": true},
        "default_variant": "control",
        "off_variant": "control"
    })
}

/// The release: AI-assisted, high risk, with every checklist field written.
pub fn release() -> Value {
    json!({
        "name": RELEASE,
        "description": "The one-page checkout, behind new-checkout.",
        "flags": [FLAG],
        "provenance": {
            "kind": "ai-assisted",
            "tool": "a code assistant",
            "link": "https://git.example.com/shop/pull/412",
            "reviewer": "ana"
        },
        "risk": "high",
        "rollback": {
            "kind": "git-revert",
            "commit": "4f2a9c1",
            "steps": [
                "sluice flags kill new-checkout --env production",
                "git revert 4f2a9c1 and deploy"
            ],
            "expected_time_to_restore": "10m",
            "data_at_risk": "none; orders are written by the old path",
            "on_call": "ana (payments)"
        },
        "known_limitations": ["gift cards are not accepted yet"],
        "escalation": ["ana, payments on-call", "payments lead"],
        "audience": "beta-testers"
    })
}

/// Creates the segments, the flag and the release, records monitoring evidence, and
/// returns a server token for the applications' SDKs.
pub fn seed(client: &Client, console: &str) -> anyhow::Result<String> {
    for (segment, attribute) in SEGMENTS {
        post(
            client,
            &["api", "v1", "segments", segment],
            &json!({"when": [{"attribute": attribute, "op": "eq", "value": true}]}),
        )?;
    }
    post(client, &["api", "v1", "flags", FLAG], &flag())?;
    post(client, &["api", "v1", "releases"], &release())?;
    post(
        client,
        &["api", "v1", "releases", RELEASE, "evidence"],
        &json!({
            "item": "monitoring",
            "text": "error rate and p95 latency guardrails on every stage",
            "link": console,
        }),
    )?;
    let token = post(
        client,
        &["api", "v1", "tokens"],
        &json!({"name": "demo-checkout-service", "scope": "server", "environment": ENV}),
    )?;
    token["secret"]
        .as_str()
        .map(str::to_owned)
        .context("the server did not return the new token's secret")
}

/// The release's checklist as the gate sees it now.
pub fn checklist(client: &Client) -> anyhow::Result<Value> {
    Ok(client
        .get_json(&["api", "v1", "releases", RELEASE, "checklist"], &[])
        .context("reading the release checklist")?
        .json)
}

/// Starts the time-compressed rollout; returns its id.
pub fn start_rollout(client: &Client) -> anyhow::Result<Value> {
    let reply = client
        .create_rollout(&json!({
            "flag": FLAG,
            "env": ENV,
            "plan": plan(),
            "treatment": "treatment",
            "control": "control",
            "reason": "ship checkout-v2 (sluice demo)"
        }))
        .context("starting the rollout")?;
    Ok(reply.json)
}
