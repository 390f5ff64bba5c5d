//! Which release an install is offered: cohorts salted per release, and the fallback to the
//! channel's newest complete release.
//!
//! An install is in a release's cohort when its bucket under the release's salt,
//! `(murmur3(salt ‖ ":" ‖ install id) × 100,000) >> 32` as for flags, is below the release's
//! share. Raising the share only adds buckets, so it never removes an install; a new
//! release has a new salt, so it draws a fresh cohort.

use crate::apps::release::{Release, ReleaseState};
use crate::bucket::bucket;

/// Who is asking for an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Install<'a> {
    /// The install's stable id (electron-updater's `x-user-staging-id`), if it sent one.
    pub id: Option<&'a str>,
    /// Whether a person pressed "check for updates", which bypasses the cohort of a
    /// release that allows it.
    pub manual: bool,
}

/// Whether an install is in a release's cohort. An install without an id is outside every
/// partial cohort, and inside a cohort of 100%.
pub fn in_cohort(release: &Release, install_id: Option<&str>) -> bool {
    if release.share.is_all() {
        return true;
    }
    match install_id {
        Some(id) if !id.is_empty() => bucket(&release.salt, id) < release.share.weight(),
        _ => false,
    }
}

/// Whether `release` may be offered to `install` at all: complete releases to everyone,
/// rolling ones to their cohort (or a manual check when allowed), halted and pulled ones
/// to nobody.
fn offerable(release: &Release, install: &Install<'_>) -> bool {
    match release.state {
        ReleaseState::Complete => true,
        ReleaseState::Rolling => {
            in_cohort(release, install.id) || (install.manual && release.allow_manual)
        }
        ReleaseState::Halted | ReleaseState::Pulled => false,
    }
}

/// The release to offer `install` among one channel's `releases` (in any order): the
/// newest by semantic version that is offerable to it and `usable` (it has a build for the
/// install's platform, signed when the format needs it). `None` when there is none.
pub fn offer<'r>(
    releases: &'r [Release],
    install: &Install<'_>,
    usable: impl Fn(&Release) -> bool,
) -> Option<&'r Release> {
    releases
        .iter()
        .filter(|release| offerable(release, install) && usable(release))
        .max_by(|a, b| a.semver().cmp(&b.semver()))
}

/// Whether `release` is newer than the version an install runs. An unparsable running
/// version is treated as older than everything, so the install can recover.
pub fn is_newer(release: &Release, running: &str) -> bool {
    match semver::Version::parse(running.trim_start_matches('v')) {
        Ok(running) => release.semver() > running,
        Err(_) => true,
    }
}
