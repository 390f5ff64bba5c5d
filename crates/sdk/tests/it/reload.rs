//! Hot reload: edits are picked up, invalid edits keep the last good flags, and the
//! watcher stops with the client.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use sluice::{Client, ContextBuilder, Error, Status};

use crate::{client_for, wait_until, write_by_rename};

const WITHIN: Duration = Duration::from_secs(1);

fn flags(color: &str) -> String {
    format!(
        "flags:\n  color:\n    type: string\n    variants: {{ red: red, blue: blue, green: green }}\n    default_variant: {color}\n"
    )
}

fn color(client: &Client) -> String {
    client.string("color", &ContextBuilder::new("u").build(), "none")
}

#[test]
fn an_edit_in_place_is_picked_up_within_a_second() {
    let (_dir, path, client) = client_for(&flags("red"));
    let mut changes = client.subscribe();
    assert_eq!(color(&client), "red");
    std::fs::write(&path, flags("blue")).unwrap();
    assert!(
        wait_until(WITHIN, || color(&client) == "blue"),
        "still {}",
        color(&client)
    );
    assert_eq!(client.status(), Status::Ready);
    // A successful reload is not a status change.
    assert_eq!(
        changes.wait_changed(Duration::ZERO),
        Err(RecvTimeoutError::Timeout)
    );
}

#[test]
fn a_rename_over_the_file_is_picked_up_within_a_second() {
    let (_dir, path, client) = client_for(&flags("red"));
    write_by_rename(&path, &flags("green"));
    assert!(
        wait_until(WITHIN, || color(&client) == "green"),
        "still {}",
        color(&client)
    );
    write_by_rename(&path, &flags("blue"));
    assert!(
        wait_until(WITHIN, || color(&client) == "blue"),
        "still {}",
        color(&client)
    );
}

#[test]
fn an_invalid_edit_keeps_the_last_good_flags_and_a_fix_recovers() {
    let (_dir, path, client) = client_for(&flags("red"));
    let mut changes = client.subscribe();

    // `purple` is not a variant.
    write_by_rename(&path, &flags("purple"));
    assert_eq!(changes.wait_changed(WITHIN), Ok(Status::Error));
    assert_eq!(client.status(), Status::Error);
    assert_eq!(color(&client), "red");
    let error = client.last_error().expect("the rejected edit");
    let problem = error.definition_errors().unwrap().iter().next().unwrap();
    assert_eq!(problem.path.to_string(), "flags.color.default_variant");
    assert_eq!(problem.position.map(|p| (p.line, p.column)), Some((5, 5)));
    assert!(error.to_string().contains("flags.yaml:5:5"), "{error}");
    assert!(client.wait_ready(Duration::from_millis(10)).is_err());

    // A different mistake is a new event, though the status stays `Error`.
    write_by_rename(&path, "flags: [\n");
    assert_eq!(changes.wait_changed(WITHIN), Ok(Status::Error));
    assert!(
        client
            .last_error()
            .unwrap()
            .to_string()
            .contains("flags.yaml:")
    );
    assert_eq!(color(&client), "red");

    write_by_rename(&path, &flags("blue"));
    assert_eq!(changes.wait_changed(WITHIN), Ok(Status::Ready));
    assert!(client.last_error().is_none());
    assert_eq!(color(&client), "blue");
    client.wait_ready(Duration::ZERO).unwrap();
}

#[test]
fn a_deleted_file_is_an_error_until_it_returns() {
    let (_dir, path, client) = client_for(&flags("red"));
    let mut changes = client.subscribe();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(changes.wait_changed(WITHIN), Ok(Status::Error));
    assert!(matches!(*client.last_error().unwrap(), Error::Read { .. }));
    assert_eq!(color(&client), "red");

    std::fs::write(&path, flags("red")).unwrap();
    assert_eq!(changes.wait_changed(WITHIN), Ok(Status::Ready));
    assert_eq!(color(&client), "red");
}

#[test]
fn an_override_applies_to_a_flag_added_later() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.yaml");
    std::fs::write(&path, flags("red")).unwrap();
    let client = Client::file_builder(&path)
        .env_vars([("SLUICE_FLAG_DARK_MODE", "on")])
        .build()
        .unwrap();
    assert_eq!(client.override_warnings().len(), 1);

    let mut text = flags("red");
    text.push_str("  dark-mode:\n    type: boolean\n    variants: { \"on\": true, \"off\": false }\n    default_variant: \"off\"\n");
    write_by_rename(&path, &text);
    let anyone = ContextBuilder::anonymous().build();
    assert!(wait_until(WITHIN, || client.bool(
        "dark-mode",
        &anyone,
        false
    )));
    assert!(client.bool_details("dark-mode", &anyone, false).overridden);
    assert!(client.override_warnings().is_empty());
}

#[test]
fn other_files_in_the_directory_are_ignored() {
    let (directory, path, client) = client_for(&flags("red"));
    let mut changes = client.subscribe();
    std::fs::write(directory.path().join("notes.txt"), "not flags").unwrap();
    std::fs::write(directory.path().join("other.yaml"), "flags: [").unwrap();
    // Give the watcher the same time it has for real changes: nothing may happen.
    assert_eq!(
        changes.wait_changed(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(client.status(), Status::Ready);
    // The watcher is still alive for the file itself.
    std::fs::write(&path, flags("green")).unwrap();
    assert!(wait_until(WITHIN, || color(&client) == "green"));
}

#[test]
fn the_watcher_stops_with_the_last_clone() {
    let (_dir, path, client) = client_for(&flags("red"));
    let clone = client.clone();
    let mut changes = client.subscribe();
    drop(client);
    // The clone keeps everything alive.
    std::fs::write(&path, flags("blue")).unwrap();
    assert!(wait_until(WITHIN, || color(&clone) == "blue"));
    drop(clone);
    // The client is gone: its watcher thread has been joined, and subscribers hear of it.
    assert_eq!(
        changes.wait_changed(WITHIN),
        Err(RecvTimeoutError::Disconnected)
    );
    assert_eq!(changes.status(), Status::Ready);
}

#[test]
fn async_subscribers_hear_of_changes() {
    let (_dir, path, client) = client_for(&flags("red"));
    let mut changes = client.subscribe();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        write_by_rename(&path, &flags("purple"));
        let status = tokio::time::timeout(WITHIN, changes.changed())
            .await
            .unwrap();
        assert_eq!(status, Some(Status::Error));
        drop(client);
        let status = tokio::time::timeout(WITHIN, changes.changed())
            .await
            .unwrap();
        assert_eq!(status, None);
    });
}
