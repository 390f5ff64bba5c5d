//! `GET /metrics`: request, evaluation and live-stream series with the right labels.
//!
//! Its own test binary, so the process-wide recorder counts only what this file does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sluice_server::{ServeArgs, Settings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server on 127.0.0.1:0 over a fresh SQLite file; stops when dropped.
struct TestApp {
    address: String,
    admin: String,
    client: Client,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::load(ServeArgs {
            port: Some(0),
            data_dir: Some(dir.path().to_owned()),
            heartbeat: Some(1),
            ..ServeArgs::default()
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let started = sluice_server::start(settings).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(sluice_server::serve(listener, started.state, async move {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            admin: started.admin_token.unwrap(),
            client: Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _dir: dir,
            _stop: stop,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        response.text().await.unwrap()
    }
}

/// The value of the sample of `name` whose labels include every pair in `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let rest = rest.strip_suffix('}')?;
            let all = labels.iter().all(|(key, value)| {
                rest.split(',')
                    .any(|pair| pair == format!("{key}=\"{value}\""))
            });
            all.then(|| value.parse().unwrap())
        })
}

fn flag() -> Value {
    json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "off_variant": "off",
        "rules": [{"when": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": "on"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_evaluations_and_streams() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/flags/checkout",
            Some(&app.admin),
            Some(flag()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin),
            Some(json!({"name": "web", "scope": "client", "environment": "production"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client: Value = serde_json::from_str(&body).unwrap();
    let client = client["secret"].as_str().unwrap().to_owned();
    let server = {
        let (_, body) = app
            .send(
                Method::POST,
                "/api/v1/tokens",
                Some(&app.admin),
                Some(json!({"name": "svc", "scope": "server", "environment": "production"})),
            )
            .await;
        serde_json::from_str::<Value>(&body).unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Three single evaluations (two matching the rule, one not), one of a missing flag,
    // and two bulk evaluations.
    for (key, plan, expected) in [
        ("checkout", "pro", StatusCode::OK),
        ("checkout", "pro", StatusCode::OK),
        ("checkout", "free", StatusCode::OK),
        ("no-such-flag", "free", StatusCode::NOT_FOUND),
    ] {
        let body = json!({"context": {"targetingKey": "u1", "plan": plan}});
        let path = format!("/ofrep/v1/evaluate/flags/{key}");
        assert_eq!(
            app.send(Method::POST, &path, Some(&client), Some(body))
                .await
                .0,
            expected
        );
    }
    for _ in 0..2 {
        let (status, _) = app
            .send(
                Method::POST,
                "/ofrep/v1/evaluate/flags",
                Some(&client),
                Some(json!({"context": {"plan": "pro"}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        app.send(Method::GET, "/no/such/route/42", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Two live streams, one of each kind.
    let sdk = app
        .client
        .get(format!("{}/api/v1/stream", app.address))
        .bearer_auth(&server)
        .send()
        .await
        .unwrap();
    assert_eq!(sdk.status(), StatusCode::OK);
    let ofrep = app
        .client
        .get(format!("{}/ofrep/v1/events", app.address))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(ofrep.status(), StatusCode::OK);

    let text = app.metrics().await;
    let evaluations = |variant: &str, reason: &str| {
        sample(
            &text,
            "sluice_evaluations_total",
            &[
                ("flag", "checkout"),
                ("variant", variant),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(evaluations("on", "TARGETING_MATCH"), Some(4.0), "{text}");
    assert_eq!(evaluations("off", "DEFAULT"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "sluice_evaluations_total",
            &[("flag", "(unknown)"), ("variant", ""), ("reason", "ERROR")]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("no-such-flag"),
        "evaluated keys of missing flags are not labels:\n{text}"
    );

    let single = [
        ("method", "POST"),
        ("route", "/ofrep/v1/evaluate/flags/{key}"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "sluice_http_requests_total", &single),
        Some(3.0),
        "{text}"
    );
    let missing = [
        ("method", "POST"),
        ("route", "/ofrep/v1/evaluate/flags/{key}"),
        ("status", "404"),
    ];
    assert_eq!(
        sample(&text, "sluice_http_requests_total", &missing),
        Some(1.0),
        "{text}"
    );
    let bulk = [
        ("method", "POST"),
        ("route", "/ofrep/v1/evaluate/flags"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "sluice_http_requests_total", &bulk),
        Some(2.0),
        "{text}"
    );
    let created = [
        ("method", "POST"),
        ("route", "/api/v1/flags/{key}"),
        ("status", "201"),
    ];
    assert_eq!(
        sample(&text, "sluice_http_requests_total", &created),
        Some(1.0),
        "{text}"
    );
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(
        sample(&text, "sluice_http_requests_total", &unmatched),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/route"),
        "raw paths are not labels:\n{text}"
    );
    assert!(
        !text.contains("/api/v1/flags/checkout"),
        "raw paths are not labels:\n{text}"
    );

    // The latency histogram has buckets, a count and a sum per series.
    let le = [single.as_slice(), &[("le", "+Inf")]].concat();
    assert_eq!(
        sample(&text, "sluice_http_request_duration_seconds_bucket", &le),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sluice_http_request_duration_seconds_count", &single),
        Some(3.0),
        "{text}"
    );
    assert!(sample(&text, "sluice_http_request_duration_seconds_sum", &single).unwrap() > 0.0);
    let fast = [single.as_slice(), &[("le", "0.0005")]].concat();
    assert!(
        sample(&text, "sluice_http_request_duration_seconds_bucket", &fast).is_some(),
        "{text}"
    );
    assert!(
        text.contains("# TYPE sluice_http_request_duration_seconds histogram"),
        "{text}"
    );

    for route in ["/api/v1/stream", "/ofrep/v1/events"] {
        assert_eq!(
            sample(&text, "sluice_stream_connections", &[("route", route)]),
            Some(1.0),
            "{text}"
        );
    }

    // Closed streams are no longer counted; the server notices at the next heartbeat (1 s).
    drop(sdk);
    drop(ofrep);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = app.metrics().await;
        let open: Vec<f64> = ["/api/v1/stream", "/ofrep/v1/events"]
            .iter()
            .map(|route| sample(&text, "sluice_stream_connections", &[("route", route)]).unwrap())
            .collect();
        if open == [0.0, 0.0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "streams still counted as open: {open:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Scrapes are requests too, counted under their own route.
    let text = app.metrics().await;
    let scrapes = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert!(
        sample(&text, "sluice_http_requests_total", &scrapes).unwrap() >= 2.0,
        "{text}"
    );
}
