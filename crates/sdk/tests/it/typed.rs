//! Typed accessors: a value of another type, or no value, serves the caller's default.

use serde_json::json;
use sluice::{ContextBuilder, ErrorCode, Reason};

use crate::client_for;

const FLAGS: &str = r#"
flags:
  enabled:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "on"
  label:
    type: string
    variants: { a: "alpha" }
    default_variant: a
  ratio:
    type: number
    variants: { half: 0.5 }
    default_variant: half
  count:
    type: number
    variants: { ten: 10 }
    default_variant: ten
  layout:
    type: object
    variants: { grid: { columns: 3 } }
    default_variant: grid
  killed:
    type: boolean
    variants: { "on": true }
    default_variant: "on"
    enabled: false
"#;

#[test]
fn matching_types_serve_the_flag() {
    let (_dir, _path, client) = client_for(FLAGS);
    let context = ContextBuilder::new("u").build();
    assert!(client.bool("enabled", &context, false));
    assert_eq!(client.string("label", &context, "x"), "alpha");
    assert_eq!(client.number("ratio", &context, 0.0), 0.5);
    assert_eq!(client.number("count", &context, 0.0), 10.0);
    assert_eq!(client.integer("count", &context, 0), 10);
    assert_eq!(
        client.json("layout", &context, json!(null)),
        json!({ "columns": 3 })
    );
    let details = client.details("label", &context);
    assert_eq!(details.value, Some(json!("alpha")));
    assert_eq!(details.reason, Reason::Static);
    assert_eq!(details.variant.as_deref(), Some("a"));
}

#[test]
fn other_types_serve_the_default_with_type_mismatch() {
    let (_dir, _path, client) = client_for(FLAGS);
    let context = ContextBuilder::new("u").build();
    assert!(!client.bool("label", &context, false));
    assert_eq!(client.string("enabled", &context, "x"), "x");
    assert_eq!(client.number("label", &context, 1.5), 1.5);
    assert_eq!(client.integer("ratio", &context, 7), 7);
    assert_eq!(
        client.json("enabled", &context, json!({ "d": 1 })),
        json!({ "d": 1 })
    );

    let mismatches = [
        client.bool_details("label", &context, false).error,
        client.string_details("enabled", &context, "x").error,
        client.number_details("label", &context, 1.5).error,
        client.integer_details("ratio", &context, 7).error,
        client.json_details("count", &context, json!({})).error,
    ];
    assert!(
        mismatches
            .iter()
            .all(|e| *e == Some(ErrorCode::TypeMismatch)),
        "{mismatches:?}"
    );

    let details = client.integer_details("ratio", &context, 7);
    assert_eq!(details.value, 7);
    assert_eq!(details.reason, Reason::Error);
    assert_eq!(details.variant, None);
    assert_eq!(details.error.unwrap().as_str(), "TYPE_MISMATCH");
}

#[test]
fn missing_flags_and_missing_values_serve_the_default() {
    let (_dir, _path, client) = client_for(FLAGS);
    let context = ContextBuilder::anonymous().build();
    let details = client.bool_details("nope", &context, true);
    assert!(details.value);
    assert_eq!(details.error, Some(ErrorCode::FlagNotFound));
    assert!(details.metadata.is_empty());
    assert_eq!(client.details("nope", &context).value, None);

    // Disabled without an off variant: nothing is served, and that is not an error.
    let details = client.bool_details("killed", &context, false);
    assert!(!details.value);
    assert_eq!(details.reason, Reason::Disabled);
    assert_eq!(details.error, None);
}
