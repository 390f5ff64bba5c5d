//! Console sessions: a random secret in an `HttpOnly; SameSite=Strict` cookie, kept on the
//! server only as its SHA-256, with the token it was opened with and a CSRF token.
//!
//! Sessions live in this process's memory: a restart signs everyone out, and with several
//! replicas behind a balancer a session only exists on the replica that opened it (use
//! sticky sessions). Each request re-reads the token, so revoking it ends its sessions.
//! `Secure` is added when the request says it came over HTTPS (`X-Forwarded-Proto: https`
//! from a reverse proxy); Sluice itself serves plain HTTP and cannot know otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq as _;

use crate::http::auth::Caller;
use crate::state::{AppState, now_ms};
use crate::store::{Token, TokenAccess};
use crate::tokens::hash_secret;

/// The session cookie's name.
pub const COOKIE: &str = "sluice_session";
/// The cookie that ties the sign-in form to the browser that loaded it.
pub const LOGIN_COOKIE: &str = "sluice_login";
/// How long a session lasts without signing in again.
pub const TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// At most this many sessions; the oldest is dropped to make room.
const MAX_SESSIONS: usize = 10_000;

/// One open session.
#[derive(Debug, Clone)]
struct Session {
    token_id: String,
    csrf: String,
    expires_ms: i64,
}

/// Open sessions by the SHA-256 of their secret.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

/// A random secret: 32 bytes as 64 hex digits.
pub fn random_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Opens a session for `token_id`; returns the cookie secret.
    pub fn open(&self, token_id: &str) -> String {
        let secret = random_secret();
        let now = now_ms();
        let session = Session {
            token_id: token_id.to_owned(),
            csrf: random_secret(),
            expires_ms: now + TTL_MS,
        };
        if let Ok(mut open) = self.open.lock() {
            open.retain(|_, s| s.expires_ms > now);
            if open.len() >= MAX_SESSIONS
                && let Some(oldest) = open
                    .iter()
                    .min_by_key(|(_, s)| s.expires_ms)
                    .map(|(k, _)| k.clone())
            {
                open.remove(&oldest);
            }
            open.insert(hash_secret(&secret), session);
        }
        secret
    }

    fn find(&self, secret: &str) -> Option<(String, Session)> {
        let key = hash_secret(secret);
        let open = self.open.lock().ok()?;
        let session = open.get(&key)?;
        (session.expires_ms > now_ms()).then(|| (key.clone(), session.clone()))
    }

    /// Whether the session stored under `key` is still open.
    pub fn is_open(&self, key: &str) -> bool {
        self.open
            .lock()
            .ok()
            .and_then(|open| open.get(key).map(|s| s.expires_ms > now_ms()))
            .unwrap_or(false)
    }

    /// Closes the session stored under `key`.
    pub fn close(&self, key: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(key);
        }
    }
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Whether the request came over HTTPS through a proxy that says so.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure behind HTTPS.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if secure(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or(HeaderValue::from_static("sluice_invalid=1; Max-Age=0"))
}

/// Whether two secrets are equal, in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in person: the token behind the session, and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session's token, as the API handlers take it.
    pub caller: Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// The session's key in [`Sessions`].
    pub key: String,
}

impl Viewer {
    /// Whether this session may act (admin tokens) or only read (server tokens).
    pub fn can_write(&self) -> bool {
        matches!(self.caller.token.access, TokenAccess::Admin)
    }

    /// The one environment a read-only session sees; `None` for admins, who see all.
    pub fn environment(&self) -> Option<&str> {
        self.caller.token.access.environment()
    }

    /// Whether the session may see `environment`.
    pub fn sees(&self, environment: &str) -> bool {
        self.environment().is_none_or(|own| own == environment)
    }

    /// The token's name and id, for the page header.
    pub fn token(&self) -> &Token {
        &self.caller.token
    }

    /// Why a posted form is refused (a 403 page), or `None` when its CSRF token matches,
    /// it comes from this origin and the session may write.
    pub fn refuse_post(&self, headers: &HeaderMap, csrf: Option<&str>) -> Option<Response> {
        if !same_origin(headers) {
            return Some(refuse("the form was posted from another origin"));
        }
        if !csrf.is_some_and(|c| same_secret(c, &self.csrf)) {
            return Some(refuse(
                "the form's CSRF token is missing or wrong; reload the page and try again",
            ));
        }
        if !self.can_write() {
            return Some(refuse(
                "this session is read-only: sign in with an admin token to act",
            ));
        }
        None
    }
}

/// Whether `Origin`, when sent, names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// A 403 page.
pub fn refuse(message: &str) -> Response {
    super::layout::error_page(None, StatusCode::FORBIDDEN, message)
}

/// Where a request without a session goes.
pub fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        let Some(sessions) = parts.extensions.get::<Arc<Sessions>>() else {
            return Err(to_login());
        };
        let Some((key, session)) = cookie(&parts.headers, COOKIE).and_then(|s| sessions.find(s))
        else {
            return Err(to_login());
        };
        let token = match state.store().get_token(&session.token_id).await {
            Ok(token) if token.revoked_at_ms.is_none() => token,
            _ => {
                sessions.close(&key);
                return Err(to_login());
            }
        };
        if matches!(token.access, TokenAccess::Client { .. }) {
            sessions.close(&key);
            return Err(to_login());
        }
        Ok(Viewer {
            caller: Caller {
                token: Arc::new(token),
            },
            csrf: session.csrf,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sluice_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn sessions_are_stored_hashed_and_close() {
        let sessions = Sessions::default();
        let secret = sessions.open("tok_1");
        let (key, session) = sessions.find(&secret).unwrap();
        assert_ne!(key, secret);
        assert_eq!(session.token_id, "tok_1");
        assert!(sessions.find("nope").is_none());
        sessions.close(&key);
        assert!(sessions.find(&secret).is_none());
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let mut headers = HeaderMap::new();
        let value = set_cookie(&headers, COOKIE, "x", 60);
        let text = value.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(!text.contains("Secure"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&headers, COOKIE, "x", 60)
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
    }
}
