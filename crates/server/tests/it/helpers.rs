//! `spawn_app()`: a server on 127.0.0.1:0 with a fresh database, and request helpers.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sluice_server::{AppState, ServeArgs, Settings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct TestApp {
    pub address: String,
    pub admin: String,
    pub client: Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Default)]
pub struct Options {
    pub flags: Option<PathBuf>,
    pub body_limit: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rollout_interval: Option<u64>,
    pub webhook_allow: Option<Vec<String>>,
    pub header_timeout: Option<u64>,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        port: Some(0),
        data_dir: Some(dir.path().to_owned()),
        flags: options.flags,
        body_limit: options.body_limit,
        rate_limit: options.rate_limit,
        rollout_interval: options.rollout_interval,
        webhook_allow: options.webhook_allow,
        header_timeout: options.header_timeout,
        heartbeat: Some(1),
        ..ServeArgs::default()
    };
    let settings = Settings::load(args).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let started = sluice_server::start(settings).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let state = started.state.clone();
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
        state,
        dir,
        stop: Some(stop),
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{path}", self.address));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn admin_json(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .request(method, path, Some(&self.admin))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        split(
            self.request(Method::GET, path, Some(token))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Creates a token and returns its secret.
    pub async fn token(&self, scope: &str, environment: Option<&str>) -> String {
        let (status, body) = self
            .admin_json(
                Method::POST,
                "/api/v1/tokens",
                json!({"name": format!("{scope} test"), "scope": scope, "environment": environment}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["secret"].as_str().unwrap().to_owned()
    }

    pub async fn create_flag(&self, key: &str, definition: Value) {
        let (status, body) = self
            .admin_json(Method::POST, &format!("/api/v1/flags/{key}"), definition)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub async fn ofrep(&self, token: &str, key: &str, context: Value) -> (StatusCode, Value) {
        let response = self
            .request(
                Method::POST,
                &format!("/ofrep/v1/evaluate/flags/{key}"),
                Some(token),
            )
            .json(&json!({ "context": context }))
            .send()
            .await
            .unwrap();
        split(response).await
    }
}

pub async fn split(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

pub fn boolean_flag() -> Value {
    json!({
        "type": "boolean",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "off_variant": "off",
        "rules": [{"when": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": "on"}]
    })
}
