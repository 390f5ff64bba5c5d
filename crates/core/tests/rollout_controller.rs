//! The rollout controller, proven against a reference model by random sequences of traffic,
//! clock steps, ticks, crashes, restarts and manual commands.
//!
//! A harness plays the server: it keeps the state, the stage's window and the audit log,
//! calls `step` on every tick and `command` for people, and applies what they return. After
//! every operation it checks the invariants the issue sets:
//!
//! - it never advances before the bake time and the minimum samples (measured by the
//!   harness's own clock and counts, never the window's `elapsed`);
//! - it rolls back (or kills, or pauses, as the plan says) on the very tick a guardrail fails;
//! - it makes at most one transition per tick, and exactly the one a reference model expects;
//! - a restart mid-transition is safe: a crash before the commit decides the same again, a
//!   replay after it is refused, and the state survives serialisation unchanged;
//! - every transition is audited: non-empty evidence, consecutive unique sequence numbers, and
//!   replaying the log from the pending state rebuilds the state exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proptest::prelude::*;
use sluice_core::rollout::{
    ApplyError, Arms, Audience, Command, Exposure, FailurePolicy, Gate, Guardrail, JudgeConfig,
    Metric, MetricData, Observation, Outcome, Percentage, Proportions, RolloutPlan, RolloutState,
    Stage, Status, Step, Tolerance, ToleranceUnit, Transition, TransitionKind, Window, apply,
    command, judge, srm_check, step,
};

const T0: i64 = 1_700_000_000_000;
const ACTORS: [&str; 3] = ["ada", "grace", "linus"];

#[derive(Debug, Clone)]
struct PlanShape {
    audience_first: bool,
    on_failure: FailurePolicy,
    approvals_half: u32,
    approvals_last: u32,
}

fn plan(shape: &PlanShape) -> RolloutPlan {
    let stage = |audience: Audience, percent: u32, bake_min: u64, min_samples: u64, gate| Stage {
        name: None,
        audience,
        percent: Percentage::from_weight(percent * 1000).unwrap(),
        bake: Duration::from_secs(bake_min * 60),
        min_samples,
        approvals: 0,
        gate,
    };
    let mut stages = Vec::new();
    if shape.audience_first {
        stages.push(stage(
            Audience::segment("internal"),
            100,
            5,
            100,
            Gate::NoFailure,
        ));
    }
    stages.push(stage(Audience::Everyone, 10, 10, 300, Gate::Pass));
    let mut half = stage(Audience::Everyone, 50, 20, 600, Gate::Pass);
    half.approvals = shape.approvals_half;
    stages.push(half);
    let mut all = stage(Audience::Everyone, 100, 0, 0, Gate::Pass);
    all.approvals = shape.approvals_last;
    stages.push(all);
    let plan = RolloutPlan {
        guardrails: vec![Guardrail::new(
            Metric::ErrorRate,
            Tolerance::absolute(0.01, ToleranceUnit::Points),
        )],
        on_failure: shape.on_failure,
        max_hold: Duration::from_secs(3600),
        ..RolloutPlan::new(stages)
    };
    plan.validate().unwrap();
    plan
}

#[derive(Debug, Clone)]
enum Op {
    /// Exposures reported for the current window, split by the stage's share (or skewed,
    /// which breaks the sample ratio), with error rates per mille.
    Traffic {
        total: u64,
        skewed: bool,
        control_rate: u64,
        treatment_rate: u64,
    },
    /// The clock moves, mostly forward; a small step back is a new leader's skewed clock.
    Clock(i64),
    /// A tick whose transition commits.
    Tick,
    /// A tick whose server dies before the commit, then a restarted one ticks again.
    CrashBeforeCommit,
    /// A restart: the state is reloaded from its serialised form; with `replay`, the last
    /// committed transition is delivered again.
    Restart { replay: bool },
    /// A person's command.
    Command(CommandOp),
}

#[derive(Debug, Clone)]
enum CommandOp {
    Start,
    Pause,
    Resume,
    Promote { with_reason: bool },
    Rollback,
    Kill,
    Approve(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..4000, prop::bool::weighted(0.1), 0u64..=20, 0u64..=80).prop_map(
            |(total, skewed, control_rate, treatment_rate)| Op::Traffic {
                total,
                skewed,
                control_rate,
                // Half the time the arms are alike.
                treatment_rate: if treatment_rate % 2 == 0 { control_rate } else { treatment_rate },
            }
        ),
        4 => prop_oneof![
            9 => 0i64..1_800_000,
            1 => -120_000i64..0,
        ]
        .prop_map(Op::Clock),
        6 => Just(Op::Tick),
        1 => Just(Op::CrashBeforeCommit),
        1 => any::<bool>().prop_map(|replay| Op::Restart { replay }),
        3 => prop_oneof![
            4 => Just(CommandOp::Start),
            1 => Just(CommandOp::Pause),
            1 => Just(CommandOp::Resume),
            1 => any::<bool>().prop_map(|with_reason| CommandOp::Promote { with_reason }),
            1 => Just(CommandOp::Rollback),
            1 => Just(CommandOp::Kill),
            2 => (0usize..3).prop_map(CommandOp::Approve),
        ]
        .prop_map(Op::Command),
    ]
}

fn shape() -> impl Strategy<Value = PlanShape> {
    (
        any::<bool>(),
        prop_oneof![
            3 => Just(FailurePolicy::Rollback),
            1 => Just(FailurePolicy::Pause),
            1 => Just(FailurePolicy::Kill),
        ],
        0u32..=2,
        0u32..=1,
    )
        .prop_map(
            |(audience_first, on_failure, approvals_half, approvals_last)| PlanShape {
                audience_first,
                on_failure,
                approvals_half,
                approvals_last,
            },
        )
}

/// The server, reduced to what matters: the state, the window, the log, the clock.
struct Harness {
    initial: RolloutState,
    state: RolloutState,
    log: Vec<Transition>,
    now: i64,
    control: Proportions,
    treatment: Proportions,
    /// When the current stage started, by the harness's own account of the log.
    stage_start: i64,
    ticks: u64,
}

impl Harness {
    fn new(plan: RolloutPlan) -> Harness {
        let state = RolloutState::new(plan, "checkout", "production", "on", "off");
        Harness {
            initial: state.clone(),
            state,
            log: Vec::new(),
            now: T0,
            control: Proportions::default(),
            treatment: Proportions::default(),
            stage_start: T0,
            ticks: 0,
        }
    }

    fn window(&self) -> Window {
        Window {
            // Deliberately absurd: the controller must measure time itself.
            elapsed: Duration::from_secs(1000 * 86_400),
            exposures: Arms {
                control: self.control.n,
                treatment: self.treatment.n,
            },
            metrics: vec![Observation {
                metric: Metric::ErrorRate,
                data: MetricData::Proportions(Arms {
                    control: self.control,
                    treatment: self.treatment,
                }),
            }],
            // Also ignored: approvals are the state's.
            approvals: 99,
        }
    }

    fn traffic(&mut self, total: u64, skewed: bool, control_rate: u64, treatment_rate: u64) {
        let stage = &self.state.plan.stages[self.state.stage.min(self.state.plan.stages.len() - 1)];
        let share = if stage.percent.is_all() {
            0.3
        } else {
            stage.percent.fraction()
        };
        let share = if skewed { share * 0.5 } else { share };
        let treatment = (total as f64 * share).round() as u64;
        let control = total - treatment;
        self.control.n += control;
        self.control.k += control * control_rate / 1000;
        self.treatment.n += treatment;
        self.treatment.k += treatment * treatment_rate / 1000;
    }

    /// The reference model: the transition kind the controller must make now.
    fn expected(&self, window: &Window) -> Option<TransitionKind> {
        let state = &self.state;
        let plan = &state.plan;
        let paused = matches!(state.status, Status::Paused { .. });
        if !(state.status.is_active() || paused) {
            return None;
        }
        let last = plan.stages.len() - 1;
        if state.stage >= last {
            return (!paused).then_some(TransitionKind::Complete);
        }
        let stage = &plan.stages[state.stage];
        let config = JudgeConfig {
            alpha: plan.alpha,
            tuning: plan.tuning,
            min_samples: stage.min_samples,
        };
        let outcomes: Vec<Outcome> = plan
            .guardrails
            .iter()
            .map(|g| judge(g, window.data(&g.metric), &config).outcome)
            .collect();
        if outcomes.contains(&Outcome::Fail) {
            return match plan.on_failure {
                FailurePolicy::Rollback => Some(TransitionKind::Rollback),
                FailurePolicy::Kill => Some(TransitionKind::Kill),
                FailurePolicy::Pause if paused => None,
                FailurePolicy::Pause => Some(TransitionKind::Pause),
            };
        }
        if paused {
            return None;
        }
        let elapsed = Duration::from_millis((self.now - self.stage_start).max(0) as u64);
        // Audiences of earlier stages stay on the new variant beside the random share.
        let audiences_kept = plan.stages[..state.stage]
            .iter()
            .any(|earlier| earlier.audience != Audience::Everyone);
        let srm_broken = !stage.percent.is_all()
            && srm_check(window.exposures, stage.percent.fraction(), audiences_kept).mismatch;
        let gate_met = match stage.gate {
            Gate::Pass => outcomes.iter().all(|o| *o == Outcome::Pass),
            Gate::NoFailure => true,
        };
        let ready = elapsed >= stage.bake
            && self.control.n >= stage.min_samples
            && self.treatment.n >= stage.min_samples
            && !srm_broken
            && gate_met;
        if ready {
            let next = &plan.stages[state.stage + 1];
            if state.approvals.len() as u32 >= next.approvals {
                Some(if state.stage + 1 == last {
                    TransitionKind::Complete
                } else {
                    TransitionKind::Advance
                })
            } else if state.status == Status::Running {
                Some(TransitionKind::AwaitApproval)
            } else {
                None
            }
        } else if elapsed >= stage.bake + plan.max_hold {
            Some(TransitionKind::Pause)
        } else {
            None
        }
    }

    /// Checks a transition about to be committed, whoever made it.
    fn check_transition(&self, transition: &Transition) {
        let state = &self.state;
        assert_eq!(
            transition.seq,
            state.transition_seq + 1,
            "seq follows the state"
        );
        assert_eq!(
            transition.from,
            state.phase(),
            "made from the current phase"
        );
        assert_eq!(transition.at_ms, self.now);
        assert!(
            !transition.evidence.summary.trim().is_empty(),
            "every transition says why: {transition:?}"
        );
        assert!(
            transition.to.stage >= transition.from.stage,
            "stages never go back"
        );
        assert!(
            transition.to.stage <= transition.from.stage + 1,
            "at most one stage at a time"
        );
        if state.status.is_final() {
            assert!(
                matches!(state.status, Status::RolledBack { .. })
                    && transition.kind == TransitionKind::Kill,
                "only a kill follows a rollback, nothing follows the end: {transition:?}"
            );
        }
        match transition.kind {
            TransitionKind::Rollback => {
                assert!(matches!(transition.to.status, Status::RolledBack { .. }));
                assert_eq!(transition.exposure, Some(Exposure::rolled_back()));
            }
            TransitionKind::Kill => {
                assert!(matches!(transition.to.status, Status::Killed { .. }));
                assert_eq!(transition.exposure, Some(Exposure::off()));
            }
            TransitionKind::Advance | TransitionKind::Promote | TransitionKind::Complete => {
                assert!(
                    transition.exposure.is_some(),
                    "a new stage changes the flag"
                );
            }
            _ => {}
        }
        // Exposure only widens until a rollback or kill.
        if let Some(after) = &transition.exposure
            && after.enabled
            && after.max_treatment_weight() > 0
        {
            let before = Exposure::of(state);
            for share in &before.shares {
                let kept = after
                    .shares
                    .iter()
                    .find(|s| s.audience == share.audience)
                    .map_or(0, |s| s.treatment_weight);
                assert!(
                    kept >= share.treatment_weight,
                    "exposure narrowed: {transition:?}"
                );
            }
        }
        match (&transition.evidence.actor, transition.kind) {
            (None, _) => {
                let decision = transition
                    .evidence
                    .decision
                    .as_ref()
                    .expect("the controller's transitions carry its decision");
                assert_eq!(decision.stage, state.stage);
                assert!(!decision.summary.is_empty());
            }
            (Some(actor), _) => assert!(!actor.is_empty()),
        }
    }

    fn commit(&mut self, transition: &Transition) {
        self.check_transition(transition);
        let next = apply(&self.state, transition).expect("the next transition applies");
        assert_eq!(next.transition_seq, transition.seq);
        assert_eq!(next.phase(), transition.to);
        assert_eq!(
            Exposure::of(&next).max_treatment_weight() > 0,
            next_exposes(&next)
        );
        if let Some(exposure) = &transition.exposure {
            assert_eq!(
                exposure,
                &Exposure::of(&next),
                "the flag change realises the new state"
            );
        }
        // A replay after the commit is refused and changes nothing.
        assert!(matches!(
            apply(&next, transition),
            Err(ApplyError::AlreadyApplied { .. })
        ));
        let moves = transition.to.stage != transition.from.stage
            || matches!(
                transition.kind,
                TransitionKind::Start | TransitionKind::Resume
            );
        if moves {
            self.stage_start = transition.at_ms;
            self.control = Proportions::default();
            self.treatment = Proportions::default();
        }
        assert_eq!(next.stage_started_ms, self.stage_start);
        self.state = next;
        self.log.push(transition.clone());
    }

    fn tick(&mut self) -> Step {
        let window = self.window();
        let result = step(&self.state, self.now, &window);
        // A pure function of its inputs.
        assert_eq!(result, step(&self.state, self.now, &window));
        let expected = self.expected(&window);
        let made = result.transition.as_ref().map(|t| t.kind);
        assert_eq!(
            made,
            expected,
            "at {} ms into stage {} ({:?}), window {:?} / {:?}: {:?}",
            self.now - self.stage_start,
            self.state.stage,
            self.state.status,
            self.control,
            self.treatment,
            result.decision.as_ref().map(|d| &d.summary)
        );
        if let Some(transition) = &result.transition
            && matches!(
                transition.kind,
                TransitionKind::Advance | TransitionKind::Complete
            )
        {
            let stage = &self.state.plan.stages[self.state.stage];
            let elapsed = Duration::from_millis((self.now - self.stage_start).max(0) as u64);
            assert!(elapsed >= stage.bake, "advanced before the bake time");
            assert!(
                self.control.n >= stage.min_samples && self.treatment.n >= stage.min_samples,
                "advanced before the minimum samples"
            );
        }
        result
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Traffic {
                total,
                skewed,
                control_rate,
                treatment_rate,
            } => self.traffic(total, skewed, control_rate, treatment_rate),
            Op::Clock(ms) => self.now += ms,
            Op::Tick => {
                self.ticks += 1;
                if let Some(transition) = self.tick().transition {
                    self.commit(&transition);
                }
            }
            Op::CrashBeforeCommit => {
                let lost = self.tick();
                // The server restarts from what it had stored, and decides again.
                self.restart(false);
                let again = self.tick();
                assert_eq!(
                    lost, again,
                    "a restart decides the same (no rollback is lost)"
                );
                if let Some(transition) = again.transition {
                    self.commit(&transition);
                }
            }
            Op::Restart { replay } => self.restart(replay),
            Op::Command(ref which) => self.command(which),
        }
    }

    fn restart(&mut self, replay: bool) {
        let stored = serde_json::to_string(&self.state).unwrap();
        let reloaded: RolloutState = serde_json::from_str(&stored).unwrap();
        assert_eq!(reloaded, self.state, "the state survives a restart");
        if replay && let Some(last) = self.log.last() {
            assert!(matches!(
                apply(&reloaded, last),
                Err(ApplyError::AlreadyApplied { .. })
            ));
            // The whole log again, as a lagging replica would deliver it: all refused.
            for old in &self.log {
                assert!(apply(&reloaded, old).is_err());
            }
        }
        self.state = reloaded;
    }

    fn command(&mut self, which: &CommandOp) {
        let state = &self.state;
        let exposed = state.status.is_active() || matches!(state.status, Status::Paused { .. });
        let stages = &state.plan.stages;
        let approvals = state.approvals.len() as u32;
        let actor = |i: usize| ACTORS[i].to_owned();
        let (command_value, allowed) = match *which {
            CommandOp::Start => (
                Command::Start { actor: actor(0) },
                state.status == Status::Pending && approvals >= stages[0].approvals,
            ),
            CommandOp::Pause => (
                Command::Pause {
                    reason: "investigating".into(),
                    actor: actor(1),
                },
                state.status.is_active(),
            ),
            CommandOp::Resume => (
                Command::Resume { actor: actor(1) },
                matches!(state.status, Status::Paused { .. }),
            ),
            CommandOp::Promote { with_reason } => (
                Command::Promote {
                    reason: if with_reason {
                        "hotfix needed".into()
                    } else {
                        " ".into()
                    },
                    actor: actor(2),
                },
                with_reason
                    && exposed
                    && state.stage + 1 < stages.len()
                    && approvals >= stages[state.stage + 1].approvals,
            ),
            CommandOp::Rollback => (
                Command::Rollback {
                    reason: "customer reports".into(),
                    actor: actor(0),
                },
                exposed,
            ),
            CommandOp::Kill => (
                Command::Kill {
                    reason: "incident".into(),
                    actor: actor(0),
                },
                exposed || matches!(state.status, Status::RolledBack { .. }),
            ),
            CommandOp::Approve(i) => {
                let target = if state.status == Status::Pending {
                    0
                } else {
                    state.stage + 1
                };
                (
                    Command::Approve { actor: actor(i) },
                    (exposed || state.status == Status::Pending)
                        && target < stages.len()
                        && !state.approvals.contains(&actor(i))
                        && approvals < stages[target].approvals,
                )
            }
        };
        let result = command(state, self.now, command_value.clone());
        assert_eq!(
            result.is_ok(),
            allowed,
            "{command_value:?} in {:?} at stage {}: {result:?}",
            state.status,
            state.stage
        );
        if let Ok(transition) = result {
            assert!(
                transition.evidence.actor.is_some(),
                "a person's act names them"
            );
            self.commit(&transition);
        }
    }

    fn check_log(&self) {
        for (index, transition) in self.log.iter().enumerate() {
            assert_eq!(
                transition.seq,
                index as u64 + 1,
                "seqs are consecutive and unique"
            );
        }
        let rebuilt = self
            .log
            .iter()
            .try_fold(self.initial.clone(), |state, t| apply(&state, t))
            .unwrap();
        assert_eq!(rebuilt, self.state, "the log rebuilds the state");
    }
}

fn next_exposes(state: &RolloutState) -> bool {
    !matches!(
        state.status,
        Status::Pending | Status::RolledBack { .. } | Status::Killed { .. }
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_controller_keeps_its_invariants(
        shape in shape(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut harness = Harness::new(plan(&shape));
        for op in &ops {
            harness.run(op);
        }
        harness.check_log();
    }
}

/// A long scripted run: start, bake, pass, advance; then a doubled error rate rolls back on
/// the first tick it shows, with its numbers in the evidence.
#[test]
fn a_rollout_advances_on_evidence_and_rolls_back_on_a_breach() {
    let mut harness = Harness::new(plan(&PlanShape {
        audience_first: false,
        on_failure: FailurePolicy::Rollback,
        approvals_half: 1,
        approvals_last: 0,
    }));
    harness.run(&Op::Command(CommandOp::Start));
    assert_eq!(harness.state.status, Status::Running);
    // Plenty of alike traffic, but the bake time is not over: it holds.
    harness.traffic(40_000, false, 10, 10);
    harness.run(&Op::Clock(9 * 60_000));
    harness.run(&Op::Tick);
    assert_eq!(harness.state.stage, 0);
    // Over the bake time: ready, but the 50% stage needs an approval.
    harness.run(&Op::Clock(60_000));
    harness.run(&Op::Tick);
    assert_eq!(harness.state.status, Status::AwaitingApproval);
    harness.run(&Op::Command(CommandOp::Approve(1)));
    harness.run(&Op::Tick);
    assert_eq!(harness.state.stage, 1);
    assert_eq!(harness.state.status, Status::Running);
    let advanced = harness.state.last.clone().unwrap();
    assert_eq!(advanced.kind, TransitionKind::Advance);
    assert!(
        advanced.evidence.summary.contains("Advancing to 50%"),
        "{}",
        advanced.evidence.summary
    );
    // At 50% the new path doubles its errors; the first tick that sees it rolls back.
    harness.traffic(4_000, false, 10, 40);
    harness.run(&Op::Clock(1_000));
    harness.run(&Op::Tick);
    assert!(matches!(harness.state.status, Status::RolledBack { .. }));
    let rollback = harness.state.last.clone().unwrap();
    assert_eq!(rollback.kind, TransitionKind::Rollback);
    assert_eq!(rollback.exposure, Some(Exposure::rolled_back()));
    let decision = rollback.evidence.decision.as_ref().unwrap();
    assert_eq!(decision.verdicts[0].outcome, Outcome::Fail);
    assert!(
        rollback
            .evidence
            .summary
            .contains("error_rate: treatment 4.00% vs control 1.00%")
    );
    // Nothing moves a rolled-back rollout but a kill.
    harness.run(&Op::Tick);
    assert_eq!(harness.log.len(), 5);
    harness.run(&Op::Command(CommandOp::Kill));
    assert!(matches!(harness.state.status, Status::Killed { .. }));
    harness.check_log();
}

#[test]
fn commands_explain_refusals() {
    let state = RolloutState::new(
        plan(&PlanShape {
            audience_first: false,
            on_failure: FailurePolicy::Rollback,
            approvals_half: 0,
            approvals_last: 0,
        }),
        "checkout",
        "production",
        "on",
        "off",
    );
    let error = command(
        &state,
        T0,
        Command::Pause {
            reason: String::new(),
            actor: "ada".into(),
        },
    )
    .unwrap_err();
    assert_eq!(error.to_string(), "cannot pause a rollout that is pending");
    let started = apply(
        &state,
        &command(
            &state,
            T0,
            Command::Start {
                actor: "ada".into(),
            },
        )
        .unwrap(),
    )
    .unwrap();
    let error = command(
        &started,
        T0,
        Command::Promote {
            reason: String::new(),
            actor: "ada".into(),
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "promote needs a reason: it skips the analysis"
    );
    let error = command(&started, T0, Command::Start { actor: "  ".into() }).unwrap_err();
    assert_eq!(
        error.to_string(),
        "start needs the name of the person acting"
    );
    // A stale transition made from the pending state conflicts with the started one.
    let mut stale = command(
        &state,
        T0,
        Command::Start {
            actor: "bob".into(),
        },
    )
    .unwrap();
    stale.seq = 2;
    assert!(matches!(
        apply(&started, &stale),
        Err(ApplyError::Conflict { .. })
    ));
    stale.seq = 5;
    assert!(matches!(
        apply(&started, &stale),
        Err(ApplyError::OutOfOrder { .. })
    ));
}
