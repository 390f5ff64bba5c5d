//! What a console form gets back from the API handler it reuses: a redirect to the page it
//! came from on success, a page saying a change request was filed on 202, or an error page
//! with the API's own message.

use axum::body::to_bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{Section, error_page, page_with_status};
use super::session::Viewer;
use crate::http::error::ApiError;

/// The largest API answer read for its message.
const MAX_ANSWER: usize = 256 * 1024;

/// Turns an API handler's result into the console's answer; `back` is where success goes.
pub async fn respond(viewer: &Viewer, result: Result<Response, ApiError>, back: &str) -> Response {
    let response = match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let status = response.status();
    if status == StatusCode::ACCEPTED {
        let body = to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .unwrap_or_default();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let id = answer["id"].as_str().unwrap_or("(unknown)").to_owned();
        return page_with_status(
            StatusCode::ACCEPTED,
            Some(viewer),
            Section::None,
            "Change request filed",
            html! {
                p role="status" {
                    "This environment is protected, so the change was filed as change request "
                    code { (id) } " and waits for its approvals."
                }
                p { a href=(back) { "Back" } }
            },
        );
    }
    if status.is_success() {
        return Redirect::to(back).into_response();
    }
    let body = to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .unwrap_or_default();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = answer["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    error_page(Some(viewer), status, &message)
}
