//! The page frame every console page shares, and small formatting helpers.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::Viewer;

/// The console's Content-Security-Policy: only our own script, style and forms.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every console page carries: no caching, no framing, our own resources only.
fn headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

/// Which section of the console a page belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Flags.
    Flags,
    /// Rollouts.
    Rollouts,
    /// Releases.
    Releases,
    /// The audit log.
    Audit,
    /// Sign-in and errors.
    None,
}

/// A whole page.
pub fn page(viewer: Option<&Viewer>, section: Section, title: &str, body: Markup) -> Response {
    page_with_status(StatusCode::OK, viewer, section, title, body)
}

/// A whole page with a status.
pub fn page_with_status(
    status: StatusCode,
    viewer: Option<&Viewer>,
    section: Section,
    title: &str,
    body: Markup,
) -> Response {
    let nav = [
        (Section::Flags, "/flags", "Flags"),
        (Section::Rollouts, "/rollouts", "Rollouts"),
        (Section::Releases, "/releases", "Releases"),
        (Section::Audit, "/audit", "Audit log"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sluice" }
                link rel="stylesheet" href="/console.css";
                script src="/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Sluice" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Sections" {
                            ul {
                                @for (s, href, label) in nav {
                                    @if viewer.can_write() || !matches!(s, Section::Releases | Section::Audit) {
                                        li {
                                            a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        div.who {
                            span {
                                (viewer.token().name) " · "
                                @if viewer.can_write() { "admin" } @else {
                                    "read-only, " (viewer.environment().unwrap_or("-"))
                                }
                            }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (status, headers(), markup.into_string()).into_response()
}

/// An error page.
pub fn error_page(viewer: Option<&Viewer>, status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    page_with_status(
        status,
        viewer,
        Section::None,
        title,
        html! {
            p.error role="alert" { (message) }
            p { a href="/" { "Back to the console" } }
        },
    )
}

/// A time for people: `2026-11-28 23:40:12 UTC`.
pub fn time(ms: i64) -> String {
    format_utc(ms)
}

/// Formats Unix milliseconds as a UTC date and time without a date library.
fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A percentage with one decimal.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_795_909_212_000), "2026-11-28 23:40:12 UTC");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
