//! The release format: what a release says about itself, as written in a file or an API body.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Errors, Path};
use crate::model::{Provenance, Risk};
use crate::source::{Format, from_value_at};

/// Who wrote the change, and how it was reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceInfo {
    /// `ai-assisted`, `human` or `mixed`.
    pub kind: Provenance,
    /// The generating tool or model, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// A pull request or commit link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Who reviewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
}

/// How the change is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackKind {
    /// Turn the release's flags off.
    FlagOff,
    /// Revert a named commit and deploy.
    GitRevert,
    /// Change a configuration value.
    ConfigChange,
}

impl RollbackKind {
    /// The name used in the format.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackKind::FlagOff => "flag-off",
            RollbackKind::GitRevert => "git-revert",
            RollbackKind::ConfigChange => "config-change",
        }
    }
}

/// The rollback procedure, documented before the release starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackProcedure {
    /// Flag off, git revert or config change.
    pub kind: RollbackKind,
    /// The commit to revert; required for `git-revert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// What to do, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// How long restoring is expected to take (`"5m"`, or seconds).
    #[serde(
        default,
        with = "crate::rollout::plan::duration_text_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expected_time_to_restore: Option<Duration>,
    /// What data could be lost or corrupted; `none` is an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_at_risk: Option<String>,
    /// Who is on call while it rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call: Option<String>,
}

impl RollbackProcedure {
    /// What the procedure still lacks, as field names; empty when it is complete.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.kind == RollbackKind::GitRevert && blank(self.commit.as_deref()) {
            missing.push("commit");
        }
        if self.steps.iter().all(|s| s.trim().is_empty()) {
            missing.push("steps");
        }
        if self.expected_time_to_restore.is_none() {
            missing.push("expected_time_to_restore");
        }
        if blank(self.data_at_risk.as_deref()) {
            missing.push("data_at_risk");
        }
        if blank(self.on_call.as_deref()) {
            missing.push("on_call");
        }
        missing
    }
}

fn blank(text: Option<&str>) -> bool {
    text.is_none_or(|t| t.trim().is_empty())
}

/// A release as written: `sluice release create FILE` or `POST /api/v1/releases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// A unique name, such as `checkout-v2`.
    pub name: String,
    /// What it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The flags the change is behind; at least one.
    pub flags: Vec<String>,
    /// Who wrote it.
    pub provenance: ProvenanceInfo,
    /// How much harm it could do.
    pub risk: Risk,
    /// Guardrails for the rollout plan, in the plan format; the template's when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Value>,
    /// How to undo it.
    pub rollback: RollbackProcedure,
    /// What is known not to work yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_limitations: Vec<String>,
    /// Whom to call, in order, when it goes wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<String>,
    /// The segment that is the beta or canary audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The longest release name.
pub const MAX_NAME_LEN: usize = 128;

impl ReleaseSpec {
    /// Reads and checks a release from YAML or JSON text. `file` names it in messages.
    pub fn parse(file: Option<&str>, text: &str, format: Format) -> Result<ReleaseSpec, Errors> {
        crate::rollout::validate::read_document(file, text, format, ReleaseSpec::from_value)
    }

    /// Reads and checks a release from a JSON value, such as an API body.
    pub fn from_value(value: Value) -> Result<ReleaseSpec, Errors> {
        let spec: ReleaseSpec = from_value_at(value, &Path::root()).map_err(|e| Errors(vec![e]))?;
        spec.check()?;
        Ok(spec)
    }

    /// Checks what serde cannot: the name, the flag keys, the guardrails and the commit.
    pub fn check(&self) -> Result<(), Errors> {
        let mut errors = Vec::new();
        let root = Path::root();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME_LEN
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            errors.push(Error::new(
                ErrorKind::Invalid,
                root.key("name"),
                format!(
                    "`{}` is not a release name: 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`",
                    self.name
                ),
            ));
        }
        if self.flags.is_empty() {
            errors.push(Error::new(
                ErrorKind::Invalid,
                root.key("flags"),
                "a release needs at least one flag",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, key) in self.flags.iter().enumerate() {
            let path = root.key("flags").index(index);
            if let Err(message) = crate::check_key(key) {
                errors.push(Error::new(ErrorKind::Invalid, path, message));
            } else if !seen.insert(key.as_str()) {
                errors.push(Error::new(
                    ErrorKind::Duplicate,
                    path,
                    format!("flag `{key}` is listed twice"),
                ));
            }
        }
        if self.rollback.kind == RollbackKind::GitRevert && blank(self.rollback.commit.as_deref()) {
            errors.push(Error::new(
                ErrorKind::Invalid,
                root.key("rollback").key("commit"),
                "a git-revert rollback names the commit to revert",
            ));
        }
        if let Some(guardrails) = &self.guardrails
            && let Err(more) = self.plan_guardrails_from(guardrails)
        {
            errors.extend(more.0);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Errors(errors))
        }
    }

    fn plan_guardrails_from(
        &self,
        guardrails: &Value,
    ) -> Result<Vec<crate::rollout::Guardrail>, Errors> {
        let probe = serde_json::json!({
            "stages": [{"percent": 100}],
            "guardrails": guardrails,
        });
        crate::rollout::RolloutPlan::from_value(probe).map(|plan| plan.guardrails)
    }

    /// The rollout plan for this release: the policy's plan with the release's guardrails.
    pub fn plan(&self, policy: &crate::rollout::Policy) -> crate::rollout::RolloutPlan {
        let mut plan = policy.plan();
        if let Some(guardrails) = &self.guardrails
            && let Ok(guardrails) = self.plan_guardrails_from(guardrails)
        {
            plan.guardrails = guardrails;
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
name: checkout-v2
description: The new checkout
flags: [new-checkout]
provenance: {kind: ai-assisted, tool: some-model, link: "https://git.example/pr/42", reviewer: ana}
risk: high
rollback:
  kind: git-revert
  commit: 4f2a9c1
  steps: [revert the commit, deploy]
  expected_time_to_restore: 15m
  data_at_risk: none
  on_call: ana
known_limitations: [no gift cards yet]
escalation: [ana, payments team]
audience: beta-testers
"#;

    #[test]
    fn reads_a_release_from_yaml() {
        let spec = ReleaseSpec::parse(None, YAML, Format::Yaml).unwrap();
        assert_eq!(spec.provenance.kind, Provenance::AiAssisted);
        assert_eq!(spec.risk, Risk::High);
        assert_eq!(
            spec.rollback.expected_time_to_restore,
            Some(Duration::from_secs(900))
        );
        assert!(spec.rollback.missing().is_empty());
    }

    #[test]
    fn errors_name_their_path_and_line() {
        let text = YAML
            .replace("commit: 4f2a9c1", "commit: \"\"")
            .replace("risk: high", "risk: extreme");
        let errors = ReleaseSpec::parse(Some("r.yaml"), &text, Format::Yaml).unwrap_err();
        let first = errors.iter().next().unwrap();
        assert_eq!(first.path.to_string(), "risk");
        assert!(first.position.is_some());
        let text = YAML.replace("commit: 4f2a9c1", "commit: \"\"");
        let errors = ReleaseSpec::parse(None, &text, Format::Yaml).unwrap_err();
        assert_eq!(
            errors.iter().next().unwrap().path.to_string(),
            "rollback.commit"
        );
        let text = YAML.replace("flags: [new-checkout]", "flags: [a, a]");
        let errors = ReleaseSpec::parse(None, &text, Format::Yaml).unwrap_err();
        assert_eq!(errors.iter().next().unwrap().path.to_string(), "flags[1]");
    }

    #[test]
    fn an_incomplete_rollback_says_what_it_lacks() {
        let procedure = RollbackProcedure {
            kind: RollbackKind::FlagOff,
            commit: None,
            steps: vec![],
            expected_time_to_restore: None,
            data_at_risk: Some("none".into()),
            on_call: Some(" ".into()),
        };
        assert_eq!(
            procedure.missing(),
            ["steps", "expected_time_to_restore", "on_call"]
        );
    }
}
