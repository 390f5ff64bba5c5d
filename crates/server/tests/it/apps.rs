//! Desktop update feeds against a real server, each parsed the way its client parses it:
//! electron-updater's `latest.yml`, a Sparkle appcast and Tauri's dynamic endpoint. Cohorts
//! per install, halts, pulls, manual checks, audited commands, and the crash gate halting a
//! rolling release from reported sessions, end to end through the leader's loop.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::apps::{Release, in_cohort};

use crate::helpers::{Options, TestApp, spawn_app, spawn_with};

fn sha(seed: char) -> String {
    format!("{}==", seed.to_string().repeat(86))
}

fn artifacts(version: &str) -> Value {
    json!([
        {"os": "windows", "arch": "x64", "url": format!("https://dl.example.com/Desk-Setup-{version}.exe"),
            "size": 81_000_000, "sha512": sha('W')},
        {"os": "macos", "arch": "arm64", "url": format!("https://dl.example.com/Desk-{version}-arm64.zip"),
            "size": 92_000_000, "sha512": sha('M'), "signature": format!("ed25519-sig-{version}")},
        {"os": "macos", "arch": "x64", "url": format!("https://dl.example.com/Desk-{version}-x64.zip"),
            "size": 93_000_000, "sha512": sha('X'), "signature": format!("ed25519-sig-x64-{version}")},
    ])
}

async fn create_app(app: &TestApp) {
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/apps",
            json!({"key": "desk", "name": "Desk & Co"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create_app_release(app: &TestApp, body: Value) -> Value {
    let (status, created) = app
        .admin_json(Method::POST, "/api/v1/apps/desk/releases", body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// 1.0.0 complete on stable, 1.1.0 rolling to `percent`.
async fn two_releases(app: &TestApp, percent: f64, allow_manual: bool) -> Release {
    create_app(app).await;
    create_app_release(
        app,
        json!({"channel": "stable", "version": "1.0.0", "percent": 100, "artifacts": artifacts("1.0.0"),
               "pubDate": "2026-01-05T10:00:00Z", "notes": "First."}),
    )
    .await;
    let created = create_app_release(
        app,
        json!({"channel": "stable", "version": "1.1.0", "percent": percent, "artifacts": artifacts("1.1.0"),
               "pubDate": "2026-02-05T10:00:00Z", "notes": "Faster <sync> & 'more'.", "allowManual": allow_manual}),
    )
    .await;
    serde_json::from_value(created).unwrap()
}

async fn command(app: &TestApp, version: &str, name: &str, body: Value) -> (StatusCode, Value) {
    app.admin_json(
        Method::POST,
        &format!("/api/v1/apps/desk/channels/stable/releases/{version}/{name}"),
        body,
    )
    .await
}

fn install_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{:08x}-7c1e-4b2a-9f00-{i:012x}",
                i * 2_654_435_761 % 4_294_967_291
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// electron-updater

/// What electron-updater does with a feed (AppUpdater.isUpdateAvailable and
/// resolveFiles): it needs `version`, `files[]` with `url`, `sha512` and `size`, and a
/// `releaseDate` string; an update is available when the feed's version is greater than the
/// running one (no `stagingPercentage`: the server staged already).
fn electron_check(yml: &str, running: &str) -> Option<(semver::Version, Vec<String>)> {
    let info: Value = yaml_serde::from_str(yml).unwrap();
    let version =
        semver::Version::parse(info["version"].as_str().expect("version is a string")).unwrap();
    let files = info["files"].as_array().expect("files");
    assert!(
        !files.is_empty(),
        "electron-updater refuses a feed without files"
    );
    let mut urls = Vec::new();
    for file in files {
        let url = file["url"].as_str().expect("files[].url");
        let sha512 = file["sha512"].as_str().expect("files[].sha512");
        assert_eq!(sha512.len(), 88, "base64 SHA-512");
        assert!(file["size"].as_u64().unwrap() > 0);
        urls.push(url.to_owned());
    }
    assert_eq!(
        info["path"].as_str(),
        Some(urls[0].as_str()),
        "legacy path is the first file"
    );
    assert!(info["sha512"].is_string());
    let date = info["releaseDate"]
        .as_str()
        .expect("releaseDate is a string, not a YAML date");
    assert!(
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            .unwrap()
            .is_match(date),
        "{date}"
    );
    assert!(info.get("stagingPercentage").is_none());
    let running = semver::Version::parse(running).unwrap();
    (version > running).then_some((version, urls))
}

async fn electron_feed(app: &TestApp, file: &str, install: Option<&str>) -> (StatusCode, String) {
    let mut request = app.request(Method::GET, &format!("/apps/desk/{file}"), None);
    if let Some(install) = install {
        request = request.header("x-user-staging-id", install);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn electron_updater_gets_the_release_of_its_cohort_and_the_previous_one_outside() {
    let app = spawn_app().await;
    let rolling = two_releases(&app, 30.0, false).await;
    let ids = install_ids(400);
    let mut updated = 0;
    for id in &ids {
        let (status, yml) = electron_feed(&app, "latest.yml", Some(id)).await;
        assert_eq!(status, StatusCode::OK, "{yml}");
        let update = electron_check(&yml, "1.0.0");
        assert_eq!(update.is_some(), in_cohort(&rolling, Some(id)), "{id}");
        if let Some((version, urls)) = update {
            assert_eq!(version.to_string(), "1.1.0");
            assert_eq!(urls, ["https://dl.example.com/Desk-Setup-1.1.0.exe"]);
            updated += 1;
        }
    }
    assert!((80..=160).contains(&updated), "{updated} of 400 at 30%");

    // The mac feed lists both architectures; an install without an id stays outside.
    let (_, yml) = electron_feed(&app, "stable-mac.yml", None).await;
    assert!(electron_check(&yml, "1.0.0").is_none());
    let (_, info) = (0, yaml_serde::from_str::<Value>(&yml).unwrap());
    assert_eq!(info["version"], "1.0.0");
    assert_eq!(info["files"].as_array().unwrap().len(), 2);
    assert_eq!(
        electron_feed(&app, "latest-linux.yml", None).await.0,
        StatusCode::NOT_FOUND
    );

    // Halting stops new offers at once: the very next request offers 1.0.0 to everyone.
    let (status, body) = command(&app, "1.1.0", "halt", json!({"reason": "crash spike"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for id in &ids {
        let (_, yml) = electron_feed(&app, "latest.yml", Some(id)).await;
        assert!(
            electron_check(&yml, "1.0.0").is_none(),
            "{id} still offered 1.1.0"
        );
    }
    // Resuming offers it to exactly the same cohort again.
    command(&app, "1.1.0", "resume", json!({})).await;
    for id in ids.iter().take(100) {
        let (_, yml) = electron_feed(&app, "latest.yml", Some(id)).await;
        assert_eq!(
            electron_check(&yml, "1.0.0").is_some(),
            in_cohort(&rolling, Some(id))
        );
    }
}

// ---------------------------------------------------------------------------------------
// Sparkle

/// What Sparkle does with an appcast (SUAppcast, SUBasicUpdateDriver): every `<item>` with
/// an `<enclosure>` is a candidate; its version is `<sparkle:version>` (or the enclosure's
/// `sparkle:version` attribute); the best item is the newest one newer than the running
/// version, compared as SUStandardVersionComparator does (numeric parts in order).
struct SparkleItem {
    version: String,
    short_version: Option<String>,
    url: String,
    length: u64,
    ed_signature: Option<String>,
    description: Option<String>,
}

fn sparkle_check(xml: &str, running: &str) -> Option<SparkleItem> {
    const SPARKLE: &str = "http://www.andymatuschak.org/xml-namespaces/sparkle";
    let document = roxmltree::Document::parse(xml).unwrap();
    let rss = document.root_element();
    assert_eq!(rss.tag_name().name(), "rss");
    let channel = rss
        .children()
        .find(|n| n.has_tag_name("channel"))
        .expect("channel");
    let text = |item: roxmltree::Node<'_, '_>, ns: Option<&str>, name: &str| {
        item.children()
            .find(|n| match ns {
                Some(ns) => n.has_tag_name((ns, name)),
                None => n.has_tag_name(name),
            })
            .and_then(|n| n.text())
            .map(str::to_owned)
    };
    let numeric = |v: &str| -> Vec<u64> {
        v.split(['.', '-'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let mut best: Option<SparkleItem> = None;
    for item in channel.children().filter(|n| n.has_tag_name("item")) {
        let Some(enclosure) = item.children().find(|n| n.has_tag_name("enclosure")) else {
            continue;
        };
        let version = text(item, Some(SPARKLE), "version")
            .or_else(|| enclosure.attribute((SPARKLE, "version")).map(str::to_owned))
            .expect("an item needs a version");
        if numeric(&version) <= numeric(running) {
            continue;
        }
        assert_eq!(
            enclosure.attribute("type"),
            Some("application/octet-stream")
        );
        let candidate = SparkleItem {
            short_version: text(item, Some(SPARKLE), "shortVersionString"),
            url: enclosure
                .attribute("url")
                .expect("enclosure url")
                .to_owned(),
            length: enclosure
                .attribute("length")
                .expect("enclosure length")
                .parse()
                .unwrap(),
            ed_signature: enclosure
                .attribute((SPARKLE, "edSignature"))
                .map(str::to_owned),
            description: text(item, None, "description"),
            version,
        };
        if best
            .as_ref()
            .is_none_or(|b| numeric(&candidate.version) > numeric(&b.version))
        {
            best = Some(candidate);
        }
    }
    best
}

async fn appcast(app: &TestApp, query: &str, install: Option<&str>) -> String {
    let mut request = app.request(
        Method::GET,
        &format!("/apps/desk/stable/appcast.xml{query}"),
        None,
    );
    if let Some(install) = install {
        request = request.header("x-sluice-install-id", install);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/rss+xml")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn sparkle_reads_one_item_for_its_cohort_and_a_manual_check_bypasses_staging() {
    let app = spawn_app().await;
    let rolling = two_releases(&app, 10.0, true).await;
    let ids = install_ids(300);
    let inside = ids.iter().find(|id| in_cohort(&rolling, Some(id))).unwrap();
    let outside = ids
        .iter()
        .find(|id| !in_cohort(&rolling, Some(id)))
        .unwrap();

    let xml = appcast(&app, "?arch=arm64", Some(inside)).await;
    let item = sparkle_check(&xml, "1.0.0").expect("in the cohort, 1.1.0 is offered");
    assert_eq!(item.version, "1.1.0");
    assert_eq!(item.short_version.as_deref(), Some("1.1.0"));
    assert_eq!(item.url, "https://dl.example.com/Desk-1.1.0-arm64.zip");
    assert_eq!(item.length, 92_000_000);
    assert_eq!(item.ed_signature.as_deref(), Some("ed25519-sig-1.1.0"));
    assert_eq!(item.description.as_deref(), Some("Faster <sync> & 'more'."));
    // The query parameter identifies an install just as well as the header.
    let by_query = appcast(&app, &format!("?arch=x64&install={inside}"), None).await;
    assert_eq!(
        sparkle_check(&by_query, "1.0.0").unwrap().url,
        "https://dl.example.com/Desk-1.1.0-x64.zip"
    );

    // Two macOS builds and no universal one: without `arch` nothing is risked.
    let ambiguous = appcast(&app, "", Some(inside)).await;
    assert!(sparkle_check(&ambiguous, "0.1.0").is_none(), "{ambiguous}");
    let xml = appcast(&app, "?arch=arm64", Some(outside)).await;
    assert!(
        sparkle_check(&xml, "1.0.0").is_none(),
        "outside, nothing newer than 1.0.0"
    );
    assert_eq!(
        sparkle_check(&xml, "0.9.0").unwrap().version,
        "1.0.0",
        "the previous release is offered"
    );
    // "Check for Updates…" gets the rolling release, since it allows manual checks.
    let manual = appcast(&app, "?arch=arm64&manual=1", Some(outside)).await;
    assert_eq!(sparkle_check(&manual, "1.0.0").unwrap().version, "1.1.0");

    // A pulled release is never offered, even to a manual check.
    let (status, body) = command(&app, "1.1.0", "pull", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let manual = appcast(&app, "?arch=arm64&manual=1", Some(inside)).await;
    assert!(sparkle_check(&manual, "1.0.0").is_none());
}

// ---------------------------------------------------------------------------------------
// Tauri

/// What Tauri's updater does with the dynamic endpoint's answer: 204 means no update; a
/// 200 is JSON with `version` (semver, newer than the running one), `pub_date` (RFC 3339),
/// `notes`, and `platforms["{target}-{arch}"]` with `url` and `signature`.
async fn tauri_check(
    app: &TestApp,
    target: &str,
    arch: &str,
    running: &str,
    install: Option<&str>,
) -> Option<(String, String, String)> {
    let mut request = app.request(
        Method::GET,
        &format!("/apps/desk/stable/tauri/{target}/{arch}/{running}"),
        None,
    );
    if let Some(install) = install {
        request = request.header("x-sluice-install-id", install);
    }
    let response = request.send().await.unwrap();
    match response.status() {
        StatusCode::NO_CONTENT => {
            assert!(response.text().await.unwrap().is_empty());
            None
        }
        StatusCode::OK => {
            let body: Value = response.json().await.unwrap();
            let version = semver::Version::parse(body["version"].as_str().unwrap()).unwrap();
            assert!(
                version > semver::Version::parse(running).unwrap(),
                "Tauri would not install {version}"
            );
            let date = body["pub_date"].as_str().unwrap();
            assert!(
                regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
                    .unwrap()
                    .is_match(date),
                "{date}"
            );
            assert!(body["notes"].is_string());
            let platform = &body["platforms"][format!("{target}-{arch}")];
            let url = platform["url"].as_str().expect("platform url").to_owned();
            let signature = platform["signature"]
                .as_str()
                .expect("platform signature")
                .to_owned();
            Some((version.to_string(), url, signature))
        }
        other => panic!("Tauri treats {other} as an error"),
    }
}

#[tokio::test]
async fn tauri_gets_204_without_an_update_and_the_signed_build_of_its_target_otherwise() {
    let app = spawn_app().await;
    let rolling = two_releases(&app, 50.0, false).await;
    let ids = install_ids(200);
    let inside = ids.iter().find(|id| in_cohort(&rolling, Some(id))).unwrap();
    let outside = ids
        .iter()
        .find(|id| !in_cohort(&rolling, Some(id)))
        .unwrap();

    let (version, url, signature) = tauri_check(&app, "darwin", "aarch64", "1.0.0", Some(inside))
        .await
        .unwrap();
    assert_eq!(
        (version.as_str(), url.as_str(), signature.as_str()),
        (
            "1.1.0",
            "https://dl.example.com/Desk-1.1.0-arm64.zip",
            "ed25519-sig-1.1.0"
        )
    );
    assert!(
        tauri_check(&app, "darwin", "aarch64", "1.0.0", Some(outside))
            .await
            .is_none()
    );
    assert!(
        tauri_check(&app, "darwin", "aarch64", "1.1.0", Some(inside))
            .await
            .is_none()
    );
    let (version, ..) = tauri_check(&app, "darwin", "x86_64", "0.9.0", None)
        .await
        .unwrap();
    assert_eq!(
        version, "1.0.0",
        "without an id, the previous complete release"
    );
    // The Windows builds carry no signature, so Tauri is offered nothing there.
    assert!(
        tauri_check(&app, "windows", "x86_64", "0.9.0", Some(inside))
            .await
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------
// Control and audit

#[tokio::test]
async fn release_commands_are_checked_and_audited() {
    let app = spawn_app().await;
    two_releases(&app, 0.1, false).await;
    let (status, body) = command(&app, "1.1.0", "promote", json!({"percent": 0.05})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("shrink"),
        "{body}"
    );
    let (status, body) = command(&app, "1.1.0", "promote", json!({"percent": 0.0001})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "percent", "{body}");
    let (status, body) = command(&app, "1.1.0", "promote", json!({"percent": 25})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["share"], 25);
    let (status, _) = command(&app, "1.1.0", "resume", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = command(&app, "1.1.0", "explode", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = command(&app, "1.1.0", "promote", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "complete");
    // Writes need an admin token; a server token gets 403 and no token 401.
    let server = app.token("server", Some("production")).await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/apps/desk/channels/stable/releases/1.1.0/pull",
            Some(&server),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .request(Method::POST, "/api/v1/apps", None)
        .json(&json!({"key": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (_, audit) = app
        .get("/api/v1/audit?resource=app:desk/stable/1.1.0", &app.admin)
        .await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["release.promote", "release.promote", "release.create"],
        "{audit}"
    );
    let (_, verify) = app.get("/api/v1/audit/verify", &app.admin).await;
    assert_eq!(verify["ok"], true, "{verify}");
}

// ---------------------------------------------------------------------------------------
// The crash gate

async fn report(app: &TestApp, install: &str, version: &str, clean: u64, crashed: u64) {
    let response = app
        .request(Method::POST, "/apps/desk/sessions", None)
        .json(&json!({"installId": install, "version": version, "channel": "stable", "clean": clean, "crashed": crashed}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        response.text().await.unwrap()
    );
}

async fn release_state(app: &TestApp, version: &str) -> Value {
    let (status, body) = app
        .get(
            &format!("/api/v1/apps/desk/channels/stable/releases/{version}"),
            &app.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn gated_releases(app: &TestApp) -> Release {
    create_app(app).await;
    create_app_release(app, json!({"channel": "stable", "version": "1.0.0", "percent": 100, "artifacts": artifacts("1.0.0")})).await;
    let created = create_app_release(
        app,
        json!({"channel": "stable", "version": "1.1.0", "artifacts": artifacts("1.1.0"),
               "plan": {"stages": [{"percent": 5, "bake": "1h", "minSessions": 500}, {"percent": 25, "bake": "1h", "minSessions": 500}, {"percent": 100}],
                        "tolerance": "10% or 0.1pp"}}),
    )
    .await;
    assert_eq!(created["share"], 5);
    assert_eq!(created["state"], "rolling");
    serde_json::from_value(created).unwrap()
}

#[tokio::test]
async fn an_injected_crash_regression_halts_a_rolling_release_through_the_leaders_loop() {
    // The real loop, every second, on the leader.
    let app = spawn_with(Options {
        rollout_interval: Some(1),
        ..Options::default()
    })
    .await;
    let rolling = gated_releases(&app).await;
    let ids = install_ids(2000);
    let early = ids
        .iter()
        .find(|id| in_cohort(&rolling, Some(id)))
        .unwrap()
        .clone();
    let (_, yml) = electron_feed(&app, "latest.yml", Some(&early)).await;
    assert!(
        electron_check(&yml, "1.0.0").is_some(),
        "the cohort is offered 1.1.0 first"
    );

    // The previous release crashes in 1% of sessions, the new one in 10%.
    for (index, id) in ids.iter().enumerate().take(40) {
        report(&app, id, "1.0.0", 99, 1).await;
        if index < 10 {
            report(&app, id, "1.1.0", 90, 10).await;
        }
    }
    let mut halted = Value::Null;
    for _ in 0..100 {
        let state = release_state(&app, "1.1.0").await;
        if state["release"]["state"] == "halted" {
            halted = state;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        halted["release"]["state"], "halted",
        "the gate did not halt the release"
    );
    assert_eq!(
        halted["release"]["share"], 5,
        "halting keeps the share for a resume"
    );

    // Halted at once: the cohort is offered 1.0.0 again, which it does not downgrade to.
    let (_, yml) = electron_feed(&app, "latest.yml", Some(&early)).await;
    assert!(electron_check(&yml, "1.0.0").is_none());

    // The audit record carries the evidence, by the server itself.
    let (_, audit) = app
        .get("/api/v1/audit?action=release.gate.halt", &app.admin)
        .await;
    let record = &audit["records"][0];
    assert_eq!(record["resource"], "app:desk/stable/1.1.0", "{audit}");
    assert!(record["actor"].is_null());
    let after: Value = serde_json::from_str(record["after"].as_str().unwrap_or("null"))
        .unwrap_or_else(|_| record["after"].clone());
    let evidence = &after["evidence"];
    assert_eq!(evidence["verdict"]["outcome"], "fail", "{after}");
    assert_eq!(evidence["sessions"]["release"]["n"], 1000);
    assert_eq!(evidence["sessions"]["release"]["k"], 100);
    // The loop may judge while the previous release's reports are still arriving: the
    // evidence holds what was reported by then, at the previous release's 1% crash rate.
    let previous = &evidence["sessions"]["previous"];
    let n = previous["n"].as_u64().unwrap();
    assert!(
        (100..=4000).contains(&n) && n.is_multiple_of(100),
        "{previous}"
    );
    assert_eq!(previous["k"].as_u64().unwrap(), n / 100, "{previous}");
}

#[tokio::test]
async fn a_healthy_release_advances_stage_by_stage_after_its_bake() {
    let app = spawn_with(Options {
        rollout_interval: Some(0),
        ..Options::default()
    })
    .await;
    gated_releases(&app).await;
    let ids = install_ids(40);
    for id in &ids {
        report(&app, id, "1.0.0", 999, 1).await;
    }
    for id in ids.iter().take(20) {
        report(&app, id, "1.1.0", 999, 1).await;
    }
    let now = sluice_server::state::now_ms();
    // Baking: nothing moves.
    assert!(
        sluice_server::apps::tick(&app.state, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(release_state(&app, "1.1.0").await["release"]["share"], 5);
    // After the bake time, with enough healthy sessions, it advances to 25%.
    let outcomes = sluice_server::apps::tick(&app.state, now + 3_600_000)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].action, Some("release.gate.advance"));
    let state = release_state(&app, "1.1.0").await;
    assert_eq!(state["release"]["share"], 25);
    assert_eq!(state["release"]["gate"]["stage"], 1);
    // The next stage counts only sessions reported since it started: none yet, so it holds.
    assert!(
        sluice_server::apps::tick(&app.state, now + 3 * 3_600_000)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn status_shows_the_share_of_installs_on_each_version() {
    let app = spawn_app().await;
    two_releases(&app, 10.0, false).await;
    for id in install_ids(3) {
        report(&app, &id, "1.0.0", 1, 0).await;
    }
    report(&app, "late-adopter", "1.1.0", 1, 0).await;
    let (status, body) = app.get("/api/v1/apps/desk/status", &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stable = &body["channels"][0];
    assert_eq!(stable["channel"], "stable");
    assert_eq!(stable["installs"], 4);
    assert_eq!(stable["versions"][0]["version"], "1.0.0");
    assert_eq!(stable["versions"][0]["share"], 0.75);
    assert_eq!(stable["releases"][1]["state"], "rolling");
    assert_eq!(stable["releases"][1]["percent"], 10);
    // Reports are checked: unknown versions and oversized reports are refused with the field.
    let response = app
        .request(Method::POST, "/apps/desk/sessions", None)
        .json(&json!({"installId": "x", "version": "1.0.0", "channel": "stable", "clean": 1000, "crashed": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["path"], "crashed");
}
