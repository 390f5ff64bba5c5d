//! The release model: versions, artifacts per OS and architecture, the staged share, the
//! state (rolling, halted, complete, pulled), the checks a new release must pass, and the
//! commands people give (promote, halt, resume, pull) as pure transitions.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::apps::gate::{GateState, ReleasePlan};
use crate::compile::check_key;
use crate::error::{Error, ErrorKind, Errors, Path};
use crate::model::WEIGHT_TOTAL;

/// The channels every new app has.
pub const DEFAULT_CHANNELS: [&str; 3] = ["stable", "beta", "nightly"];
/// The most artifacts one release may carry.
pub const MAX_ARTIFACTS: usize = 32;
/// The longest release notes accepted, in bytes.
pub const MAX_NOTES_LEN: usize = 64 * 1024;
/// The longest artifact URL accepted, in bytes.
const MAX_URL_LEN: usize = 2048;
/// The longest artifact signature accepted, in bytes.
const MAX_SIGNATURE_LEN: usize = 4096;

/// The share of installs a release is offered to, as a weight out of 100,000 like flag
/// split weights: one unit is a thousandth of a percent. Unlike a flag stage it may be 0
/// (nobody yet), which is not the same as halted. Written as a percent number (`10`,
/// `0.1`, `"0.1%"`); a share finer than 0.001% is refused, never rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Share(u32);

impl Share {
    /// Nobody.
    pub const NONE: Share = Share(0);
    /// Every install of the channel.
    pub const ALL: Share = Share(WEIGHT_TOTAL);

    /// A share from a weight in `0..=100_000`.
    pub fn from_weight(weight: u32) -> Option<Share> {
        (weight <= WEIGHT_TOTAL).then_some(Share(weight))
    }

    /// A share from a percent number in `[0, 100]` with at most three decimals.
    pub fn from_percent(percent: f64) -> Result<Share, String> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(format!(
                "a share must be from 0 to 100 percent, not {percent}"
            ));
        }
        let scaled = percent * 1000.0;
        let weight = scaled.round();
        if (scaled - weight).abs() > 1e-6 {
            return Err(format!(
                "{percent}% is finer than the 0.001% steps a share moves in; it would be rounded"
            ));
        }
        // In range: 0 <= weight <= 100_000.
        Ok(Share(weight as u32))
    }

    /// The weight out of 100,000.
    pub fn weight(self) -> u32 {
        self.0
    }

    /// The percent number, such as `0.1`.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 1000.0
    }

    /// Whether this is every install.
    pub fn is_all(self) -> bool {
        self.0 == WEIGHT_TOTAL
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.percent())
    }
}

impl Serialize for Share {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            serializer.serialize_u32(self.0 / 1000)
        } else {
            serializer.serialize_f64(self.percent())
        }
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Share, D::Error> {
        struct ShareVisitor;

        impl Visitor<'_> for ShareVisitor {
            type Value = Share;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percent number such as 10 or 0.1, or a string such as \"10%\"")
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Share, E> {
                Share::from_percent(value).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Share, E> {
                self.visit_f64(value as f64)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Share, E> {
                self.visit_f64(value as f64)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Share, E> {
                let number = text.trim().strip_suffix('%').unwrap_or(text).trim();
                let value: f64 = number.parse().map_err(|_| {
                    E::custom(format!("`{text}` is not a percentage; write 10 or \"10%\""))
                })?;
                self.visit_f64(value)
            }
        }

        deserializer.deserialize_any(ShareVisitor)
    }
}

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    /// Offered to the installs in its cohort.
    Rolling,
    /// Offered to nobody new; installs that already have it keep it. Resumable.
    Halted,
    /// Offered to every install of the channel.
    Complete,
    /// Never offered again. Final.
    Pulled,
}

impl ReleaseState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Rolling => "rolling",
            ReleaseState::Halted => "halted",
            ReleaseState::Complete => "complete",
            ReleaseState::Pulled => "pulled",
        }
    }
}

impl FromStr for ReleaseState {
    type Err = String;

    fn from_str(text: &str) -> Result<ReleaseState, String> {
        match text {
            "rolling" => Ok(ReleaseState::Rolling),
            "halted" => Ok(ReleaseState::Halted),
            "complete" => Ok(ReleaseState::Complete),
            "pulled" => Ok(ReleaseState::Pulled),
            other => Err(format!(
                "unknown release state `{other}`: expected rolling, halted, complete or pulled"
            )),
        }
    }
}

/// An operating system, in electron-builder's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// Windows.
    Windows,
    /// macOS.
    Macos,
    /// Linux.
    Linux,
}

impl Os {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Windows => "windows",
            Os::Macos => "macos",
            Os::Linux => "linux",
        }
    }

    /// From Tauri's `{{target}}`: `darwin`, `windows` or `linux`.
    pub fn from_tauri(target: &str) -> Option<Os> {
        match target {
            "darwin" | "macos" => Some(Os::Macos),
            "windows" => Some(Os::Windows),
            "linux" => Some(Os::Linux),
            _ => None,
        }
    }

    /// Tauri's name.
    pub fn tauri(self) -> &'static str {
        match self {
            Os::Windows => "windows",
            Os::Macos => "darwin",
            Os::Linux => "linux",
        }
    }
}

impl FromStr for Os {
    type Err = String;

    fn from_str(text: &str) -> Result<Os, String> {
        match text {
            "windows" | "win" => Ok(Os::Windows),
            "macos" | "mac" | "darwin" => Ok(Os::Macos),
            "linux" => Ok(Os::Linux),
            other => Err(format!(
                "unknown OS `{other}`: expected windows, macos or linux"
            )),
        }
    }
}

/// A CPU architecture, in electron-builder's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// x86-64.
    X64,
    /// 64-bit ARM.
    Arm64,
    /// 32-bit x86.
    Ia32,
    /// A macOS universal binary: serves every architecture.
    Universal,
}

impl Arch {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X64 => "x64",
            Arch::Arm64 => "arm64",
            Arch::Ia32 => "ia32",
            Arch::Universal => "universal",
        }
    }

    /// From Tauri's `{{arch}}`: `x86_64`, `aarch64` or `i686`.
    pub fn from_tauri(arch: &str) -> Option<Arch> {
        match arch {
            "x86_64" => Some(Arch::X64),
            "aarch64" => Some(Arch::Arm64),
            "i686" => Some(Arch::Ia32),
            _ => None,
        }
    }

    /// Tauri's name.
    pub fn tauri(self) -> &'static str {
        match self {
            Arch::X64 => "x86_64",
            Arch::Arm64 => "aarch64",
            Arch::Ia32 => "i686",
            Arch::Universal => "universal",
        }
    }

    /// Whether an artifact built for `self` runs on `wanted`.
    pub fn serves(self, wanted: Arch) -> bool {
        self == wanted || self == Arch::Universal
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(text: &str) -> Result<Arch, String> {
        match text {
            "x64" | "x86_64" | "amd64" => Ok(Arch::X64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "ia32" | "i686" | "x86" => Ok(Arch::Ia32),
            "universal" => Ok(Arch::Universal),
            other => Err(format!(
                "unknown architecture `{other}`: expected x64, arm64, ia32 or universal"
            )),
        }
    }
}

/// One downloadable build of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Artifact {
    /// The OS it runs on.
    pub os: Os,
    /// The architecture it runs on.
    pub arch: Arch,
    /// Where it is downloaded from: an absolute `https://` (or `http://`) URL.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-512, base64 (88 characters), as electron-builder writes it.
    pub sha512: String,
    /// A detached signature: Sparkle's EdDSA signature (base64) or the content of Tauri's
    /// `.sig` file. Tauri feeds skip artifacts without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A release as people create it (`POST /api/v1/apps/{app}/releases`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// The channel: `stable`, `beta`, `nightly` or another channel of the app.
    pub channel: String,
    /// A semantic version, unique within the channel.
    pub version: String,
    /// The builds, at most one per OS and architecture.
    pub artifacts: Vec<Artifact>,
    /// Release notes (text or HTML, as the updater shows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The publish date, RFC 3339; the creation time when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_date: Option<String>,
    /// The share of installs offered it at first; 0 when left out, or the plan's first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Share>,
    /// Whether a manual "check for updates" gets it whatever the cohort.
    #[serde(default)]
    pub allow_manual: bool,
    /// Stages the share follows automatically, gated on the crash-free session rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ReleasePlan>,
}

/// A stored release: everything the feeds and the crash gate need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// The channel.
    pub channel: String,
    /// The semantic version, checked when created.
    pub version: String,
    /// The builds.
    pub artifacts: Vec<Artifact>,
    /// Release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The publish date, in milliseconds since the Unix epoch.
    pub pub_date_ms: i64,
    /// The share of installs in its cohort.
    pub share: Share,
    /// Where it stands.
    pub state: ReleaseState,
    /// Whether a manual check bypasses the cohort.
    pub allow_manual: bool,
    /// The bucketing salt: each release draws a fresh cohort.
    pub salt: String,
    /// The automatic stages, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ReleasePlan>,
    /// Where the plan is, while it drives the share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateState>,
}

impl Release {
    /// Builds a release from a checked spec, with its salt, created at `now_ms`.
    /// `pub_date_ms` is the spec's date, parsed by [`validate_spec`].
    pub fn new(spec: &ReleaseSpec, salt: String, pub_date_ms: i64, now_ms: i64) -> Release {
        let (share, gate) = match &spec.plan {
            Some(plan) => (
                plan.stages.first().map(|s| s.percent).unwrap_or_default(),
                Some(GateState {
                    stage: 0,
                    stage_started_ms: now_ms,
                }),
            ),
            None => (spec.percent.unwrap_or_default(), None),
        };
        let state = if share.is_all() {
            ReleaseState::Complete
        } else {
            ReleaseState::Rolling
        };
        Release {
            channel: spec.channel.clone(),
            version: spec.version.clone(),
            artifacts: spec.artifacts.clone(),
            notes: spec.notes.clone(),
            pub_date_ms,
            share,
            state,
            allow_manual: spec.allow_manual,
            salt,
            plan: spec.plan.clone(),
            gate: if state == ReleaseState::Complete {
                None
            } else {
                gate
            },
        }
    }

    /// The parsed version; the lowest possible for an unparsable one (never stored).
    pub fn semver(&self) -> semver::Version {
        semver::Version::parse(&self.version).unwrap_or(semver::Version::new(0, 0, 0))
    }

    /// The artifact for `os` and `arch`: an exact match first, then a universal build.
    /// Without an architecture: a universal build, else the OS's only build; `None` when the
    /// OS has builds for several architectures, since serving one of them could install the
    /// wrong one.
    pub fn artifact(&self, os: Os, arch: Option<Arch>) -> Option<&Artifact> {
        let on_os = self.artifacts.iter().filter(|a| a.os == os);
        match arch {
            None => {
                let all: Vec<&Artifact> = on_os.collect();
                all.iter()
                    .find(|a| a.arch == Arch::Universal)
                    .copied()
                    .or_else(|| {
                        if all.len() == 1 {
                            all.first().copied()
                        } else {
                            None
                        }
                    })
            }
            Some(arch) => {
                let candidates: Vec<&Artifact> = on_os.filter(|a| a.arch.serves(arch)).collect();
                candidates
                    .iter()
                    .find(|a| a.arch == arch)
                    .or_else(|| candidates.first())
                    .copied()
            }
        }
    }
}

/// Checks a channel name: a key like a flag key.
pub fn check_channel(name: &str) -> Result<(), String> {
    check_key(name)
}

fn is_base64_sha512(text: &str) -> bool {
    text.len() == 88
        && text.ends_with("==")
        && text[..86]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Checks a new release and returns its publish date in milliseconds (`now_ms` when the
/// spec has none). Every problem is reported with its path, such as `artifacts[1].sha512`.
pub fn validate_spec(spec: &ReleaseSpec, now_ms: i64) -> Result<i64, Errors> {
    let mut problems = Vec::new();
    let mut push = |path: Path, message: String| {
        problems.push(Error::new(ErrorKind::Invalid, path, message));
    };
    if let Err(message) = check_channel(&spec.channel) {
        push(Path::root().key("channel"), message);
    }
    if let Err(error) = semver::Version::parse(&spec.version) {
        push(
            Path::root().key("version"),
            format!("`{}` is not a semantic version: {error}", spec.version),
        );
    }
    if spec.artifacts.is_empty() {
        push(
            Path::root().key("artifacts"),
            "a release needs at least one artifact".into(),
        );
    }
    if spec.artifacts.len() > MAX_ARTIFACTS {
        push(
            Path::root().key("artifacts"),
            format!("at most {MAX_ARTIFACTS} artifacts"),
        );
    }
    for (index, artifact) in spec.artifacts.iter().enumerate() {
        let at = Path::root().key("artifacts").index(index);
        let url_ok = (artifact.url.starts_with("https://") || artifact.url.starts_with("http://"))
            && artifact.url.len() <= MAX_URL_LEN
            && !artifact.url.chars().any(char::is_whitespace);
        if !url_ok {
            push(
                at.key("url"),
                format!(
                    "must be an absolute http(s) URL without spaces, at most {MAX_URL_LEN} bytes"
                ),
            );
        }
        if artifact.size == 0 {
            push(at.key("size"), "must be the size in bytes, above 0".into());
        }
        if !is_base64_sha512(&artifact.sha512) {
            push(
                at.key("sha512"),
                "must be the SHA-512 in base64 (88 characters ending in `==`), as electron-builder writes it".into(),
            );
        }
        if let Some(signature) = &artifact.signature
            && (signature.is_empty() || signature.len() > MAX_SIGNATURE_LEN)
        {
            push(
                at.key("signature"),
                format!("must be 1 to {MAX_SIGNATURE_LEN} bytes"),
            );
        }
        if spec.artifacts[..index]
            .iter()
            .any(|other| other.os == artifact.os && other.arch == artifact.arch)
        {
            push(
                at,
                format!(
                    "a second artifact for {} {}",
                    artifact.os.as_str(),
                    artifact.arch.as_str()
                ),
            );
        }
    }
    if spec.notes.as_ref().is_some_and(|n| n.len() > MAX_NOTES_LEN) {
        push(
            Path::root().key("notes"),
            format!("at most {MAX_NOTES_LEN} bytes"),
        );
    }
    let mut pub_date_ms = now_ms;
    if let Some(text) = &spec.pub_date {
        match text.parse::<jiff::Timestamp>() {
            Ok(time) => pub_date_ms = time.as_millisecond(),
            Err(error) => push(
                Path::root().key("pubDate"),
                format!("`{text}` is not an RFC 3339 time: {error}"),
            ),
        }
    }
    if spec.plan.is_some() && spec.percent.is_some() {
        push(
            Path::root().key("percent"),
            "give `percent` or a `plan`, not both: the plan's first stage sets the share".into(),
        );
    }
    if let Some(plan) = &spec.plan {
        problems.extend(plan.problems(&Path::root().key("plan")));
    }
    if problems.is_empty() {
        Ok(pub_date_ms)
    } else {
        Err(Errors(problems))
    }
}

/// A person's instruction to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum ReleaseCommand {
    /// Widen the cohort to `share`, or with a plan and no share, to the next stage;
    /// without either, to everyone (complete).
    Promote {
        /// The new share; never below the current one.
        share: Option<Share>,
    },
    /// Stop offering it to anyone new.
    Halt,
    /// Offer it again to its cohort; a plan restarts the current stage's bake.
    Resume,
    /// Never offer it again.
    Pull,
}

impl ReleaseCommand {
    /// The audit action's suffix.
    pub fn name(self) -> &'static str {
        match self {
            ReleaseCommand::Promote { .. } => "promote",
            ReleaseCommand::Halt => "halt",
            ReleaseCommand::Resume => "resume",
            ReleaseCommand::Pull => "pull",
        }
    }
}

/// Why a command does not apply to a release in its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The state does not allow the command.
    #[error("cannot {command} a release that is {state}")]
    NotAllowed {
        /// The command.
        command: &'static str,
        /// The state.
        state: &'static str,
    },
    /// A promotion to a smaller share would take the release away from installs.
    #[error(
        "cannot shrink the share from {from} to {to}: installs in the cohort would be dropped; halt the release instead"
    )]
    Shrinks {
        /// The current share.
        from: Share,
        /// The share asked for.
        to: Share,
    },
}

/// Applies a command to a release at `now_ms`: the release after it, or why it does not apply.
pub fn apply_command(
    release: &Release,
    command: ReleaseCommand,
    now_ms: i64,
) -> Result<Release, CommandError> {
    let refuse = || CommandError::NotAllowed {
        command: command.name(),
        state: release.state.as_str(),
    };
    let mut next = release.clone();
    match command {
        ReleaseCommand::Promote { share } => {
            if release.state != ReleaseState::Rolling {
                return Err(refuse());
            }
            let plan_stage =
                release
                    .plan
                    .as_ref()
                    .zip(release.gate.as_ref())
                    .and_then(|(plan, gate)| {
                        plan.stages
                            .get(gate.stage + 1)
                            .map(|s| (gate.stage + 1, s.percent))
                    });
            let target = match (share, plan_stage) {
                (Some(share), _) => share,
                (None, Some((_, percent))) => percent,
                (None, None) => Share::ALL,
            };
            if target < release.share {
                return Err(CommandError::Shrinks {
                    from: release.share,
                    to: target,
                });
            }
            next.share = target;
            if let (Some(plan), Some(gate)) = (&release.plan, &mut next.gate) {
                // The plan continues from the last stage the new share reaches.
                gate.stage = plan
                    .stages
                    .iter()
                    .rposition(|s| s.percent <= target)
                    .unwrap_or(gate.stage)
                    .max(gate.stage);
                gate.stage_started_ms = now_ms;
            }
            if target.is_all() {
                next.state = ReleaseState::Complete;
                next.gate = None;
            }
        }
        ReleaseCommand::Halt => {
            if release.state != ReleaseState::Rolling {
                return Err(refuse());
            }
            next.state = ReleaseState::Halted;
        }
        ReleaseCommand::Resume => {
            if release.state != ReleaseState::Halted {
                return Err(refuse());
            }
            next.state = ReleaseState::Rolling;
            if let Some(gate) = &mut next.gate {
                gate.stage_started_ms = now_ms;
            }
        }
        ReleaseCommand::Pull => {
            if release.state == ReleaseState::Pulled {
                return Err(refuse());
            }
            next.state = ReleaseState::Pulled;
            next.gate = None;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

    fn spec() -> ReleaseSpec {
        ReleaseSpec {
            channel: "stable".into(),
            version: "1.2.0".into(),
            artifacts: vec![Artifact {
                os: Os::Macos,
                arch: Arch::Arm64,
                url: "https://dl.example.com/app-1.2.0.zip".into(),
                size: 10,
                sha512: SHA.into(),
                signature: Some("sig".into()),
            }],
            notes: None,
            pub_date: None,
            percent: Some(Share::from_weight(100).unwrap()),
            allow_manual: false,
            plan: None,
        }
    }

    #[test]
    fn a_tenth_of_a_percent_is_100_units_and_finer_shares_are_refused() {
        assert_eq!(Share::from_percent(0.1).unwrap().weight(), 100);
        assert_eq!(Share::from_percent(0.001).unwrap().weight(), 1);
        assert_eq!(Share::from_percent(0.0).unwrap(), Share::NONE);
        assert!(Share::from_percent(0.0001).is_err());
        assert!(Share::from_percent(100.5).is_err());
        let share: Share = serde_json::from_str("\"0.1%\"").unwrap();
        assert_eq!(serde_json::to_string(&share).unwrap(), "0.1");
    }

    #[test]
    fn problems_name_their_paths() {
        let mut bad = spec();
        bad.version = "1.2".into();
        bad.artifacts[0].sha512 = "abc".into();
        bad.artifacts.push(bad.artifacts[0].clone());
        bad.pub_date = Some("yesterday".into());
        let errors = validate_spec(&bad, 0).unwrap_err();
        let paths: Vec<String> = errors.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "version",
                "artifacts[0].sha512",
                "artifacts[1].sha512",
                "artifacts[1]",
                "pubDate"
            ]
        );
        assert_eq!(validate_spec(&spec(), 7), Ok(7));
    }

    #[test]
    fn without_an_architecture_only_an_unambiguous_build_is_chosen() {
        let mut release = Release::new(&spec(), "salt".into(), 0, 0);
        assert_eq!(
            release.artifact(Os::Macos, None).map(|a| a.arch),
            Some(Arch::Arm64)
        );
        let mut intel = release.artifacts[0].clone();
        intel.arch = Arch::X64;
        release.artifacts.push(intel);
        assert!(
            release.artifact(Os::Macos, None).is_none(),
            "arm64 or x64: ambiguous"
        );
        assert_eq!(
            release.artifact(Os::Macos, Some(Arch::X64)).map(|a| a.arch),
            Some(Arch::X64)
        );
        let mut universal = release.artifacts[0].clone();
        universal.arch = Arch::Universal;
        release.artifacts.push(universal);
        assert_eq!(
            release.artifact(Os::Macos, None).map(|a| a.arch),
            Some(Arch::Universal)
        );
        assert!(release.artifact(Os::Windows, Some(Arch::X64)).is_none());
    }

    #[test]
    fn commands_follow_the_states() {
        let release = Release::new(&spec(), "salt".into(), 0, 0);
        assert_eq!(release.state, ReleaseState::Rolling);
        let halted = apply_command(&release, ReleaseCommand::Halt, 1).unwrap();
        assert_eq!(halted.state, ReleaseState::Halted);
        assert!(apply_command(&halted, ReleaseCommand::Promote { share: None }, 1).is_err());
        let resumed = apply_command(&halted, ReleaseCommand::Resume, 2).unwrap();
        assert_eq!(resumed.state, ReleaseState::Rolling);
        let shrink = apply_command(
            &resumed,
            ReleaseCommand::Promote {
                share: Some(Share::NONE),
            },
            3,
        );
        assert!(matches!(shrink, Err(CommandError::Shrinks { .. })));
        let complete = apply_command(&resumed, ReleaseCommand::Promote { share: None }, 3).unwrap();
        assert_eq!(complete.state, ReleaseState::Complete);
        assert!(complete.share.is_all());
        let pulled = apply_command(&complete, ReleaseCommand::Pull, 4).unwrap();
        assert_eq!(pulled.state, ReleaseState::Pulled);
        assert!(apply_command(&pulled, ReleaseCommand::Pull, 5).is_err());
    }
}
