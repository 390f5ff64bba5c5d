//! The flag targeting a rollout writes, compiled and evaluated by the real engine: shares,
//! stickiness, rollback, kill, and that the flag's own rules and other environments survive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sluice_core::model::FlagDef;
use sluice_core::rollout::{
    Command, Exposure, RULE_PREFIX, RolloutState, Status, Template, apply, command,
};
use sluice_core::{Context, Engine, FlagFile, Reason, compile};

const ENV: &str = "production";
const KEYS: usize = 100_000;

fn flag() -> FlagDef {
    serde_json::from_value(json!({
        "type": "string",
        "variants": { "new": "new", "old": "old", "legacy": "legacy" },
        "default_variant": "old",
        "rules": [
            { "name": "legacy browsers", "when": [{ "attribute": "legacy", "op": "eq", "value": true }], "serve": "legacy" }
        ],
    }))
    .unwrap()
}

fn engine(flag: FlagDef, env: &str) -> Engine {
    let mut file: FlagFile = serde_json::from_value(json!({
        "segments": { "internal": { "include": ["staff-1", "staff-2"] } },
    }))
    .unwrap();
    file.flags.insert("checkout".into(), flag);
    compile(&file, Some(env)).unwrap()
}

fn state_at(stage: usize) -> RolloutState {
    let mut state = RolloutState::new(Template::Standard.plan(), "checkout", ENV, "new", "old");
    state.status = Status::Running;
    state.stage = stage;
    state
}

fn variant(engine: &Engine, context: &Context) -> String {
    engine
        .evaluate("checkout", context)
        .variant
        .unwrap_or("<none>")
        .to_owned()
}

fn treated(engine: &Engine) -> Vec<bool> {
    (0..KEYS)
        .map(|i| variant(engine, &Context::with_key(format!("user-{i}"))) == "new")
        .collect()
}

#[test]
fn each_stage_gives_its_share_and_keeps_contexts_on_the_new_path() {
    let ten = engine(state_at(2).targeting(&flag()), ENV);
    let fifty = engine(state_at(3).targeting(&flag()), ENV);
    let at_ten = treated(&ten);
    let at_fifty = treated(&fifty);
    let share = |v: &[bool]| v.iter().filter(|t| **t).count() as f64 / KEYS as f64;
    assert!((share(&at_ten) - 0.10).abs() < 0.005, "{}", share(&at_ten));
    assert!(
        (share(&at_fifty) - 0.50).abs() < 0.005,
        "{}",
        share(&at_fifty)
    );
    // Sticky and monotonic: everyone on the new path at 10% is still there at 50%.
    assert!(
        at_ten
            .iter()
            .zip(&at_fifty)
            .all(|(ten, fifty)| !ten || *fifty)
    );
    // Earlier audiences stay on the new path.
    for context in [
        Context::with_key("staff-1"),
        Context::with_key("user-x").set("beta_opt_in", true),
    ] {
        assert_eq!(variant(&ten, &context), "new");
    }
}

#[test]
fn the_first_stage_reaches_only_its_audience_and_the_flag_rules_follow() {
    let engine = engine(state_at(0).targeting(&flag()), ENV);
    assert_eq!(variant(&engine, &Context::with_key("staff-2")), "new");
    assert_eq!(variant(&engine, &Context::with_key("user-1")), "old");
    // The flag's own rule still applies to everyone outside the rollout's audiences.
    assert_eq!(
        variant(&engine, &Context::with_key("user-1").set("legacy", true)),
        "legacy"
    );
    assert!(treated(&engine).iter().all(|t| !t));
}

#[test]
fn after_a_rollback_nobody_gets_the_new_variant() {
    let started = state_at(3);
    let transition = command(
        &started,
        0,
        Command::Rollback {
            reason: "errors".into(),
            actor: "ada".into(),
        },
    )
    .unwrap();
    assert_eq!(transition.exposure, Some(Exposure::rolled_back()));
    let rolled_back = apply(&started, &transition).unwrap();
    let flag = rolled_back.targeting(&started.targeting(&flag()));
    let engine = engine(flag, ENV);
    assert!(treated(&engine).iter().all(|t| !t));
    for context in [
        Context::with_key("staff-1"),
        Context::with_key("user-x").set("beta_opt_in", true),
        Context::with_key("user-y").set("legacy", true),
    ] {
        assert_eq!(variant(&engine, &context), "old");
    }
}

#[test]
fn a_kill_turns_the_flag_off_in_its_environment_only() {
    let mut state = state_at(2);
    state.status = Status::Killed {
        reason: "incident".into(),
    };
    let flag = state.targeting(&flag());
    let killed = engine(flag.clone(), ENV);
    let evaluation = killed.evaluate("checkout", &Context::with_key("staff-1"));
    assert_eq!(evaluation.reason, Reason::Disabled);
    assert_ne!(evaluation.variant, Some("new"));
    // Staging is untouched: no rollout rules, still on.
    let staging = engine(flag, "staging");
    assert_eq!(variant(&staging, &Context::with_key("staff-1")), "old");
}

#[test]
fn applying_is_idempotent_and_replaces_earlier_rollout_rules() {
    let once = state_at(2).targeting(&flag());
    let twice = state_at(2).targeting(&once);
    assert_eq!(once, twice);
    let later = state_at(3).targeting(&once);
    let rules = later.environments[ENV].rules.as_ref().unwrap();
    let names: Vec<&str> = rules.iter().filter_map(|r| r.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            "rollout: internal",
            "rollout: beta_opt_in",
            "rollout: everyone",
            "legacy browsers"
        ]
    );
    assert!(names[..3].iter().all(|n| n.starts_with(RULE_PREFIX)));
    // The base definition is untouched; only the environment's override changes.
    assert_eq!(later.rules, flag().rules);
    // A pending rollout leaves a flag it never touched exactly as it was.
    let pending = RolloutState::new(Template::Standard.plan(), "checkout", ENV, "new", "old");
    assert_eq!(pending.targeting(&flag()), flag());
    // ... and removes its rules from one it did.
    let cleared = pending.targeting(&once);
    assert_eq!(
        cleared.environments[ENV].rules.as_ref().unwrap(),
        &flag().rules
    );
}
