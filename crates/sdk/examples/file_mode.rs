//! File mode: serve flags from a YAML file, and pick up an edit to it without a restart.
//!
//! Run it with `cargo run -p sluice --example file_mode`. It copies the repository's
//! `examples/flags.yaml` into a temporary directory, so that it can edit the copy the way an
//! operator would during an incident: by switching `new-checkout` off in the file.

use std::time::{Duration, Instant};
use std::{fs, thread};

use serde_json::json;
use sluice::{Client, ContextBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/flags.yaml");
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("flags.yaml");
    fs::copy(example, &path)?;

    let client = Client::file_builder(&path)
        .environment("production")
        .build()?;

    let users = [
        ContextBuilder::new("ana")
            .attr("email", "ana@shop.example")
            .build(),
        ContextBuilder::new("bo").attr("beta_opt_in", true).build(),
        ContextBuilder::new("cy")
            .attr("app", json!({ "version": "5.1.0" }))
            .build(),
        ContextBuilder::new("dee").build(),
    ];
    for user in &users {
        let checkout = client.bool_details("new-checkout", user, false);
        let rule = checkout.rule.as_ref().and_then(|rule| rule.name.as_deref());
        println!(
            "{:<4} new-checkout={:<5} reason={:<15} rule={}",
            user.targeting_key().unwrap_or("?"),
            checkout.value,
            checkout.reason.as_str(),
            rule.unwrap_or("-"),
        );
    }

    // Kill the flag in the file. Writing a temporary file and renaming it over the old one,
    // as editors do, means the client never sees a half-written file.
    let text = fs::read_to_string(&path)?;
    let killed = text.replacen(
        "  new-checkout:\n",
        "  new-checkout:\n    enabled: false\n",
        1,
    );
    let temporary = directory.path().join("flags.yaml.tmp");
    fs::write(&temporary, killed)?;
    fs::rename(&temporary, &path)?;

    let deadline = Instant::now() + Duration::from_secs(2);
    while client.bool("new-checkout", &users[0], false) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let checkout = client.bool_details("new-checkout", &users[0], false);
    println!(
        "after the edit: ana new-checkout={} reason={} (status {})",
        checkout.value,
        checkout.reason.as_str(),
        client.status()
    );
    Ok(())
}
