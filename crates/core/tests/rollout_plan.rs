//! Rollout plans: parsing, validation with located messages, templates, policy, exposure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_core::model::{Provenance, Risk};
use sluice_core::rollout::{
    Audience, Direction, FailurePolicy, Gate, Metric, Percentage, RolloutPlan, Template, Tolerance,
    ToleranceUnit, format_duration, parse_duration, policy,
};
use sluice_core::{Format, Source};

fn parse(text: &str) -> RolloutPlan {
    RolloutPlan::parse(Some("plan.yaml"), text, Format::Yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// Every error, as the CLI would print it.
fn errors(text: &str) -> Vec<String> {
    match RolloutPlan::parse(Some("plan.yaml"), text, Format::Yaml) {
        Ok(plan) => panic!("expected errors, parsed {plan:?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

const PLAN: &str = r#"
name: checkout-v2
stages:
  - name: staff
    audience: { segment: internal }
    percent: 100
    bake: 30m
    min_samples: 50
    gate: no_failure
  - audience: { attribute: beta_opt_in, op: eq, value: true }
    percent: "50%"
    bake: 1h30m
  - percent: 0.5
    bake: 7200
    approvals: 1
  - percent: 100
    bake: 0s
guardrails:
  - metric: error_rate
    tolerance: 10% or 0.1pp
  - metric: latency_p95
    tolerance: 20ms
  - metric: event_rate{checkout}
    direction: higher_is_better
    tolerance: 5%
  - metric: event_mean{order_value}
    direction: higher_is_better
    tolerance: 2.5
on_failure: pause
max_hold: 12h
alpha: 0.01
"#;

#[test]
fn a_plan_parses_with_its_defaults() {
    let plan = parse(PLAN);
    assert_eq!(plan.name.as_deref(), Some("checkout-v2"));
    assert_eq!(plan.stages.len(), 4);
    let staff = &plan.stages[0];
    assert_eq!(staff.audience, Audience::segment("internal"));
    assert_eq!(staff.percent, Percentage::ALL);
    assert_eq!(staff.bake, Duration::from_secs(1800));
    assert_eq!(staff.min_samples, 50);
    assert_eq!(staff.gate, Gate::NoFailure);
    assert_eq!(plan.stages[1].percent.weight(), 50_000);
    assert_eq!(plan.stages[1].bake, Duration::from_secs(5400));
    assert_eq!(plan.stages[1].min_samples, 1000, "the default");
    assert_eq!(plan.stages[2].percent.weight(), 500);
    assert_eq!(plan.stages[2].bake, Duration::from_secs(7200));
    assert_eq!(plan.stages[2].approvals, 1);
    assert_eq!(plan.stages[2].audience, Audience::Everyone);
    assert_eq!(plan.stages[2].label(), "0.5%");
    assert_eq!(plan.stages[1].label(), "50% of beta_opt_in");
    assert_eq!(plan.on_failure, FailurePolicy::Pause);
    assert_eq!(plan.max_hold, Duration::from_secs(12 * 3600));
    assert_eq!(plan.alpha, 0.01);
    assert_eq!(plan.tuning, 5000.0, "the default");

    let error_rate = &plan.guardrails[0];
    assert_eq!(error_rate.direction(), Direction::LowerIsBetter);
    assert_eq!(error_rate.tolerance.relative, Some(0.1));
    assert_eq!(
        error_rate.tolerance.absolute,
        Some((0.001, ToleranceUnit::Points))
    );
    assert_eq!(
        error_rate.tolerance.margin(0.02),
        0.002,
        "10% of 2% beats 0.1 pp"
    );
    assert_eq!(
        error_rate.tolerance.margin(0.005),
        0.001,
        "0.1 pp beats 10% of 0.5%"
    );
    assert_eq!(plan.guardrails[1].metric, Metric::LatencyP95);
    assert_eq!(
        plan.guardrails[1].tolerance,
        Tolerance::absolute(20.0, ToleranceUnit::Millis)
    );
    assert_eq!(
        plan.guardrails[2].metric,
        Metric::EventRate("checkout".into())
    );
    assert_eq!(plan.guardrails[2].direction(), Direction::HigherIsBetter);
    assert_eq!(
        plan.guardrails[3].tolerance,
        Tolerance::absolute(2.5, ToleranceUnit::Plain)
    );
}

#[test]
fn plans_round_trip_through_yaml_and_json() {
    let plan = parse(PLAN);
    let yaml = yaml_serde::to_string(&plan).unwrap();
    assert_eq!(
        RolloutPlan::parse(None, &yaml, Format::Yaml).unwrap(),
        plan,
        "{yaml}"
    );
    let json = serde_json::to_string_pretty(&plan).unwrap();
    assert_eq!(
        RolloutPlan::parse(None, &json, Format::Json).unwrap(),
        plan,
        "{json}"
    );
    assert!(json.contains(r#""bake": "1h30m""#), "{json}");
    assert!(json.contains(r#""tolerance": "10% or 0.1pp""#), "{json}");
    assert!(json.contains(r#""percent": 0.5"#), "{json}");
    for template in Template::ALL {
        let plan = template.plan();
        let yaml = yaml_serde::to_string(&plan).unwrap();
        assert_eq!(
            RolloutPlan::parse(None, &yaml, Format::Yaml).unwrap(),
            plan,
            "{yaml}"
        );
    }
}

#[test]
fn guardrails_default_when_left_out() {
    let plan = parse("stages:\n  - percent: 100\n");
    let metrics: Vec<String> = plan
        .guardrails
        .iter()
        .map(|g| g.metric.to_string())
        .collect();
    assert_eq!(metrics, ["error_rate", "crash_rate", "latency_p99"]);
    assert_eq!(plan.stages[0].bake, Duration::from_secs(3600));
}

#[test]
fn invalid_plans_report_every_problem_with_its_place() {
    let text = r#"
stages:
  - audience: internal
    percent: 10
  - audience: { attribute: beta_opt_in, op: matches, value: "(" }
    percent: 100
  - percent: 20
    bake: 2x
  - percent: 0
  - percent: 50
    colour: red
guardrails:
  - metric: error_rat
    tolerance: 1%
  - metric: latency_p99
    tolerance: 10%%
"#;
    assert_eq!(
        errors(text),
        [
            "plan.yaml:3:5: stages[0].audience: unknown audience `internal`: write `everyone`, `{ segment: internal }`, or a condition",
            "plan.yaml:8:5: stages[2].bake: `2x` is not a duration; write a duration such as `30m`, `2h`, `1h30m`, `1d` or a number of seconds",
            "plan.yaml:9:5: stages[3].percent: a percentage must be greater than 0 and at most 100, not 0",
            "plan.yaml:11:5: stages[4].colour: unknown field `colour`, expected one of `name`, `audience`, `percent`, `bake`, `min_samples`, `approvals`, `gate`",
            "plan.yaml:13:5: guardrails[0].metric: unknown metric `error_rat`; expected `error_rate`, `crash_rate`, `latency_p50`, `latency_p95`, `latency_p99`, `event_rate{EVENT}`, `event_mean{EVENT}` or `shadow_mismatch_rate`",
            "plan.yaml:16:5: guardrails[1].tolerance: `10%%` is not a tolerance; write `10%`, `0.5pp`, `20ms` or a number",
        ]
    );
}

#[test]
fn semantic_problems_are_located_too() {
    let text = r#"
stages:
  - audience: { attribute: beta_opt_in, op: matches, value: "(" }
    percent: 100
  - percent: 50
  - percent: 20
  - audience: [{ segment: "bad key!" }]
    percent: 10
    approvals: 11
  - percent: 100
  - name: after
    percent: 100
guardrails:
  - metric: error_rate
    direction: higher_is_better
    tolerance: 20ms
  - metric: event_rate{checkout}
    tolerance: 150pp
  - metric: error_rate
    tolerance: 1%
alpha: 0.7
max_hold: 0
"#;
    assert_eq!(
        errors(text),
        [
            r#"plan.yaml:3:54: stages[0].audience.value: "(" is not a valid regex: unclosed group"#,
            "plan.yaml:6:5: stages[2].percent: 20% is less than the 50% stage 1 already gives everyone; a rollout only widens",
            "plan.yaml:7:18: stages[3].audience[0].segment: `bad key!` is not a valid key: use letters, digits, `-`, `_` and `.`, starting with a letter, digit or `_`",
            "plan.yaml:9:5: stages[3].approvals: at most 10 approvals can be required, not 11",
            "plan.yaml:10:5: stages[4]: this stage already sends everyone to the new path, so it must be the last",
            "plan.yaml:15:5: guardrails[0].direction: `error_rate` is always lower_is_better",
            "plan.yaml:16:5: guardrails[0].tolerance: `error_rate` is not measured in milliseconds",
            "plan.yaml:17:5: guardrails[1].direction: `event_rate{checkout}` needs a direction: `lower_is_better` or `higher_is_better`",
            "plan.yaml:18:5: guardrails[1].tolerance: a rate cannot worsen by 1.5 or more; write percentage points, such as `0.5pp`",
            "plan.yaml:19:5: guardrails[2].metric: `error_rate` is already judged by guardrail 0",
            "plan.yaml:21:1: alpha: alpha must be between 0 and 0.5, not 0.7",
            "plan.yaml:22:1: max_hold: max_hold must be longer than 0s: a stage with no data must hold before it pauses",
        ]
    );
}

#[test]
fn the_last_stage_must_reach_everyone() {
    assert_eq!(
        errors("stages:\n  - percent: 10\n  - percent: 50\n"),
        [
            "plan.yaml:3:5: stages[1]: the last stage must send everyone to the new path (`percent: 100` with audience `everyone`), not 50%"
        ]
    );
    assert_eq!(
        errors("stages:\n  - audience: { segment: beta }\n    percent: 100\n"),
        [
            "plan.yaml:2:5: stages[0]: the last stage must send everyone to the new path (`percent: 100` with audience `everyone`), not beta"
        ]
    );
    assert_eq!(
        errors("stages: []\n"),
        ["plan.yaml:1:1: stages: a plan needs at least one stage"]
    );
    assert_eq!(
        errors("name: x\n"),
        ["plan.yaml:1:1: (root): missing field `stages`"]
    );
    assert_eq!(
        errors("stages:\n  - percent: 100\nguardrails: []\n"),
        [
            "plan.yaml:3:1: guardrails: a plan needs at least one guardrail; leave `guardrails` out for the defaults"
        ]
    );
}

#[test]
fn percentages_are_thousandths_of_a_percent() {
    assert_eq!(
        errors("stages:\n  - percent: 0.0001\n  - percent: 100\n"),
        [
            "plan.yaml:2:5: stages[0].percent: 0.0001% is finer than the 0.001% steps rollouts move in"
        ]
    );
    assert_eq!(Percentage::from_percent(12.345).unwrap().weight(), 12_345);
    assert_eq!(Percentage::from_percent(100.0).unwrap(), Percentage::ALL);
    assert!(Percentage::from_percent(100.5).is_err());
    assert!(Percentage::from_weight(0).is_none());
    assert_eq!(Percentage::from_weight(250).unwrap().to_string(), "0.25%");
}

#[test]
fn audience_segments_are_checked_against_the_flags_file() {
    let plan = parse(
        "stages:\n  - audience: { segment: internal }\n    percent: 100\n  - audience: [{ segment: beta }, { attribute: country, op: in, values: [NZ, AU] }]\n    percent: 100\n  - percent: 100\n",
    );
    let flags = Source::parse(
        None,
        "flags: {}\nsegments:\n  internal:\n    include: [ada]\n",
        Format::Yaml,
    )
    .unwrap();
    let sluice_core::Document::Sluice(file) = flags.document() else {
        panic!()
    };
    let found: Vec<String> = plan
        .validate_for(file)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        ["stages[1].audience[0].segment: no segment is named `beta`"]
    );
    assert!(
        plan.validate().is_ok(),
        "on its own, segment names are only checked for syntax"
    );
}

#[test]
fn durations() {
    for (text, seconds) in [
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86_400),
        ("45s", 45),
        ("90", 90),
        ("1w", 604_800),
        ("1h 30m", 5400),
    ] {
        assert_eq!(
            parse_duration(text).unwrap(),
            Duration::from_secs(seconds),
            "{text}"
        );
    }
    for text in [
        "",
        "h",
        "2x",
        "1.5h",
        "-1h",
        "1h30",
        "99999999999999999999w",
    ] {
        assert!(parse_duration(text).is_err(), "{text}");
    }
    assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    assert_eq!(format_duration(Duration::from_secs(90_061)), "1d1h1m1s");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn tolerances() {
    assert_eq!(Tolerance::parse("10%").unwrap(), Tolerance::relative(0.1));
    assert_eq!(
        Tolerance::parse("0.5pp").unwrap(),
        Tolerance::absolute(0.005, ToleranceUnit::Points)
    );
    assert_eq!(
        Tolerance::parse("1.5s").unwrap(),
        Tolerance::absolute(1500.0, ToleranceUnit::Millis)
    );
    assert_eq!(
        Tolerance::parse("20ms or 10%").unwrap(),
        Tolerance::relative(0.1).or_absolute(20.0, ToleranceUnit::Millis)
    );
    assert_eq!(
        Tolerance::relative(0.1)
            .or_absolute(20.0, ToleranceUnit::Millis)
            .to_string(),
        "10% or 20ms"
    );
    assert!(Tolerance::parse("10% or 5%").is_err());
    assert!(Tolerance::parse("0%").is_err());
    assert!(Tolerance::parse("1pp or 2ms").is_err());
}

#[test]
fn templates_are_valid_and_shaped_as_documented() {
    let standard = Template::Standard.plan();
    standard.validate().unwrap();
    let labels: Vec<String> = standard.stages.iter().map(|s| s.label()).collect();
    assert_eq!(labels, ["internal", "beta_opt_in", "10%", "50%", "100%"]);
    let cautious = Template::Cautious.plan();
    cautious.validate().unwrap();
    let labels: Vec<String> = cautious.stages.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        [
            "internal",
            "beta_opt_in",
            "1%",
            "5%",
            "10%",
            "25%",
            "50%",
            "100%"
        ]
    );
    for plan in [&standard, &cautious] {
        assert_eq!(plan.stages[0].gate, Gate::NoFailure);
        assert_eq!(plan.stages[1].gate, Gate::NoFailure);
        assert!(plan.stages[2..].iter().all(|s| s.gate == Gate::Pass));
        assert_eq!(plan.on_failure, FailurePolicy::Rollback);
        assert_eq!(plan.guardrails.len(), 3);
    }
    let total = |plan: &RolloutPlan| plan.stages.iter().map(|s| s.bake).sum::<Duration>();
    assert!(total(&cautious) > total(&standard) * 2);
    assert_eq!(Template::from_name("cautious"), Some(Template::Cautious));
    assert_eq!(Template::from_name("reckless"), None);
}

#[test]
fn policy_picks_stricter_plans_for_riskier_changes() {
    let human_low = policy(Provenance::Human, Risk::Low);
    assert_eq!(
        (
            human_low.template,
            human_low.bake_percent,
            human_low.approvals
        ),
        (Template::Standard, 100, 0)
    );
    assert_eq!(human_low.plan(), {
        let mut plan = Template::Standard.plan();
        plan.description = human_low.plan().description;
        plan
    });

    let ai_high = policy(Provenance::AiAssisted, Risk::High);
    assert_eq!(ai_high.template, Template::Cautious);
    assert_eq!(
        (
            ai_high.bake_percent,
            ai_high.samples_percent,
            ai_high.approvals
        ),
        (200, 200, 2)
    );
    assert_eq!(
        ai_high.reason,
        "ai-assisted change, high risk: the cautious template, bakes ×2, samples ×2, 2 approvals before everyone-stages open and before 100%."
    );
    let plan = ai_high.plan();
    plan.validate().unwrap();
    let base = Template::Cautious.plan();
    for (stage, original) in plan.stages.iter().zip(&base.stages) {
        assert_eq!(stage.bake, original.bake * 2);
        assert_eq!(stage.min_samples, original.min_samples * 2);
    }
    let approvals: Vec<u32> = plan.stages.iter().map(|s| s.approvals).collect();
    assert_eq!(approvals, [0, 0, 2, 0, 0, 0, 0, 2]);

    // Every combination gives a valid plan, and strictness never drops as risk rises.
    for provenance in [Provenance::Human, Provenance::Mixed, Provenance::AiAssisted] {
        let mut previous = (0, 0);
        for risk in [Risk::Low, Risk::Medium, Risk::High] {
            let chosen = policy(provenance, risk);
            chosen.plan().validate().unwrap();
            let total_bake: Duration = chosen.plan().stages.iter().map(|s| s.bake).sum();
            let strictness = (total_bake.as_secs(), chosen.approvals);
            assert!(strictness >= previous, "{provenance:?} {risk:?}");
            previous = strictness;
        }
    }
    assert!(
        policy(Provenance::AiAssisted, Risk::Medium).approvals
            > policy(Provenance::Human, Risk::Medium).approvals
    );
}

#[test]
fn exposure_accumulates_and_becomes_flag_rules() {
    let plan = Template::Standard.plan();
    let exposure: Vec<(String, f64)> = plan
        .exposure(2)
        .into_iter()
        .map(|(audience, percent)| (audience.label(), percent.percent()))
        .collect();
    assert_eq!(
        exposure,
        [
            ("internal".to_owned(), 100.0),
            ("beta_opt_in".to_owned(), 100.0),
            ("everyone".to_owned(), 10.0)
        ]
    );
    let rules = plan.rules(3, "on", "off");
    let json = serde_json::to_value(&rules).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            { "name": "rollout: internal", "when": [{ "segment": "internal" }], "serve": "on" },
            { "name": "rollout: beta_opt_in", "when": [{ "attribute": "beta_opt_in", "op": "eq", "value": true }], "serve": "on" },
            { "name": "rollout: everyone", "split": [{ "variant": "on", "weight": 50000 }, { "variant": "off", "weight": 50000 }] },
        ])
    );
    // The rules drop into a flag and compile.
    let mut flag: sluice_core::model::FlagDef = serde_json::from_value(serde_json::json!({
        "type": "boolean", "variants": { "on": true, "off": false }, "default_variant": "off",
    }))
    .unwrap();
    flag.rules = plan.rules(4, "on", "off");
    let mut file = sluice_core::FlagFile::default();
    file.segments.insert("internal".into(), Default::default());
    file.flags.insert("checkout".into(), flag);
    sluice_core::validate(&file).unwrap();
}
