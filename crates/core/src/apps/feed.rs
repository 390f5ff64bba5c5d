//! The three update feed formats, rendered from one release: electron-updater's
//! `latest.yml`, a Sparkle appcast, and Tauri's dynamic update JSON.
//!
//! A feed carries exactly the release chosen for the requesting install (see
//! [`crate::apps::offer`]), never a staging percentage: the server has already staged.

use serde_json::{Value, json};

use crate::apps::release::{Arch, Os, Release};

/// A time in milliseconds as RFC 3339 with milliseconds in UTC, as electron-builder writes
/// `releaseDate` (`2026-01-02T03:04:05.000Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(time) => format!("{time:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// A time in milliseconds as RFC 2822 in GMT, for RSS `pubDate`.
pub fn rfc2822(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .and_then(|time| {
            jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&time)
                .ok()
        })
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".to_owned())
}

/// A YAML single-quoted scalar: always a string, whatever it looks like (a date, a number).
fn yaml_quoted(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("'{}'", cleaned.replace('\'', "''"))
}

/// electron-updater's `{channel}.yml` for `os`: every build of the release for that OS in
/// `files` (the client picks its architecture by file name), the first one also as the
/// legacy `path` and `sha512`. Every value is a single-quoted string, as electron-builder
/// writes `releaseDate`, so js-yaml never reads a date or a number. `None` when the release
/// has no build for `os`.
pub fn electron_yml(release: &Release, os: Os) -> Option<String> {
    let files: Vec<_> = release.artifacts.iter().filter(|a| a.os == os).collect();
    let first = files.first()?;
    let mut yml = format!("version: {}\nfiles:\n", yaml_quoted(&release.version));
    for file in &files {
        yml.push_str(&format!(
            "  - url: {}\n    sha512: {}\n    size: {}\n",
            yaml_quoted(&file.url),
            yaml_quoted(&file.sha512),
            file.size
        ));
    }
    yml.push_str(&format!("path: {}\n", yaml_quoted(&first.url)));
    yml.push_str(&format!("sha512: {}\n", yaml_quoted(&first.sha512)));
    yml.push_str(&format!(
        "releaseDate: {}\n",
        yaml_quoted(&rfc3339_ms(release.pub_date_ms))
    ));
    if let Some(notes) = &release.notes {
        // Notes keep their line breaks in a literal block.
        yml.push_str("releaseNotes: |2-\n");
        for line in notes.lines() {
            let line: String = line
                .chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect();
            yml.push_str(&format!("  {line}\n"));
        }
    }
    Some(yml)
}

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A Sparkle appcast for `os` and `arch` with one item, the release offered, or none
/// (`release` is `None`), which Sparkle reads as "no update".
///
/// `sparkle:version` and `sparkle:shortVersionString` both carry the semantic version, so
/// the app's `CFBundleVersion` must be that version too (Sparkle compares it with
/// `sparkle:version`). The enclosure carries the artifact's URL, size and, when present,
/// its EdDSA signature as `sparkle:edSignature`.
pub fn sparkle_appcast(
    title: &str,
    release: Option<&Release>,
    os: Os,
    arch: Option<Arch>,
) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <rss version=\"2.0\" xmlns:sparkle=\"http://www.andymatuschak.org/xml-namespaces/sparkle\">\n  <channel>\n",
    );
    xml.push_str(&format!("    <title>{}</title>\n", xml_escape(title)));
    if let Some((release, artifact)) = release.and_then(|r| r.artifact(os, arch).map(|a| (r, a))) {
        let version = xml_escape(&release.version);
        xml.push_str("    <item>\n");
        xml.push_str(&format!("      <title>{version}</title>\n"));
        xml.push_str(&format!(
            "      <pubDate>{}</pubDate>\n",
            rfc2822(release.pub_date_ms)
        ));
        xml.push_str(&format!(
            "      <sparkle:version>{version}</sparkle:version>\n"
        ));
        xml.push_str(&format!(
            "      <sparkle:shortVersionString>{version}</sparkle:shortVersionString>\n"
        ));
        if let Some(notes) = &release.notes {
            xml.push_str(&format!(
                "      <description>{}</description>\n",
                xml_escape(notes)
            ));
        }
        let signature = artifact
            .signature
            .as_deref()
            .map(|s| format!(" sparkle:edSignature=\"{}\"", xml_escape(s)))
            .unwrap_or_default();
        xml.push_str(&format!(
            "      <enclosure url=\"{}\" length=\"{}\" type=\"application/octet-stream\"{signature}/>\n",
            xml_escape(&artifact.url),
            artifact.size
        ));
        xml.push_str("    </item>\n");
    }
    xml.push_str("  </channel>\n</rss>\n");
    xml
}

/// Whether the release has a signed build Tauri can install on `os` and `arch`.
pub fn tauri_usable(release: &Release, os: Os, arch: Arch) -> bool {
    release
        .artifact(os, Some(arch))
        .is_some_and(|a| a.signature.is_some())
}

/// Tauri's update JSON for one target, `{version, notes, pub_date, platforms: {"darwin-aarch64":
/// {url, signature}}}`, or `None` when the release has no signed build for it.
pub fn tauri_json(release: &Release, os: Os, arch: Arch) -> Option<Value> {
    let artifact = release.artifact(os, Some(arch))?;
    let signature = artifact.signature.as_deref()?;
    let target = format!("{}-{}", os.tauri(), arch.tauri());
    Some(json!({
        "version": release.version,
        "notes": release.notes.as_deref().unwrap_or_default(),
        "pub_date": format!("{}", jiff::Timestamp::from_millisecond(release.pub_date_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)),
        "platforms": { target: { "url": artifact.url, "signature": signature } },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_the_clients_expect() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc2822(1_700_000_000_123), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn electron_yaml_quotes_the_date_so_js_yaml_reads_a_string() {
        let spec: crate::apps::ReleaseSpec = serde_json::from_value(json!({
            "channel": "stable", "version": "1.2.0", "percent": 100,
            "artifacts": [{"os": "windows", "arch": "x64", "url": "https://dl.example.com/a b.exe",
                "size": 5, "sha512": "A".repeat(86) + "=="}]
        }))
        .unwrap();
        let release = Release::new(&spec, "s".into(), 1_700_000_000_123, 0);
        let yml = electron_yml(&release, Os::Windows).unwrap();
        println!("{yml}");
        assert!(
            yml.contains("releaseDate: '2023-11-14T22:13:20.123Z'"),
            "{yml}"
        );
        assert!(yml.contains("version: '1.2.0'"), "{yml}");
        assert!(electron_yml(&release, Os::Macos).is_none());
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(xml_escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
