//! Who is calling: the token in `Authorization: Bearer …` or `X-API-Key`, and what it may do.
//!
//! [`Caller`] is an extractor: a handler that takes one cannot run without a live token
//! (401 otherwise). The handler then states what it needs, such as [`Caller::admin`] or
//! [`Caller::environment`], and gets 403 when the token's scope does not allow it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::store::{Token, TokenAccess, TokenScope};

/// The longest credential considered; anything longer is refused without hashing.
const MAX_TOKEN_LEN: usize = 512;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token it presented, shared with the token cache.
    pub token: Arc<Token>,
}

/// The credential in the request, if any.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Some(secret) = credential(&parts.headers) else {
            return Err(ApiError::Unauthorized(
                "missing credential: send `Authorization: Bearer <token>` or `X-API-Key: <token>`"
                    .into(),
            ));
        };
        if secret.is_empty() || secret.len() > MAX_TOKEN_LEN {
            return Err(ApiError::Unauthorized("invalid token".into()));
        }
        match state.tokens().authenticate(state.store(), secret).await? {
            Some(token) => Ok(Caller { token }),
            None => Err(ApiError::Unauthorized("invalid or revoked token".into())),
        }
    }
}

impl Caller {
    /// The token id, for audit records.
    pub fn id(&self) -> &str {
        &self.token.id
    }

    /// Requires an admin token.
    pub fn admin(&self) -> Result<(), ApiError> {
        match self.token.access {
            TokenAccess::Admin => Ok(()),
            _ => Err(ApiError::Forbidden(format!(
                "this needs an admin token; `{}` is a {} token",
                self.token.id,
                self.token.access.scope().as_str()
            ))),
        }
    }

    /// The environment of a token whose scope is one of `allowed`.
    pub fn environment(&self, allowed: &[TokenScope]) -> Result<&str, ApiError> {
        let scope = self.token.access.scope();
        if !allowed.contains(&scope) {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::Forbidden(format!(
                "this needs a {} token; `{}` is a {} token",
                names.join(" or "),
                self.token.id,
                scope.as_str()
            )));
        }
        self.token.access.environment().ok_or_else(|| {
            ApiError::Forbidden("this needs a token that belongs to an environment".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_and_api_key_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(credential(&headers), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  xyz "),
        );
        assert_eq!(credential(&headers), Some("xyz"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&headers), None);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(credential(&headers), Some("k1"));
    }
}
