//! The client side of the admin API: one method per endpoint the CLI uses, typed replies
//! that keep the server's JSON (for `--json`), and errors that say what to do next.
//!
//! The client is blocking: every command makes a handful of requests in sequence, so an
//! async runtime would buy nothing. Plain HTTP only for now; TLS belongs in front of the
//! server (a reverse proxy) until the CLI grows a TLS backend.

use std::fmt;
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_core::FlagFile;
use sluice_core::model::FlagDef;
use sluice_server::store::{AuditRecord, ChainReport, ImportSummary, Token};

/// Where the CLI looks for a server when neither `--url` nor `SLUICE_URL` says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8470";

/// The response header carrying the configuration version of an export.
const CONFIG_VERSION: &str = "x-sluice-config-version";

/// A connection to one server, with the token every request presents.
#[derive(Debug)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: Http,
}

/// A decoded reply, with the JSON it came from.
#[derive(Debug)]
pub struct Reply<T> {
    /// The typed body.
    pub data: T,
    /// The body exactly as the server sent it.
    pub json: Value,
    /// The `x-sluice-config-version` header, on exports.
    pub config_version: Option<i64>,
}

/// Why a request did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--url` or `SLUICE_URL` is not a usable base URL.
    #[error("invalid server URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached, or stopped answering.
    #[error(
        "cannot reach the Sluice server at {url}: {cause}\n  hint: is `sluice serve` running there? Point the CLI elsewhere with SLUICE_URL or --url"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// The innermost cause, such as `Connection refused`.
        cause: String,
    },
    /// The server answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server answered with something the CLI does not understand.
    #[error("unexpected response from {url}: {message}")]
    Protocol {
        /// The request URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// An error response: `{"error", "message", "errors"?: [{path, message, line, column}]}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The server's sentence.
    pub message: String,
    /// Validation errors, one per problem.
    pub errors: Vec<FieldError>,
}

/// One validation problem reported by the server.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldError {
    /// The document path, such as `flags.checkout.rules[0]`.
    #[serde(default)]
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The line in the request body, when known.
    pub line: Option<u64>,
    /// The column in the request body, when known.
    pub column: Option<u64>,
}

impl ApiError {
    fn from_body(status: StatusCode, body: &[u8]) -> ApiError {
        #[derive(Deserialize)]
        struct Body {
            message: Option<String>,
            #[serde(default)]
            errors: Vec<FieldError>,
        }
        let parsed: Option<Body> = serde_json::from_slice(body).ok();
        let text = String::from_utf8_lossy(body).trim().to_owned();
        let (message, errors) = match parsed {
            Some(Body {
                message: Some(message),
                errors,
            }) => (message, errors),
            Some(Body {
                message: None,
                errors,
            }) => (text, errors),
            None => (text, Vec::new()),
        };
        let message = if message.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            message
        };
        ApiError {
            status,
            message,
            errors,
        }
    }

    fn hint(&self) -> Option<&'static str> {
        match self.status {
            StatusCode::UNAUTHORIZED => Some(
                "set SLUICE_TOKEN (or --token) to a live token; `sluice serve` prints the first admin token on its first start",
            ),
            StatusCode::FORBIDDEN => Some(
                "this needs more access than the token has: set SLUICE_TOKEN (or --token) to an admin token",
            ),
            StatusCode::PRECONDITION_FAILED => Some(
                "someone changed the server meanwhile and nothing was written; run the command again",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)?;
        for error in &self.errors {
            write!(f, "\n  ")?;
            if let (Some(line), Some(column)) = (error.line, error.column) {
                write!(f, "{line}:{column}: ")?;
            }
            if error.path.is_empty() {
                write!(f, "{}", error.message)?;
            } else {
                write!(f, "{}: {}", error.path, error.message)?;
            }
        }
        if let Some(hint) = self.hint() {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// `GET /api/v1/flags`.
#[derive(Debug, Deserialize)]
pub struct FlagList {
    /// Every flag, by key.
    pub flags: Vec<StoredFlag>,
}

/// A flag as the API shows it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFlag {
    /// Its key.
    pub key: String,
    /// Starts at 1, grows by one on every write.
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// The definition, in the core's format.
    pub definition: FlagDef,
}

/// `POST /api/v1/import`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    /// The configuration version after the import.
    pub config_version: i64,
    /// What changed.
    pub summary: ImportSummary,
}

/// `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditList {
    /// Matching records, newest first.
    pub records: Vec<AuditRecord>,
}

/// Which audit records to list; empty fields match everything.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    /// Exactly this resource, such as `flag:checkout`.
    pub resource: Option<&'a str>,
    /// Exactly this action, such as `flag.kill`.
    pub action: Option<&'a str>,
    /// Exactly this actor token id.
    pub actor: Option<&'a str>,
    /// Records with a smaller `seq`, for paging.
    pub before: Option<i64>,
    /// At most this many records.
    pub limit: Option<u32>,
}

/// `GET /api/v1/audit/verify`.
#[derive(Debug, Deserialize)]
pub struct Verification {
    /// Whether the whole chain verifies.
    pub ok: bool,
    /// The details.
    pub report: ChainReport,
}

/// `POST /api/v1/tokens`: the stored token, and its secret, shown this once.
#[derive(Debug, Deserialize)]
pub struct CreatedToken {
    /// The stored token.
    #[serde(flatten)]
    pub token: Token,
    /// The secret to present as `Authorization: Bearer`.
    pub secret: String,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Deserialize)]
pub struct TokenList {
    /// Every token, live or revoked.
    pub tokens: Vec<Token>,
}

impl Client {
    /// A client for the server at `url` (with an optional path prefix), presenting `token`.
    pub fn new(url: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let base = Url::parse(url).map_err(|error| bad(&error.to_string()))?;
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "this build of sluice speaks plain HTTP only; use an http:// URL (TLS belongs in a proxy in front of the server for now)",
                ));
            }
            _ => {
                return Err(bad(
                    "expected an http:// URL, such as http://127.0.0.1:8470",
                ));
            }
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(bad(
                "expected an http:// URL with a host, such as http://127.0.0.1:8470",
            ));
        }
        let http = Http::builder()
            .user_agent(concat!("sluice-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| bad(&format!("cannot build an HTTP client: {error}")))?;
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(Client { base, token, http })
    }

    /// The server's base URL, for messages.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Lists every flag.
    pub fn list_flags(&self) -> Result<Reply<FlagList>, ClientError> {
        self.send(self.http.get(self.url(&["api", "v1", "flags"], &[])))
    }

    /// Reads one flag.
    pub fn get_flag(&self, key: &str) -> Result<Reply<StoredFlag>, ClientError> {
        self.send(self.http.get(self.url(&["api", "v1", "flags", key], &[])))
    }

    /// Exports the whole configuration, with its version.
    pub fn export(&self) -> Result<(Reply<FlagFile>, i64), ClientError> {
        let url = self.url(&["api", "v1", "export"], &[]);
        let reply: Reply<FlagFile> = self.send(self.http.get(url.clone()))?;
        let version = reply.config_version.ok_or_else(|| ClientError::Protocol {
            url: url.to_string(),
            message: format!(
                "the export has no `{CONFIG_VERSION}` header; is this a Sluice server?"
            ),
        })?;
        Ok((reply, version))
    }

    /// Replaces every flag and segment with `file`'s, if the configuration is still at
    /// `expected_version`.
    pub fn import(
        &self,
        file: &FlagFile,
        expected_version: i64,
        reason: Option<&str>,
    ) -> Result<Reply<Imported>, ClientError> {
        let query: Vec<(&str, &str)> = reason
            .map(|reason| ("reason", reason))
            .into_iter()
            .collect();
        let request = self
            .http
            .post(self.url(&["api", "v1", "import"], &query))
            .header(header::IF_MATCH, format!("\"{expected_version}\""))
            .json(file);
        self.send(request)
    }

    /// Lists audit records, newest first.
    pub fn audit(&self, query: &AuditQuery<'_>) -> Result<Reply<AuditList>, ClientError> {
        let before = query.before.map(|n| n.to_string());
        let limit = query.limit.map(|n| n.to_string());
        let pairs: Vec<(&str, &str)> = [
            ("resource", query.resource),
            ("action", query.action),
            ("actor", query.actor),
            ("before", before.as_deref()),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect();
        self.send(self.http.get(self.url(&["api", "v1", "audit"], &pairs)))
    }

    /// Recomputes the audit chain on the server.
    pub fn verify_audit(&self) -> Result<Reply<Verification>, ClientError> {
        self.send(
            self.http
                .get(self.url(&["api", "v1", "audit", "verify"], &[])),
        )
    }

    /// Creates a token; the reply carries its secret.
    pub fn create_token(
        &self,
        name: &str,
        scope: &str,
        environment: Option<&str>,
    ) -> Result<Reply<CreatedToken>, ClientError> {
        let mut body = json!({"name": name, "scope": scope});
        if let Some(environment) = environment {
            body["environment"] = json!(environment);
        }
        self.send(
            self.http
                .post(self.url(&["api", "v1", "tokens"], &[]))
                .json(&body),
        )
    }

    /// Lists every token, live or revoked.
    pub fn list_tokens(&self) -> Result<Reply<TokenList>, ClientError> {
        self.send(self.http.get(self.url(&["api", "v1", "tokens"], &[])))
    }

    /// Revokes a token.
    pub fn revoke_token(&self, id: &str) -> Result<Reply<Token>, ClientError> {
        self.send(
            self.http
                .delete(self.url(&["api", "v1", "tokens", id], &[])),
        )
    }

    /// Starts a rollout: `body` is `{flag, env, plan | template, treatment?, control?, reason?}`.
    pub fn create_rollout(&self, body: &Value) -> Result<Reply<Value>, ClientError> {
        self.send(
            self.http
                .post(self.url(&["api", "v1", "rollouts"], &[]))
                .json(body),
        )
    }

    /// Lists rollouts, newest first.
    pub fn list_rollouts(&self, query: &[(&str, &str)]) -> Result<Reply<Value>, ClientError> {
        self.send(self.http.get(self.url(&["api", "v1", "rollouts"], query)))
    }

    /// One rollout with its window, current decision and history.
    pub fn get_rollout(&self, id: &str) -> Result<Reply<Value>, ClientError> {
        self.send(self.http.get(self.url(&["api", "v1", "rollouts", id], &[])))
    }

    /// A command on a rollout: `start`, `pause`, `resume`, `promote`, `rollback`, `kill` or
    /// `approve`.
    pub fn steer_rollout(
        &self,
        id: &str,
        command: &str,
        reason: Option<&str>,
    ) -> Result<Reply<Value>, ClientError> {
        let body = match reason {
            Some(reason) => json!({ "reason": reason }),
            None => json!({}),
        };
        self.send(
            self.http
                .post(self.url(&["api", "v1", "rollouts", id, command], &[]))
                .json(&body),
        )
    }

    /// Any JSON request: `method` on `segments` with `query` and an optional body.
    pub fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply<Value>, ClientError> {
        let mut request = self.http.request(method, self.url(segments, query));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request)
    }

    /// `GET` any JSON resource under the API.
    pub fn get_json(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Reply<Value>, ClientError> {
        self.call(reqwest::Method::GET, segments, query, None)
    }

    /// `POST` a JSON body to any resource under the API, waiting at most `timeout` when given.
    pub fn post_json(
        &self,
        segments: &[&str],
        body: &Value,
        timeout: Option<Duration>,
    ) -> Result<Reply<Value>, ClientError> {
        let mut request = self.http.post(self.url(segments, &[])).json(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        self.send(request)
    }

    /// `POST` a JSON body to any resource under the API, with the reason for the audit log in
    /// `X-Sluice-Reason`.
    pub fn post_value(
        &self,
        segments: &[&str],
        body: &Value,
        reason: Option<&str>,
    ) -> Result<Reply<Value>, ClientError> {
        let mut request = self.http.post(self.url(segments, &[])).json(body);
        if let Some(reason) = reason {
            request = request.header("x-sluice-reason", reason);
        }
        self.send(request)
    }

    /// The base URL with `segments` appended (each percent-encoded) and `query` set.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends with the token, and decodes a success or an error body.
    fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<Reply<T>, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().map_err(|error| self.unreachable(&error))?;
        let url = response.url().to_string();
        let status = response.status();
        let config_version = response
            .headers()
            .get(CONFIG_VERSION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let body = response.bytes().map_err(|error| self.unreachable(&error))?;
        if !status.is_success() {
            return Err(ApiError::from_body(status, &body).into());
        }
        let protocol = |message: String| ClientError::Protocol {
            url: url.clone(),
            message,
        };
        let json: Value = serde_json::from_slice(&body).map_err(|error| {
            protocol(format!(
                "the body is not JSON ({error}); is this a Sluice server?"
            ))
        })?;
        let data = serde_json::from_value(json.clone()).map_err(|error| {
            protocol(format!(
                "the body does not have the expected shape: {error}"
            ))
        })?;
        Ok(Reply {
            data,
            json,
            config_version,
        })
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        // reqwest wraps the cause several times; the innermost says what actually happened.
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let cause = if error.is_timeout() {
            "the request timed out".to_owned()
        } else {
            cause.to_string()
        };
        ClientError::Unreachable {
            url: self.base_url().to_owned(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_path_prefix_and_encode_segments() {
        let client = Client::new("http://example.test:8470/sluice/", None).unwrap();
        let url = client.url(
            &["api", "v1", "flags", "a/b c"],
            &[("env", "prod uction"), ("reason", "x&y")],
        );
        assert_eq!(
            url.as_str(),
            "http://example.test:8470/sluice/api/v1/flags/a%2Fb%20c?env=prod+uction&reason=x%26y"
        );
        let client = Client::new("http://127.0.0.1:8470", None).unwrap();
        assert_eq!(
            client.url(&["api", "v1", "export"], &[]).as_str(),
            "http://127.0.0.1:8470/api/v1/export"
        );
        assert_eq!(client.base_url(), "http://127.0.0.1:8470");
    }

    #[test]
    fn only_plain_http_urls_are_accepted() {
        assert!(
            Client::new("https://example.test", None)
                .unwrap_err()
                .to_string()
                .contains("plain HTTP only")
        );
        assert!(Client::new("ftp://example.test", None).is_err());
        assert!(Client::new("localhost:8470", None).is_err());
    }

    #[test]
    fn error_bodies_print_status_message_each_error_and_a_hint() {
        let body = br#"{"error":"invalid","message":"the definition is invalid","errors":[{"path":"flags.a.default_variant","message":"`x` is not a variant","line":3,"column":5},{"path":"flags.b","message":"broken","line":null,"column":null}]}"#;
        let error = ApiError::from_body(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            error.to_string(),
            "422 Unprocessable Entity: the definition is invalid\n  3:5: flags.a.default_variant: `x` is not a variant\n  flags.b: broken"
        );
        let error = ApiError::from_body(
            StatusCode::UNAUTHORIZED,
            br#"{"error":"unauthorized","message":"invalid or revoked token"}"#,
        );
        assert!(
            error.to_string().starts_with(
                "401 Unauthorized: invalid or revoked token\n  hint: set SLUICE_TOKEN"
            )
        );
        let error = ApiError::from_body(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(error.to_string(), "502 Bad Gateway: Bad Gateway");
        let error = ApiError::from_body(StatusCode::PAYLOAD_TOO_LARGE, b"length limit exceeded");
        assert_eq!(
            error.to_string(),
            "413 Payload Too Large: length limit exceeded"
        );
    }
}
