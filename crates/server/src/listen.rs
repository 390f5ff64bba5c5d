//! Accepting connections and serving HTTP on them, with limits a bare `axum::serve` lacks.
//!
//! Each connection gets a timer, so a client that opens a connection and sends its request
//! head slowly, or never (slowloris), is closed once [`Limits::header_timeout`] has passed
//! without a complete head; a head larger than [`Limits::max_header_bytes`] is answered 431.
//! Bodies are bounded by the router's body limit and request timeout, and live streams by
//! their own heartbeats. Every request carries the client's address as
//! [`ConnectInfo<SocketAddr>`], which the rate limits key on.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most time a client may take to send a request head, from when the server starts
    /// waiting for it (on a new connection, or after the previous response).
    pub header_timeout: Duration,
    /// The largest request head, in bytes; larger heads get 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(5),
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish and waits for every connection to close.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Running out of descriptors or a connection reset before accept: wait a
                // little instead of spinning, and keep serving the others.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_connection(
            stream,
            remote,
            router.clone(),
            limits,
            stop_rx.clone(),
        ));
        // Reap finished connections so the set does not grow with every one ever served.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let service = router.map_request(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let service = TowerToHyperService::new(service);
    // HTTP/1.1 only: TLS and HTTP/2 end at the proxy in front, if any.
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%remote, %error, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !draining => {
                // Shutting down (or the server is gone): finish what is in flight, then close.
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
