//! The benchmark workload: 200 flags, built equivalently for Sluice and for
//! `unleash-yggdrasil`, used by `benches/evaluation.rs` and the SDK benchmarks.
//!
//! A quarter each of a boolean flag on without rules (workload (a), [`STATIC_FLAG`]), one
//! switched off, one with segment membership (an `ends_with` on `email`), a semver condition
//! and a 10% split (workload (b), [`TARGETED_FLAG`]; for Unleash a `flexibleRollout` at 10%
//! with a segment and a `SEMVER_LT` constraint), and a 50/50 string experiment. The context
//! matches the segment and the version condition, so (b) runs every condition and the split.

use std::collections::HashMap;

use serde_json::{Value, json};
use sluice_core::Context;
use unleash_yggdrasil::{ClientFeatures, EngineState};

/// The flag of workload (a): on, no rules.
pub const STATIC_FLAG: &str = "static-0";
/// The flag of workload (b): segment, semver and a 10% split.
pub const TARGETED_FLAG: &str = "targeted-0";
/// How many flags the set holds.
pub const FLAGS: usize = 200;

/// The two workloads, by name, label and flag.
pub const WORKLOADS: [(&str, &str, &str); 2] = [
    ("a_no_rules", "(a) boolean flag, no rules", STATIC_FLAG),
    (
        "b_three_rules",
        "(b) segment + semver + 10% split",
        TARGETED_FLAG,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Static,
    Disabled,
    Targeted,
    Experiment,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::Static,
        Kind::Disabled,
        Kind::Targeted,
        Kind::Experiment,
    ];

    fn prefix(self) -> &'static str {
        match self {
            Kind::Static => "static",
            Kind::Disabled => "disabled",
            Kind::Targeted => "targeted",
            Kind::Experiment => "experiment",
        }
    }
}

fn flag_names(count: usize) -> Vec<(String, Kind)> {
    (0..count)
        .map(|i| {
            let kind = Kind::ALL[i % Kind::ALL.len()];
            (format!("{}-{}", kind.prefix(), i / Kind::ALL.len()), kind)
        })
        .collect()
}

/// The Sluice flags document, as JSON (no environments: every environment serves the base
/// definitions).
pub fn sluice_document() -> Value {
    let boolean_variants = json!({ "on": true, "off": false });
    let definitions: serde_json::Map<String, Value> = flag_names(FLAGS)
        .into_iter()
        .map(|(name, kind)| {
            let definition = match kind {
                Kind::Static => json!({
                    "type": "boolean",
                    "variants": boolean_variants,
                    "default_variant": "on",
                }),
                Kind::Disabled => json!({
                    "type": "boolean",
                    "variants": boolean_variants,
                    "default_variant": "on",
                    "off_variant": "off",
                    "enabled": false,
                }),
                Kind::Targeted => json!({
                    "type": "boolean",
                    "variants": boolean_variants,
                    "default_variant": "off",
                    "rules": [{
                        "name": "staff-on-old-apps",
                        "when": [
                            { "segment": "staff" },
                            { "attribute": "app.version", "op": "semver_lt", "value": "2.0.0" },
                        ],
                        "split": [
                            { "variant": "on", "weight": 10_000 },
                            { "variant": "off", "weight": 90_000 },
                        ],
                    }],
                }),
                Kind::Experiment => json!({
                    "type": "string",
                    "variants": { "control": "control", "treatment": "treatment" },
                    "default_variant": "control",
                    "rules": [{
                        "split": [
                            { "variant": "control", "weight": 50_000 },
                            { "variant": "treatment", "weight": 50_000 },
                        ],
                    }],
                }),
            };
            (name, definition)
        })
        .collect();
    json!({
        "segments": {
            "staff": {
                "when": [{ "attribute": "email", "op": "ends_with", "value": "@example.com" }],
            },
        },
        "flags": definitions,
    })
}

/// yggdrasil loaded with the equivalent Unleash features.
pub fn unleash_engine() -> Result<EngineState, String> {
    let features: Vec<Value> = flag_names(FLAGS)
        .into_iter()
        .map(|(name, kind)| match kind {
            Kind::Static => json!({
                "name": name,
                "enabled": true,
                "strategies": [{ "name": "default", "parameters": {} }],
            }),
            Kind::Disabled => json!({
                "name": name,
                "enabled": false,
                "strategies": [{ "name": "default", "parameters": {} }],
            }),
            Kind::Targeted => json!({
                "name": name,
                "enabled": true,
                "strategies": [{
                    "name": "flexibleRollout",
                    "parameters": { "rollout": "10", "stickiness": "default", "groupId": name },
                    "segments": [1],
                    "constraints": [
                        { "contextName": "appVersion", "operator": "SEMVER_LT", "value": "2.0.0" },
                    ],
                }],
            }),
            Kind::Experiment => json!({
                "name": name,
                "enabled": true,
                "strategies": [{ "name": "default", "parameters": {} }],
                "variants": [
                    { "name": "control", "weight": 500, "stickiness": "default",
                      "payload": { "type": "string", "value": "control" } },
                    { "name": "treatment", "weight": 500, "stickiness": "default",
                      "payload": { "type": "string", "value": "treatment" } },
                ],
            }),
        })
        .collect();
    let document = json!({
        "version": 2,
        "features": features,
        "segments": [{
            "id": 1,
            "constraints": [
                { "contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@example.com"] },
            ],
        }],
        "query": null,
    });
    let features: ClientFeatures = serde_json::from_value(document)
        .map_err(|error| format!("the Unleash features do not parse: {error}"))?;
    let engine = EngineState::default();
    if let Some(warnings) = engine.apply_client_features(features) {
        let messages: Vec<String> = warnings.into_iter().map(|w| w.message).collect();
        return Err(format!(
            "yggdrasil rejected the features: {}",
            messages.join("; ")
        ));
    }
    Ok(engine)
}

/// The context for both engines: it matches the segment and the semver condition.
pub fn contexts() -> (Context, unleash_yggdrasil::Context) {
    contexts_for("user-4711", "ada@example.com", "1.4.2")
}

fn contexts_for(key: &str, email: &str, version: &str) -> (Context, unleash_yggdrasil::Context) {
    let sluice = Context::with_key(key)
        .set("email", email)
        .set("app", json!({ "version": version }));
    let unleash = unleash_yggdrasil::Context {
        user_id: Some(key.to_owned()),
        properties: Some(HashMap::from([
            ("email".to_owned(), email.to_owned()),
            ("appVersion".to_owned(), version.to_owned()),
        ])),
        ..unleash_yggdrasil::Context::default()
    };
    (sluice, unleash)
}

/// Checks that `sluice` (any evaluation of a boolean flag) and yggdrasil agree on the static
/// and disabled flags for 1,000 contexts, and serve the targeted flag only through its gates,
/// to roughly 10% of those who pass them.
pub fn check_agreement(
    sluice: impl Fn(&str, &Context) -> bool,
    unleash: &EngineState,
) -> Result<(), String> {
    let (mut gated, mut ours_on, mut theirs_on) = (0_u32, 0_u32, 0_u32);
    for i in 0..1_000 {
        let email = if i % 3 == 0 {
            "x@elsewhere.org"
        } else {
            "x@example.com"
        };
        let version = if i % 5 == 0 { "2.1.0" } else { "1.9.9" };
        let (ours_context, theirs_context) = contexts_for(&format!("user-{i}"), email, version);
        let passes = email.ends_with("@example.com") && version.starts_with('1');
        gated += u32::from(passes);
        for flag in [STATIC_FLAG, "disabled-0", TARGETED_FLAG] {
            let ours = sluice(flag, &ours_context);
            let theirs = unleash.is_enabled(flag, &theirs_context, &None);
            let consistent = if flag == TARGETED_FLAG {
                ours_on += u32::from(ours);
                theirs_on += u32::from(theirs);
                passes || (!ours && !theirs)
            } else {
                ours == theirs
            };
            if !consistent {
                return Err(format!(
                    "engines disagree on {flag} for user-{i}: {ours} vs {theirs}"
                ));
            }
        }
    }
    let plausible = gated / 20..gated / 5;
    if !plausible.contains(&ours_on) || !plausible.contains(&theirs_on) {
        return Err(format!(
            "the 10% split is off: of {gated} gated keys, Sluice served {ours_on} and yggdrasil {theirs_on}"
        ));
    }
    Ok(())
}
