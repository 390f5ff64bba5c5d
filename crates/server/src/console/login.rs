//! Signing in and out: `/login` takes a token and opens a session; `/` goes to the flags.
//!
//! The sign-in form is tied to the browser that loaded it by a random value in both a
//! `SameSite=Strict` cookie and the form (double submit), so another site cannot sign a
//! browser in to its own session. Any failure goes back to `/login` with a message.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::html;
use serde::Deserialize;

use super::layout::{Section, page};
use super::session::{
    COOKIE, LOGIN_COOKIE, Sessions, TTL_MS, Viewer, cookie, random_secret, same_origin,
    same_secret, set_cookie,
};
use crate::state::AppState;
use crate::store::TokenAccess;

/// Sign-in routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(form).post(login))
        .route("/logout", post(logout))
}

async fn home(_viewer: Viewer) -> Redirect {
    Redirect::to("/flags")
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    error: Option<String>,
}

fn problem(code: &str) -> &'static str {
    match code {
        "token" => "That token was not accepted: it is unknown, revoked or mistyped.",
        "client" => {
            "Client tokens cannot sign in: use an admin token, or a server token to read one environment."
        }
        "form" => "The sign-in form expired; please try again.",
        _ => "Signing in failed; please try again.",
    }
}

async fn form(headers: HeaderMap, Query(query): Query<LoginQuery>) -> Response {
    let nonce = random_secret();
    let body = html! {
        @if let Some(code) = &query.error {
            p.error role="alert" { (problem(code)) }
        }
        form.stack method="post" action="/login" {
            input type="hidden" name="login" value=(nonce);
            div {
                label for="token" { "Token" }
                input type="password" id="token" name="token" autocomplete="off" required size="72"
                    aria-describedby="token-help";
            }
            p.muted id="token-help" {
                "An admin token may act; a server token shows its environment read-only."
            }
            div { button.primary type="submit" { "Sign in" } }
        }
    };
    let mut response = page(None, Section::None, "Sign in", body);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, &nonce, 3600),
    );
    response
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    login: String,
}

fn failed(code: &str) -> Response {
    Redirect::to(&format!("/login?error={code}")).into_response()
}

async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return failed("form");
    };
    let nonce_ok = cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &form.login));
    if !nonce_ok || !same_origin(&headers) {
        return failed("form");
    }
    let secret = form.token.trim();
    if secret.is_empty() || secret.len() > 512 {
        return failed("token");
    }
    let token = match state.tokens().authenticate(state.store(), secret).await {
        Ok(Some(token)) => token,
        _ => return failed("token"),
    };
    if matches!(token.access, TokenAccess::Client { .. }) {
        return failed("client");
    }
    let session = sessions.open(&token.id);
    let mut response = Redirect::to("/flags").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&headers, COOKIE, &session, TTL_MS / 1000),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", 0),
    );
    response
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

async fn logout(
    Extension(sessions): Extension<Arc<Sessions>>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.ok().and_then(|Form(f)| f.csrf);
    if !same_origin(&headers) || !csrf.is_some_and(|c| same_secret(&c, &viewer.csrf)) {
        return super::session::refuse("the form's CSRF token is missing or wrong");
    }
    sessions.close(&viewer.key);
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&headers, COOKIE, "", 0));
    response
}
