//! `axum-floor`: the floor for `bench/ofrep-load.sh`, a bare axum server that answers every
//! POST with a fixed, OFREP-sized JSON body.
//!
//! It reads the request body, as an evaluation endpoint must, and does nothing else: no
//! authentication, no parsing, no middleware. Usage: `axum-floor [ADDRESS]` (default
//! `127.0.0.1:0`); it prints `listening on http://ADDRESS` once it accepts connections.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::post;

/// The same shape and about the same size as an OFREP single-evaluation answer.
const BODY: &str =
    r#"{"key":"flag-000","value":true,"variant":"on","reason":"SPLIT","metadata":{}}"#;

async fn answer(_body: Bytes) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        BODY,
    )
}

fn main() -> ExitCode {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let address: SocketAddr = match address.parse() {
        Ok(address) => address,
        Err(error) => {
            eprintln!("axum-floor: `{address}` is not an address: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("axum-floor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address).await?;
        println!("listening on http://{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let app = Router::new()
            .route("/", post(answer))
            .route("/{*path}", post(answer));
        axum::serve(listener, app).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("axum-floor: {error}");
            ExitCode::FAILURE
        }
    }
}
