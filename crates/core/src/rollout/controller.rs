//! The rollout controller as a pure state machine: state, transitions, commands.
//!
//! A rollout's whole truth is a [`RolloutState`]. Time and data come in as arguments: on each
//! tick the server reads the state, gathers the [`Window`] of the current stage (everything
//! reported since `stage_started_ms`), and calls [`step`]. That returns the stage decision and
//! at most one [`Transition`]. People act through [`command`], which returns a transition
//! the same way. A transition is a pure function of its inputs and says everything the server
//! must write: the new stage and status, the flag change ([`Exposure`]), and the evidence for
//! the audit log. [`apply`] turns it into the next state.
//!
//! Idempotency and crash safety come from the sequence number. Every transition carries
//! `seq = state.transition_seq + 1`, and [`apply`] accepts only that one. The server writes
//! the flag change, the new state and the audit record in one database transaction keyed by
//! (rollout, seq): a crash before the commit leaves nothing and the next tick decides again
//! from the same state; a replay after the commit is refused as already applied; and of two
//! leaders racing on the same state, the second finds its seq taken. So nothing is applied
//! twice, no stage is skipped, and a rollback decided but not committed is decided again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rollout::decide::{Action, StageDecision, Window, decide_at};
use crate::rollout::exposure::Exposure;
use crate::rollout::plan::RolloutPlan;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Created, not started: the flag is untouched.
    Pending,
    /// Judged on every tick; advances when the evidence allows.
    Running,
    /// Ready to advance but for the next stage's approvals. Still judged on every tick.
    AwaitingApproval,
    /// Stopped where it is, by a person or by the plan; a person has been alerted. A failing
    /// guardrail still rolls back (or kills) while paused, unless the plan's failure policy is
    /// itself to pause.
    Paused {
        /// Why, in one sentence.
        reason: String,
    },
    /// Everyone is back on the control variant. Final, but for a kill.
    RolledBack {
        /// Why, in one sentence.
        reason: String,
    },
    /// Everyone is on the new variant. Final.
    Completed,
    /// The flag is off in the environment. Final.
    Killed {
        /// Why, in one sentence.
        reason: String,
    },
}

impl Status {
    /// The status's name: `pending`, `running`, `awaiting_approval`, `paused`,
    /// `rolled_back`, `completed` or `killed`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Paused { .. } => "paused",
            Status::RolledBack { .. } => "rolled_back",
            Status::Completed => "completed",
            Status::Killed { .. } => "killed",
        }
    }

    /// Whether the stage is judged on every tick and may advance: running or awaiting approval.
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running | Status::AwaitingApproval)
    }

    /// Whether the new variant is still exposed, so a failing guardrail must still act:
    /// running, awaiting approval or paused.
    pub fn is_exposed(&self) -> bool {
        self.is_active() || matches!(self, Status::Paused { .. })
    }

    /// Whether nothing more will happen but, after a rollback, a kill.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Status::RolledBack { .. } | Status::Completed | Status::Killed { .. }
        )
    }
}

/// One rollout of one flag in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// The plan followed.
    pub plan: RolloutPlan,
    /// The flag rolled out.
    pub flag: String,
    /// The environment it is rolled out in.
    pub environment: String,
    /// The new variant.
    pub treatment: String,
    /// The old variant, served to everyone not on the new path.
    pub control: String,
    /// The current stage's index in the plan.
    pub stage: usize,
    /// When the current stage started (or restarted, on resume), in Unix milliseconds. The
    /// stage's window holds what was reported since.
    pub stage_started_ms: i64,
    /// Where it stands.
    pub status: Status,
    /// The sequence number of the last transition applied; 0 before any.
    pub transition_seq: u64,
    /// Distinct approvals recorded for entering the next stage (the first stage while pending).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// The last transition applied, with its evidence: why the rollout is where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Transition>,
}

impl RolloutState {
    /// A pending rollout of `flag` in `environment` from `control` to `treatment`.
    pub fn new(
        plan: RolloutPlan,
        flag: impl Into<String>,
        environment: impl Into<String>,
        treatment: impl Into<String>,
        control: impl Into<String>,
    ) -> RolloutState {
        RolloutState {
            plan,
            flag: flag.into(),
            environment: environment.into(),
            treatment: treatment.into(),
            control: control.into(),
            stage: 0,
            stage_started_ms: 0,
            status: Status::Pending,
            transition_seq: 0,
            approvals: Vec::new(),
            last: None,
        }
    }

    /// The stage and status.
    pub fn phase(&self) -> Phase {
        Phase {
            stage: self.stage,
            status: self.status.clone(),
        }
    }

    /// Time spent in the current stage at `now_ms`, in whole seconds (the resolution of
    /// plans and of the durations the evidence stores); zero if the clock reads earlier than
    /// the stage's start (a new leader whose clock is behind).
    pub fn elapsed(&self, now_ms: i64) -> Duration {
        let ms = now_ms.saturating_sub(self.stage_started_ms).max(0);
        Duration::from_secs(u64::try_from(ms / 1000).unwrap_or(0))
    }

    /// The stage whose approvals are being collected: the first while pending, else the next.
    pub fn approvals_for(&self) -> usize {
        if self.status == Status::Pending {
            0
        } else {
            self.stage + 1
        }
    }

    fn approvals_count(&self) -> u32 {
        u32::try_from(self.approvals.len()).unwrap_or(u32::MAX)
    }

    fn approvals_required(&self, stage: usize) -> u32 {
        self.plan.stages.get(stage).map_or(0, |s| s.approvals)
    }

    fn stage_label(&self, stage: usize) -> String {
        self.plan
            .stages
            .get(stage)
            .map_or_else(|| format!("stage {stage}"), |s| s.label())
    }

    fn last_stage(&self) -> usize {
        self.plan.stages.len().saturating_sub(1)
    }
}

/// A stage and a status: the two ends of a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// The stage's index in the plan.
    pub stage: usize,
    /// The status.
    #[serde(flatten)]
    pub status: Status,
}

/// What a transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// A person started the rollout: its first stage's exposure is applied.
    Start,
    /// The controller moved to the next stage on the evidence.
    Advance,
    /// The controller is ready to advance but for approvals.
    AwaitApproval,
    /// A person approved entering the next stage.
    Approve,
    /// Stopped: by a person, or by the controller (a hold that outlived `max_hold`, or a
    /// failure under the plan's `pause` policy).
    Pause,
    /// A person resumed a paused rollout; its stage starts over.
    Resume,
    /// A person moved to the next stage without the evidence.
    Promote,
    /// Everyone back on the control variant: by the controller on a failed guardrail, or by
    /// a person, at once.
    Rollback,
    /// The flag turned off: by the controller on a failed guardrail when the plan says so, or
    /// by a person.
    Kill,
    /// The controller reached the last stage: everyone is on the new variant.
    Complete,
}

/// Why a transition happened, for the audit log and for anyone asking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionEvidence {
    /// The person who acted, or `None` for the controller.
    pub actor: Option<String>,
    /// The reason a person gave.
    pub reason: Option<String>,
    /// What happened and why, one sentence per line. Never empty.
    pub summary: String,
    /// The stage decision the controller acted on, with every guardrail's numbers.
    pub decision: Option<StageDecision>,
}

/// One change of a rollout: what the server writes, in one database transaction, keyed by
/// (rollout, `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// `transition_seq + 1` of the state it was made from.
    pub seq: u64,
    /// When it was made, in Unix milliseconds.
    pub at_ms: i64,
    /// What it does.
    pub kind: TransitionKind,
    /// Where the rollout was.
    pub from: Phase,
    /// Where it goes.
    pub to: Phase,
    /// The flag change to write with it, when the targeting changes.
    pub exposure: Option<Exposure>,
    /// Why.
    pub evidence: TransitionEvidence,
}

/// What one tick found: the decision on the current stage, and the transition it calls for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The transition to apply, if any: at most one per tick.
    pub transition: Option<Transition>,
    /// The stage decision, while the new variant is exposed (running, awaiting approval or
    /// paused): what the controller would say if asked now.
    pub decision: Option<StageDecision>,
}

/// A person's instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    /// Start a pending rollout at its first stage.
    Start {
        /// Who.
        actor: String,
    },
    /// Stop advancing; failures still act.
    Pause {
        /// Why.
        reason: String,
        /// Who.
        actor: String,
    },
    /// Continue a paused rollout; the stage starts over with a new bake time and window.
    Resume {
        /// Who.
        actor: String,
    },
    /// Move to the next stage now, without the evidence. The next stage's approvals are
    /// still needed.
    Promote {
        /// Why; required.
        reason: String,
        /// Who.
        actor: String,
    },
    /// Send everyone back to the control variant now, without analysis.
    Rollback {
        /// Why.
        reason: String,
        /// Who.
        actor: String,
    },
    /// Turn the flag off in the environment now.
    Kill {
        /// Why.
        reason: String,
        /// Who.
        actor: String,
    },
    /// Approve entering the next stage (the first, while pending).
    Approve {
        /// Who; each person counts once.
        actor: String,
    },
}

impl Command {
    /// The command's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Start { .. } => "start",
            Command::Pause { .. } => "pause",
            Command::Resume { .. } => "resume",
            Command::Promote { .. } => "promote",
            Command::Rollback { .. } => "rollback",
            Command::Kill { .. } => "kill",
            Command::Approve { .. } => "approve",
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command does not apply in the rollout's status.
    #[error("cannot {command} a rollout that is {status}")]
    NotAllowed {
        /// The command.
        command: &'static str,
        /// The status it was refused in.
        status: &'static str,
    },
    /// The command needs a person's name.
    #[error("{command} needs the name of the person acting")]
    ActorRequired {
        /// The command.
        command: &'static str,
    },
    /// Promote needs a reason.
    #[error("promote needs a reason: it skips the analysis")]
    ReasonRequired,
    /// The stage entered needs approvals not yet given.
    #[error("{stage} needs {required} approvals and has {received}")]
    NeedsApprovals {
        /// The stage's label.
        stage: String,
        /// Approvals needed.
        required: u32,
        /// Approvals recorded.
        received: u32,
    },
    /// This person already approved.
    #[error("{actor} has already approved entering {stage}")]
    AlreadyApproved {
        /// Who.
        actor: String,
        /// The stage's label.
        stage: String,
    },
    /// The stage needs no (more) approvals.
    #[error("{stage} needs no more approvals")]
    NoApprovalNeeded {
        /// The stage's label.
        stage: String,
    },
    /// There is no next stage.
    #[error("the rollout is at its last stage")]
    NoNextStage,
}

/// Why a transition was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Its seq is at or below the state's: a replay. Nothing to do.
    #[error("transition {seq} is already applied (the state is at {current})")]
    AlreadyApplied {
        /// The transition's seq.
        seq: u64,
        /// The state's seq.
        current: u64,
    },
    /// Its seq skips ahead of the state's: transitions are missing.
    #[error("transition {seq} does not follow {current}")]
    OutOfOrder {
        /// The transition's seq.
        seq: u64,
        /// The state's seq.
        current: u64,
    },
    /// It was made from another state with the same seq.
    #[error(
        "transition {seq} was made from {from_status} at stage {from_stage}, not from this state"
    )]
    Conflict {
        /// The transition's seq.
        seq: u64,
        /// The stage it was made from.
        from_stage: usize,
        /// The status it was made from.
        from_status: &'static str,
    },
}

/// One tick: judges the current stage on `window` at `now_ms` and says what to do.
///
/// The time in the stage is `now_ms − stage_started_ms` and the approvals are the state's;
/// the window's own `elapsed` and `approvals` are ignored. A failed guardrail acts on the tick
/// it is seen, even while paused (unless the plan's failure policy is to pause). Otherwise a
/// running stage advances, awaits approval, holds, or pauses as [`crate::rollout::decide`]
/// says; a paused, pending or finished rollout does not move.
pub fn step(state: &RolloutState, now_ms: i64, window: &Window) -> Step {
    if !state.status.is_exposed() {
        return Step {
            transition: None,
            decision: None,
        };
    }
    let decision = decide_at(
        &state.plan,
        state.stage,
        window,
        state.elapsed(now_ms),
        state.approvals_count(),
    );
    let paused = matches!(state.status, Status::Paused { .. });
    let last = state.last_stage();
    let planned = match &decision.action {
        Action::Rollback { .. } => Some((
            TransitionKind::Rollback,
            state.stage,
            Status::RolledBack {
                reason: last_line(&decision),
            },
        )),
        Action::Kill { .. } => Some((
            TransitionKind::Kill,
            state.stage,
            Status::Killed {
                reason: last_line(&decision),
            },
        )),
        _ if paused => None,
        Action::Advance { to } if *to >= last => {
            Some((TransitionKind::Complete, last, Status::Completed))
        }
        Action::Advance { to } => Some((TransitionKind::Advance, *to, Status::Running)),
        Action::Complete => Some((TransitionKind::Complete, state.stage, Status::Completed)),
        Action::AwaitApproval { .. } if state.status == Status::Running => Some((
            TransitionKind::AwaitApproval,
            state.stage,
            Status::AwaitingApproval,
        )),
        Action::Pause { .. } => Some((
            TransitionKind::Pause,
            state.stage,
            Status::Paused {
                reason: last_line(&decision),
            },
        )),
        Action::AwaitApproval { .. } | Action::Hold { .. } => None,
    };
    let transition = planned.map(|(kind, stage, status)| {
        let summary = format!(
            "{} at {} after {} in the stage.\n{}",
            kind_sentence(kind),
            state.stage_label(state.stage),
            crate::rollout::format_duration(state.elapsed(now_ms)),
            decision.summary
        );
        make(
            state,
            now_ms,
            kind,
            Phase { stage, status },
            TransitionEvidence {
                actor: None,
                reason: None,
                summary,
                decision: Some(decision.clone()),
            },
        )
    });
    Step {
        transition,
        decision: Some(decision),
    }
}

fn kind_sentence(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Start => "Started",
        TransitionKind::Advance => "Advanced",
        TransitionKind::AwaitApproval => "Awaiting approval",
        TransitionKind::Approve => "Approved",
        TransitionKind::Pause => "Paused",
        TransitionKind::Resume => "Resumed",
        TransitionKind::Promote => "Promoted",
        TransitionKind::Rollback => "Rolled back",
        TransitionKind::Kill => "Killed",
        TransitionKind::Complete => "Completed",
    }
}

/// The last line of a decision (what it does), for a status's one-sentence reason.
fn last_line(decision: &StageDecision) -> String {
    decision
        .summary
        .lines()
        .last()
        .unwrap_or("a guardrail failed")
        .to_owned()
}

/// The transition from `state` to `to`, with the exposure `to` calls for when it changes.
fn make(
    state: &RolloutState,
    now_ms: i64,
    kind: TransitionKind,
    to: Phase,
    evidence: TransitionEvidence,
) -> Transition {
    let before = Exposure::of(state);
    let mut after_state = state.clone();
    after_state.stage = to.stage;
    after_state.status = to.status.clone();
    let after = Exposure::of(&after_state);
    Transition {
        seq: state.transition_seq.saturating_add(1),
        at_ms: now_ms,
        kind,
        from: state.phase(),
        to,
        exposure: (after != before).then_some(after),
        evidence,
    }
}

/// A person's instruction at `now_ms`, as a transition to apply, or why it is refused.
pub fn command(
    state: &RolloutState,
    now_ms: i64,
    command: Command,
) -> Result<Transition, CommandError> {
    let name = command.name();
    let refuse = || CommandError::NotAllowed {
        command: name,
        status: state.status.name(),
    };
    let actor_of = |actor: &str| {
        let actor = actor.trim();
        if actor.is_empty() {
            Err(CommandError::ActorRequired { command: name })
        } else {
            Ok(actor.to_owned())
        }
    };
    let reason_of = |reason: &str| {
        let reason = reason.trim();
        (!reason.is_empty()).then(|| reason.to_owned())
    };
    let said = |reason: &Option<String>| match reason {
        Some(reason) => format!(": {reason}"),
        None => ", giving no reason".to_owned(),
    };
    let here = state.stage_label(state.stage);
    let evidence = |actor: String, reason: Option<String>, summary: String| TransitionEvidence {
        actor: Some(actor),
        reason,
        summary,
        decision: None,
    };
    let (kind, to, evidence) = match command {
        Command::Start { actor } => {
            let actor = actor_of(&actor)?;
            if state.status != Status::Pending {
                return Err(refuse());
            }
            needs_approvals(state, 0)?;
            let summary = format!(
                "Started by {actor} at {} of {} stages, {}.",
                state.stage_label(0),
                state.plan.stages.len(),
                state.plan.name.as_deref().unwrap_or("a custom plan"),
            );
            (
                TransitionKind::Start,
                Phase {
                    stage: 0,
                    status: Status::Running,
                },
                evidence(actor, None, summary),
            )
        }
        Command::Pause { reason, actor } => {
            let actor = actor_of(&actor)?;
            if !state.status.is_active() {
                return Err(refuse());
            }
            let reason = reason_of(&reason);
            let summary = format!("Paused at {here} by {actor}{}.", said(&reason));
            (
                TransitionKind::Pause,
                Phase {
                    stage: state.stage,
                    status: Status::Paused {
                        reason: format!("paused by {actor}{}", said(&reason)),
                    },
                },
                evidence(actor, reason, summary),
            )
        }
        Command::Resume { actor } => {
            let actor = actor_of(&actor)?;
            if !matches!(state.status, Status::Paused { .. }) {
                return Err(refuse());
            }
            let summary = format!(
                "Resumed at {here} by {actor}: the stage starts over, with a new bake time and window."
            );
            (
                TransitionKind::Resume,
                Phase {
                    stage: state.stage,
                    status: Status::Running,
                },
                evidence(actor, None, summary),
            )
        }
        Command::Promote { reason, actor } => {
            let actor = actor_of(&actor)?;
            if !state.status.is_exposed() {
                return Err(refuse());
            }
            let Some(reason) = reason_of(&reason) else {
                return Err(CommandError::ReasonRequired);
            };
            let next = state.stage + 1;
            if next >= state.plan.stages.len() {
                return Err(CommandError::NoNextStage);
            }
            needs_approvals(state, next)?;
            let status = if next == state.last_stage() {
                Status::Completed
            } else {
                Status::Running
            };
            let summary = format!(
                "Promoted from {here} to {} by {actor}, skipping the analysis: {reason}.",
                state.stage_label(next)
            );
            (
                TransitionKind::Promote,
                Phase {
                    stage: next,
                    status,
                },
                evidence(actor, Some(reason), summary),
            )
        }
        Command::Rollback { reason, actor } => {
            let actor = actor_of(&actor)?;
            if !state.status.is_exposed() {
                return Err(refuse());
            }
            let reason = reason_of(&reason);
            let summary = format!(
                "Rolled back at {here} by {actor}, without analysis{}: everyone is on `{}` again.",
                said(&reason),
                state.control
            );
            (
                TransitionKind::Rollback,
                Phase {
                    stage: state.stage,
                    status: Status::RolledBack {
                        reason: format!("rolled back by {actor}{}", said(&reason)),
                    },
                },
                evidence(actor, reason, summary),
            )
        }
        Command::Kill { reason, actor } => {
            let actor = actor_of(&actor)?;
            if !(state.status.is_exposed() || matches!(state.status, Status::RolledBack { .. })) {
                return Err(refuse());
            }
            let reason = reason_of(&reason);
            let summary = format!(
                "Killed at {here} by {actor}{}: the flag is off in {}.",
                said(&reason),
                state.environment
            );
            (
                TransitionKind::Kill,
                Phase {
                    stage: state.stage,
                    status: Status::Killed {
                        reason: format!("killed by {actor}{}", said(&reason)),
                    },
                },
                evidence(actor, reason, summary),
            )
        }
        Command::Approve { actor } => {
            let actor = actor_of(&actor)?;
            if !(state.status.is_exposed() || state.status == Status::Pending) {
                return Err(refuse());
            }
            let target = state.approvals_for();
            let label = state.stage_label(target);
            if target >= state.plan.stages.len() {
                return Err(CommandError::NoNextStage);
            }
            if state.approvals.contains(&actor) {
                return Err(CommandError::AlreadyApproved {
                    actor,
                    stage: label,
                });
            }
            let required = state.approvals_required(target);
            let received = state.approvals_count();
            if received >= required {
                return Err(CommandError::NoApprovalNeeded { stage: label });
            }
            let summary = format!(
                "{actor} approved entering {label}: {} of {required} approvals.",
                received + 1
            );
            (
                TransitionKind::Approve,
                state.phase(),
                evidence(actor, None, summary),
            )
        }
    };
    Ok(make(state, now_ms, kind, to, evidence))
}

fn needs_approvals(state: &RolloutState, stage: usize) -> Result<(), CommandError> {
    let required = state.approvals_required(stage);
    let received = state.approvals_count();
    if received < required {
        return Err(CommandError::NeedsApprovals {
            stage: state.stage_label(stage),
            required,
            received,
        });
    }
    Ok(())
}

/// The state after `transition`, which must be the next one: its seq is
/// `state.transition_seq + 1` and it was made from the state's phase. A replay (a seq
/// already applied) is refused with [`ApplyError::AlreadyApplied`], which the caller treats
/// as done.
///
/// The new state depends only on the state and the transition, so replaying the audit log's
/// transitions from the pending state rebuilds the rollout exactly.
pub fn apply(state: &RolloutState, transition: &Transition) -> Result<RolloutState, ApplyError> {
    let current = state.transition_seq;
    if transition.seq <= current {
        return Err(ApplyError::AlreadyApplied {
            seq: transition.seq,
            current,
        });
    }
    if transition.seq != current.saturating_add(1) {
        return Err(ApplyError::OutOfOrder {
            seq: transition.seq,
            current,
        });
    }
    if transition.from != state.phase() {
        return Err(ApplyError::Conflict {
            seq: transition.seq,
            from_stage: transition.from.stage,
            from_status: transition.from.status.name(),
        });
    }
    let mut next = state.clone();
    next.transition_seq = transition.seq;
    next.stage = transition.to.stage;
    next.status = transition.to.status.clone();
    let restarts = transition.to.stage != transition.from.stage
        || matches!(
            transition.kind,
            TransitionKind::Start | TransitionKind::Resume
        );
    if restarts {
        next.stage_started_ms = transition.at_ms;
    }
    if transition.to.stage != transition.from.stage || transition.kind == TransitionKind::Start {
        next.approvals.clear();
    }
    if transition.kind == TransitionKind::Approve
        && let Some(actor) = &transition.evidence.actor
    {
        next.approvals.push(actor.clone());
    }
    next.last = Some(transition.clone());
    Ok(next)
}
