//! Server mode: serve a Sluice server's flags, and follow changes as they happen.
//!
//! Start a server (`sluice serve`), create a flag and a server token for an environment, then
//! run `SLUICE_URL=http://127.0.0.1:8470 SLUICE_TOKEN=... cargo run -p sluice --example
//! server_mode`. It prints `new-checkout` for one user whenever the value or the client's
//! status changes: kill the flag, or stop the server, and watch. Ctrl-C ends it.

use std::time::Duration;

use sluice::{Client, ContextBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("SLUICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8470".to_owned());
    let token = std::env::var("SLUICE_TOKEN").map_err(|_| "set SLUICE_TOKEN to a server token")?;
    let cache = std::env::temp_dir().join("sluice-example-flags.json");

    // Waits up to 2 s for the flags; if the server is down, starts from the cache file.
    let client = Client::builder()
        .server(&url)
        .token(token)
        .init_timeout(Duration::from_secs(2))
        .cache_file(&cache)
        .build()?;
    println!(
        "{url}: {} (environment {}, version {})",
        client.status(),
        client.environment().unwrap_or("?"),
        client.version().map_or("-".to_owned(), |v| v.to_string()),
    );

    let user = ContextBuilder::new("ana")
        .attr("email", "ana@shop.example")
        .build();
    let mut shown = None;
    let mut changes = client.subscribe();
    loop {
        let details = client.bool_details("new-checkout", &user, false);
        let now = (
            details.value,
            details.reason,
            client.status(),
            client.version(),
        );
        if shown != Some(now) {
            let why = details
                .error
                .map_or_else(|| details.reason.as_str().to_owned(), |e| e.to_string());
            println!(
                "new-checkout={} ({why}) status={} version={:?}",
                now.0, now.2, now.3
            );
            if let Some(error) = client.last_error() {
                println!("  last error: {error}");
            }
            shown = Some(now);
        }
        // Wake on a status change, and at least every 200 ms to see new flag versions.
        let _ = changes.wait_changed(Duration::from_millis(200));
    }
}
