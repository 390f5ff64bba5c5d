//! File mode: serving the reference example, environments, and errors at start.

use std::time::Duration;

use serde_json::json;
use sluice::{Client, ContextBuilder, Error, Reason, Status};

use crate::example_flags;

fn production() -> Client {
    Client::file_builder(example_flags())
        .environment("production")
        .env_vars(Vec::<(String, String)>::new())
        .build()
        .unwrap()
}

#[test]
fn serves_the_reference_example() {
    let client = production();
    assert_eq!(client.status(), Status::Ready);
    assert!(client.last_error().is_none());
    client.wait_ready(Duration::ZERO).unwrap();
    assert_eq!(client.environment(), Some("production"));
    assert!(client.flag_keys().contains(&"new-checkout".to_owned()));

    let staff = ContextBuilder::new("ana")
        .attr("email", "ana@shop.example")
        .build();
    let details = client.bool_details("new-checkout", &staff, false);
    assert!(details.value);
    assert_eq!(details.reason, Reason::TargetingMatch);
    assert_eq!(details.variant.as_deref(), Some("on"));
    assert_eq!(details.rule.as_ref().unwrap().index, 0);
    assert_eq!(
        details.rule.unwrap().name.as_deref(),
        Some("internal first")
    );
    assert_eq!(details.segment.as_deref(), Some("internal"));
    assert_eq!(details.metadata["ticket"], "PAY-1412");
    assert!(!details.overridden);

    let beta = ContextBuilder::new("bo").attr("beta_opt_in", true).build();
    assert_eq!(
        client
            .bool_details("new-checkout", &beta, false)
            .segment
            .as_deref(),
        Some("beta")
    );

    let old_app = ContextBuilder::new("cy")
        .attr("app", json!({ "version": "5.1.0" }))
        .build();
    let details = client.bool_details("new-checkout", &old_app, true);
    assert!(!details.value);
    assert_eq!(details.rule.unwrap().index, 2);

    // The rest are split ten to ninety, stably.
    let on = (0..2000)
        .filter(|i| {
            client.bool(
                "new-checkout",
                &ContextBuilder::new(format!("user-{i}")).build(),
                false,
            )
        })
        .count();
    assert!(
        (120..280).contains(&on),
        "{on} of 2000 users got the new checkout"
    );
    let user = ContextBuilder::new("user-1").build();
    assert_eq!(
        client.bool_details("new-checkout", &user, false).reason,
        Reason::Split
    );

    // Production kills the legacy renderer.
    let details = client.bool_details("legacy-invoice-pdf", &user, true);
    assert_eq!((details.value, details.reason), (false, Reason::Disabled));

    let eu = ContextBuilder::new("eu-1").attr("country", "DE").build();
    assert_eq!(client.string("search-ranking", &eu, "none"), "bm25");
    assert_eq!(client.number("free-shipping-threshold", &user, 0.0), 49.0);
    let widget = client.json("recommendations-widget", &user, json!({}));
    assert_eq!(widget["layout"], "carousel");
}

#[test]
fn environments_change_what_is_served() {
    let user = ContextBuilder::new("user-1").build();
    let development = Client::file_builder(example_flags())
        .environment("development")
        .env_vars(Vec::<(String, String)>::new())
        .watch(false)
        .build()
        .unwrap();
    assert!(development.bool("new-checkout", &user, false));
    assert!(development.bool("legacy-invoice-pdf", &user, false));

    let base = Client::file_builder(example_flags())
        .env_vars(Vec::<(String, String)>::new())
        .watch(false)
        .build()
        .unwrap();
    assert_eq!(base.environment(), None);
    assert!(base.bool("legacy-invoice-pdf", &user, false));
}

#[test]
fn an_unknown_environment_is_an_error() {
    let error = Client::file_builder(example_flags())
        .environment("moon")
        .watch(false)
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("environment `moon` is not defined"),
        "{message}"
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nope.yaml");
    let error = Client::from_file(&path).unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("nope.yaml"), "{error}");

    // Even when its directory is missing too, the file is what the error names.
    let error = Client::from_file(directory.path().join("gone/flags.yaml")).unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error:?}");
}

#[test]
fn an_invalid_file_names_file_line_column_and_path() {
    let text = "flags:\n  checkout:\n    type: boolean\n    variants: { \"on\": true }\n    default_variant: \"on\"\n    rules:\n      - serve: nope\n";
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("bad.yaml");
    std::fs::write(&path, text).unwrap();
    let error = Client::from_file(&path).unwrap_err();
    let errors = error
        .definition_errors()
        .expect("an invalid-definition error");
    let first = errors.iter().next().unwrap();
    assert_eq!(first.path.to_string(), "flags.checkout.rules[0].serve");
    assert_eq!(first.position.map(|p| p.line), Some(7));
    assert!(first.file.as_deref().unwrap().ends_with("bad.yaml"));
    let message = error.to_string();
    assert!(message.contains("bad.yaml:7:"), "{message}");
    assert!(
        message.contains("flags.checkout.rules[0].serve"),
        "{message}"
    );
}

#[test]
fn json_files_are_read_as_json() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.json");
    let text = r#"{"flags": {"dark-mode": {"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on"}}}"#;
    std::fs::write(&path, text).unwrap();
    let client = Client::file_builder(&path)
        .env_vars(Vec::<(String, String)>::new())
        .watch(false)
        .build()
        .unwrap();
    assert!(client.bool("dark-mode", &ContextBuilder::anonymous().build(), false));
}
