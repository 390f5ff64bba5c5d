//! The web console: sessions, CSRF, read-only tokens and the live rollout stream, over HTTP
//! against a real server; and a browser test driving headless Chromium through it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Method, StatusCode, redirect};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, spawn_app, spawn_with};
use crate::webdriver::{Browser, find};

/// A flag served `on` to everyone until killed, then `off`.
fn live_flag() -> Value {
    json!({
        "type": "boolean",
        "description": "The new checkout page",
        "owner": "payments",
        "variants": {"on": true, "off": false},
        "default_variant": "on",
        "off_variant": "off",
        "provenance": "ai-assisted",
        "risk": "high",
        "rules": [{"name": "staff", "when": [{"attribute": "plan", "op": "eq", "value": "staff"}], "serve": "on"}]
    })
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn urlencoded(form: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

trait FormBody {
    fn form_body(self, form: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, form: &[(&str, &str)]) -> Self {
        self.header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(urlencoded(form))
    }
}

fn plain_client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A signed-in browser, as far as HTTP goes: the session cookie and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let pattern = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    pattern.captures(html).map(|c| c[1].to_owned())
}

/// Signs in with `token`; returns the redirect target and the session, if one opened.
async fn login(app: &TestApp, token: &str) -> (String, Option<Session>) {
    let client = plain_client();
    let form = client
        .get(format!("{}/login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let login_cookie = set_cookie(&form, "sluice_login").expect("a login cookie");
    let html = form.text().await.unwrap();
    let nonce = hidden(&html, "login").expect("a login field");
    let response = client
        .post(format!("{}/login", app.address))
        .header(COOKIE, &login_cookie)
        .form_body(&[("token", token), ("login", &nonce)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let Some(cookie) = set_cookie(&response, "sluice_session") else {
        return (location, None);
    };
    let header = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("sluice_session="))
        .unwrap();
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    let page = client
        .get(format!("{}/flags", app.address))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf").expect("a CSRF token on the page");
    (location, Some(Session { cookie, csrf }))
}

async fn page(
    app: &TestApp,
    session: Option<&Session>,
    path: &str,
) -> (StatusCode, String, String) {
    let mut request = plain_client().get(format!("{}{path}", app.address));
    if let Some(session) = session {
        request = request.header(COOKIE, &session.cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

async fn post(
    app: &TestApp,
    session: &Session,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let response = plain_client()
        .post(format!("{}{path}", app.address))
        .header(COOKIE, &session.cookie)
        .form_body(form)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn start_rollout(app: &TestApp, flag: &str) -> String {
    app.create_flag(flag, json!({
        "type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "off", "off_variant": "off"
    }))
    .await;
    let stages: Vec<Value> = [10, 50, 100]
        .iter()
        .map(|p| json!({"percent": p, "bake": "1h", "min_samples": 100}))
        .collect();
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/rollouts",
            json!({"flag": flag, "env": "production", "plan": {"stages": stages}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Reports two buckets of `checkout` telemetry in production: `on` and `off`, with errors
/// and latencies.
async fn report_metrics(app: &TestApp) {
    let server = app.token("server", Some("production")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = sluice_core::telemetry::bucket_start(now);
    let mut buckets = Vec::new();
    for (i, start) in [start - 20_000, start - 10_000, start].iter().enumerate() {
        for (variant, exposures, errors) in [("on", 100 + 50 * i, 2 * i), ("off", 120, 1)] {
            buckets.push(json!({
                "startMs": start, "flag": "checkout", "variant": variant, "configVersion": 1,
                "exposures": exposures, "errors": errors,
            }));
        }
    }
    let batch = json!({
        "batchId": "console-test",
        "instance": {"id": "console-instance", "sdk": "test", "configVersion": 1},
        "sentAtMs": now,
        "buckets": buckets,
    });
    let response = app
        .request(Method::POST, "/api/v1/metrics", Some(&server))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn production_enabled(app: &TestApp, key: &str) -> bool {
    let (status, body) = app.get(&format!("/api/v1/flags/{key}"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["definition"]["environments"]["production"]["enabled"] != json!(false)
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_login() {
    let app = spawn_app().await;
    app.create_flag("checkout", live_flag()).await;
    let rollout = start_rollout(&app, "rollout-flag").await;
    let paths = [
        "/".to_owned(),
        "/flags".to_owned(),
        "/flags?q=checkout".to_owned(),
        "/flags/checkout".to_owned(),
        "/flags/checkout/kill?env=production".to_owned(),
        "/rollouts".to_owned(),
        format!("/rollouts/{rollout}"),
        format!("/rollouts/{rollout}/events"),
        "/releases".to_owned(),
        "/audit".to_owned(),
    ];
    let forged = Session {
        cookie: format!("sluice_session={}", "ab".repeat(32)),
        csrf: String::new(),
    };
    for path in &paths {
        for session in [None, Some(&forged)] {
            let (status, location, _) = page(&app, session, path).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(location, "/login", "{path}");
        }
        // An API token in a header is no session either.
        let response = plain_client()
            .get(format!("{}{path}", app.address))
            .bearer_auth(&app.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{path} with a bearer token"
        );
    }
    // Posting without a session changes nothing.
    let (status, _) = post(
        &app,
        &forged,
        "/flags/checkout/kill",
        &[("env", "production")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(production_enabled(&app, "checkout").await);
    // The sign-in page itself is public.
    let (status, _, html) = page(&app, None, "/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<label for="token">"#), "{html}");
}

#[tokio::test]
async fn signing_in_needs_a_live_admin_or_server_token_and_the_form_s_cookie() {
    let app = spawn_app().await;
    let (location, session) = login(&app, "sluice_not-a-token").await;
    assert_eq!(location, "/login?error=token");
    assert!(session.is_none());
    let client_token = app.token("client", Some("production")).await;
    let (location, session) = login(&app, &client_token).await;
    assert_eq!(location, "/login?error=client");
    assert!(session.is_none());
    // Without the cookie the form set, the form is refused (no login CSRF).
    let response = plain_client()
        .post(format!("{}/login", app.address))
        .form_body(&[("token", app.admin.as_str()), ("login", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/login?error=form");
    assert!(set_cookie(&response, "sluice_session").is_none());

    let (location, session) = login(&app, &app.admin).await;
    assert_eq!(location, "/flags");
    let session = session.unwrap();
    let (status, _, _) = page(&app, Some(&session), "/flags").await;
    assert_eq!(status, StatusCode::OK);
    // Signing out ends the session on the server, whatever the browser keeps.
    let (status, _) = post(&app, &session, "/logout", &[("csrf", &session.csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, location, _) = page(&app, Some(&session), "/flags").await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/login")
    );
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused() {
    let app = spawn_app().await;
    app.create_flag("checkout", live_flag()).await;
    let rollout = start_rollout(&app, "rollout-flag").await;
    let (_, session) = login(&app, &app.admin).await;
    let session = session.unwrap();
    let (status, _, html) = page(&app, Some(&session), "/flags/checkout/kill?env=production").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&session.csrf),
        "the confirmation form carries the CSRF token"
    );

    for form in [
        vec![("env", "production"), ("reason", "test")],
        vec![("env", "production"), ("csrf", "wrong")],
        vec![("env", "production"), ("csrf", "")],
    ] {
        let (status, body) = post(&app, &session, "/flags/checkout/kill", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(body.contains("CSRF"), "{body}");
        assert!(
            production_enabled(&app, "checkout").await,
            "{form:?} killed the flag"
        );
    }
    let (status, _) = post(&app, &session, &format!("/rollouts/{rollout}/pause"), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = app
        .get(&format!("/api/v1/rollouts/{rollout}"), &app.admin)
        .await;
    assert_eq!(body["status"], "running", "{body}");
    // Another site's form, even with the right token, is refused by its Origin.
    let response = plain_client()
        .post(format!("{}/flags/checkout/kill", app.address))
        .header(COOKIE, &session.cookie)
        .header("origin", "https://evil.example")
        .form_body(&[("env", "production"), ("csrf", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(production_enabled(&app, "checkout").await);

    // With its token the same form works, and is audited with its reason.
    let (status, _) = post(
        &app,
        &session,
        "/flags/checkout/kill",
        &[
            ("env", "production"),
            ("csrf", &session.csrf),
            ("reason", "error spike"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!production_enabled(&app, "checkout").await);
    let (_, audit) = app
        .get("/api/v1/audit?resource=flag:checkout", &app.admin)
        .await;
    assert_eq!(audit["records"][0]["reason"], "error spike", "{audit}");
    let (status, _) = post(
        &app,
        &session,
        &format!("/rollouts/{rollout}/promote"),
        &[("csrf", &session.csrf), ("reason", "looks good")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, body) = app
        .get(&format!("/api/v1/rollouts/{rollout}"), &app.admin)
        .await;
    assert_eq!(body["stage"], 1, "{body}");
}

#[tokio::test]
async fn a_read_only_token_sees_no_write_buttons_and_cannot_post() {
    let app = spawn_app().await;
    app.create_flag("checkout", live_flag()).await;
    let rollout = start_rollout(&app, "rollout-flag").await;
    let server = app.token("server", Some("production")).await;
    let (_, admin) = login(&app, &app.admin).await;
    let admin = admin.unwrap();
    let (_, reader) = login(&app, &server).await;
    let reader = reader.unwrap();

    report_metrics(&app).await;
    let (_, _, detail) = page(&app, Some(&reader), "/flags/checkout").await;
    assert!(
        detail.contains("when plan is &quot;staff&quot;: serve on"),
        "{detail}"
    );
    assert_eq!(
        detail.matches("<polyline").count(),
        4,
        "exposures and error rate for on and off: {detail}"
    );
    assert!(
        detail.contains("on: latest 2.00%"),
        "the error rate of on: {detail}"
    );
    let (_, _, admin_flags) = page(&app, Some(&admin), "/flags").await;
    assert!(
        admin_flags.contains("/flags/checkout/kill?env=production"),
        "{admin_flags}"
    );
    let (_, _, admin_rollout) = page(&app, Some(&admin), &format!("/rollouts/{rollout}")).await;
    assert!(admin_rollout.contains(&format!("/rollouts/{rollout}/promote")));

    for path in [
        "/flags".to_owned(),
        "/flags/checkout".to_owned(),
        "/rollouts".to_owned(),
        format!("/rollouts/{rollout}"),
    ] {
        let (status, _, html) = page(&app, Some(&reader), &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains("read-only"), "{path}");
        assert!(!html.contains("/kill"), "{path} shows a kill switch");
        assert!(!html.contains("Kill"), "{path} shows a kill switch");
        for command in ["/pause", "/resume", "/promote", "/rollback", "/approve"] {
            assert!(
                !html.contains(command),
                "{path} shows the rollout command {command}"
            );
        }
        // The only form that posts is signing out.
        assert_eq!(html.matches(r#"method="post""#).count(), 1, "{path}");
    }
    let (_, _, flags) = page(&app, Some(&reader), "/flags").await;
    assert!(
        flags.contains("checkout") && !flags.contains("staging"),
        "{flags}"
    );
    for path in ["/flags/checkout/kill?env=production", "/audit", "/releases"] {
        let (status, _, _) = page(&app, Some(&reader), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, body) = post(
        &app,
        &reader,
        "/flags/checkout/kill",
        &[("env", "production"), ("csrf", &reader.csrf)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(production_enabled(&app, "checkout").await);
    let (status, _) = post(
        &app,
        &reader,
        &format!("/rollouts/{rollout}/rollback"),
        &[("csrf", &reader.csrf), ("reason", "no")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, body) = app
        .get(&format!("/api/v1/rollouts/{rollout}"), &app.admin)
        .await;
    assert_eq!(body["status"], "running", "{body}");
}

#[tokio::test]
async fn the_rollout_stream_sends_each_change() {
    let app = spawn_with(Options {
        rollout_interval: Some(0),
        ..Options::default()
    })
    .await;
    let rollout = start_rollout(&app, "rollout-flag").await;
    let (_, session) = login(&app, &app.admin).await;
    let session = session.unwrap();
    let response = plain_client()
        .get(format!("{}/rollouts/{rollout}/events", app.address))
        .header(COOKIE, &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    let mut promoted = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < 2 {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame = text[..end].to_owned();
            text.drain(..end + 2);
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                events.push(serde_json::from_str::<Value>(data).unwrap());
            }
        }
        if events.len() == 1 && !promoted {
            promoted = true;
            let (status, body) = app
                .admin_json(
                    Method::POST,
                    &format!("/api/v1/rollouts/{rollout}/promote"),
                    json!({"reason": "ready"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert!(
        events[0]["html"]
            .as_str()
            .unwrap()
            .contains("Stage <strong>1</strong>"),
        "{}",
        events[0]
    );
    assert!(
        events[1]["html"]
            .as_str()
            .unwrap()
            .contains("Stage <strong>2</strong>"),
        "{}",
        events[1]
    );
    assert!(events[1]["seq"].as_i64() > events[0]["seq"].as_i64());
}

#[tokio::test]
async fn the_console_in_a_browser_kills_a_flag_and_follows_a_rollout_live() {
    let Some((driver, chromium)) = find() else {
        println!(
            "SKIPPED: the console's browser test needs chromedriver and chromium on PATH (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let started = Instant::now();
    let app = spawn_with(Options {
        rollout_interval: Some(0),
        ..Options::default()
    })
    .await;
    app.create_flag("checkout", live_flag()).await;
    let rollout = start_rollout(&app, "rollout-flag").await;
    report_metrics(&app).await;
    let client_token = app.token("client", Some("production")).await;
    let (_, before) = app
        .ofrep(&client_token, "checkout", json!({"targetingKey": "user-1"}))
        .await;
    assert_eq!(before["variant"], "on", "{before}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Browser::start(&driver, &chromium).await;
    let base = &app.address;

    // 1. Sign in.
    browser.goto(&format!("{base}/flags")).await;
    assert!(
        browser.url().await.ends_with("/login"),
        "no session goes to sign-in"
    );
    browser.screenshot(&shots.join("01-login.png")).await;
    browser.type_into("#token", &app.admin).await;
    browser.click("button[type=submit]").await;
    browser.wait_exact("h1", "Flags").await;
    browser.screenshot(&shots.join("02-flags.png")).await;

    // 2. Open the flag.
    browser.click("a[href='/flags/checkout']").await;
    browser.wait_exact("h1", "checkout").await;
    assert!(
        browser
            .text("main")
            .await
            .contains("when plan is \"staff\": serve on")
    );
    browser.screenshot(&shots.join("03-flag.png")).await;

    // 3. Kill it in production, through its confirmation page.
    browser
        .click("a[href='/flags/checkout/kill?env=production']")
        .await;
    browser.wait_exact("h1", "Kill checkout?").await;
    browser.screenshot(&shots.join("04-kill-confirm.png")).await;
    browser.type_into("#reason", "browser test").await;
    browser.click("button.danger").await;
    browser.wait_exact("h1", "checkout").await;
    browser.wait_text("#env-production", "off").await;
    browser.screenshot(&shots.join("05-killed.png")).await;

    // 4. OFREP now answers the off variant.
    let (status, after) = app
        .ofrep(&client_token, "checkout", json!({"targetingKey": "user-1"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after["variant"], "off", "{after}");
    assert_eq!(after["value"], false, "{after}");
    println!("OFREP after the kill: {after}");

    // 5. A running rollout's stage change arrives without a reload.
    browser.goto(&format!("{base}/rollouts/{rollout}")).await;
    assert!(browser.text("#stage-now").await.contains("Stage 1 of 3"));
    let connected = Instant::now();
    while !browser.text("#live-status").await.starts_with("Live") {
        assert!(
            connected.elapsed() < Duration::from_secs(5),
            "the live stream did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .execute("window.sluiceTestMarker = 'same page'; return true;")
        .await;
    browser.screenshot(&shots.join("06-rollout.png")).await;
    let (status, body) = app
        .admin_json(
            Method::POST,
            &format!("/api/v1/rollouts/{rollout}/promote"),
            json!({"reason": "browser test"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let waited = Instant::now();
    loop {
        let now = browser
            .execute("return [document.getElementById('stage-now').textContent, window.sluiceTestMarker || null];")
            .await;
        if now[0].as_str().unwrap_or_default().contains("Stage 2 of 3") {
            assert_eq!(now[1], "same page", "the page was reloaded");
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "no live update: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.screenshot(&shots.join("07-rollout-live.png")).await;
    // The same console on a phone: nothing wider than the screen but the tables' own scroll.
    browser.resize(390, 844).await;
    browser.goto(&format!("{base}/flags")).await;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page scrolls sideways on a phone: {overflow}"
    );
    browser.screenshot(&shots.join("08-flags-phone.png")).await;
    browser.quit().await;
    println!("console screenshots: {}", shots.display());
    println!("browser test took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn an_admin_reads_releases_and_the_audit_log_with_its_chain_check() {
    let app = spawn_app().await;
    app.create_flag("checkout", live_flag()).await;
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/segments/internal",
            json!({"include": ["staff-1"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .admin_json(
            Method::POST,
            "/api/v1/releases",
            json!({
                "name": "new-checkout", "flags": ["checkout"], "provenance": {"kind": "ai-assisted"},
                "risk": "high", "rollback": {"kind": "flag-off"}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let release = body["id"].as_str().unwrap().to_owned();
    let (_, session) = login(&app, &app.admin).await;
    let session = session.unwrap();

    let (status, _, list) = page(&app, Some(&session), "/releases").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains("new-checkout") && list.contains("Report by provenance"),
        "{list}"
    );
    assert!(list.contains("ai-assisted"), "{list}");
    let (status, _, detail) = page(&app, Some(&session), &format!("/releases/{release}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(detail.contains("Checklist"), "{detail}");
    assert_eq!(
        detail.matches("<tr><th scope=\"row\">").count(),
        6,
        "six checklist items: {detail}"
    );

    let (status, _) = post(
        &app,
        &session,
        "/flags/checkout/kill",
        &[
            ("env", "production"),
            ("csrf", &session.csrf),
            ("reason", "audited"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, audit) = page(&app, Some(&session), "/audit?action=flag.kill").await;
    assert_eq!(status, StatusCode::OK);
    assert!(audit.contains("chain verifies"), "{audit}");
    assert!(
        audit.contains("audited") && audit.contains("flag:checkout"),
        "{audit}"
    );
    assert!(
        !audit.contains("flag.create"),
        "the filter keeps only kills: {audit}"
    );
    let (_, _, all) = page(&app, Some(&session), "/audit").await;
    assert!(
        all.contains("flag.create") && all.contains("release.create"),
        "{all}"
    );
}

#[tokio::test]
async fn an_admin_sees_a_flag_s_dry_run_and_its_would_change_counts() {
    let app = spawn_app().await;
    app.create_flag("checkout", live_flag()).await;
    let (status, started) = app
        .admin_json(
            Method::POST,
            "/api/v1/dry-runs",
            json!({
                "flag": "checkout", "env": "production", "reason": "staff only",
                "staged": {"default_variant": "off"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let client = app.token("client", Some("production")).await;
    // Staff keep `on` through the rule; everyone else would move to `off`.
    for (user, plan) in [
        ("u1", "staff"),
        ("u2", "free"),
        ("u3", "free"),
        ("u4", "pro"),
    ] {
        let (status, body) = app
            .ofrep(
                &client,
                "checkout",
                json!({"targetingKey": user, "plan": plan}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["variant"], "on", "the current rules keep serving");
    }
    let (_, admin) = login(&app, &app.admin).await;
    let (status, _, detail) = page(&app, admin.as_ref(), "/flags/checkout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(detail.contains("Dry run 1 (running)"), "{detail}");
    assert!(
        detail.contains("Staged default: <code>off</code>"),
        "{detail}"
    );
    assert!(
        detail.contains(
            "Compared 4 evaluations: <strong>3</strong> (75.0%) would get a different variant."
        ),
        "{detail}"
    );
    // A read-only session does not see dry runs, as the API does not show them to it.
    let server = app.token("server", Some("production")).await;
    let (_, reader) = login(&app, &server).await;
    let (_, _, read_only) = page(&app, reader.as_ref(), "/flags/checkout").await;
    assert!(read_only.contains("Rules"), "{read_only}");
    assert!(!read_only.contains("Dry run"), "{read_only}");
}
