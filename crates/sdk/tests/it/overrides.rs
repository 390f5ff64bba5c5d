//! Environment overrides: `SLUICE_FLAG_<KEY>=<variant>`.

use sluice::{Client, ContextBuilder, Override, OverrideWarning, Reason};

use crate::example_flags;

fn client_with(variables: &[(&str, &str)]) -> Client {
    Client::file_builder(example_flags())
        .environment("production")
        .env_vars(variables.iter().copied())
        .watch(false)
        .build()
        .unwrap()
}

#[test]
fn an_override_forces_a_variant_with_reason_static() {
    let client = client_with(&[
        ("SLUICE_FLAG_NEW_CHECKOUT", "on"),
        ("SLUICE_FLAG_LEGACY_INVOICE_PDF", "on"),
        ("SOMETHING_ELSE", "off"),
    ]);
    // This user's app is too old for the new checkout, so a rule would serve `off`.
    let old_app = ContextBuilder::new("cy")
        .attr("app", serde_json::json!({ "version": "1.0.0" }))
        .build();
    let details = client.bool_details("new-checkout", &old_app, false);
    assert!(details.value);
    assert_eq!(details.reason, Reason::Static);
    assert_eq!(details.variant.as_deref(), Some("on"));
    assert!(details.overridden);
    assert_eq!(details.rule, None);
    assert_eq!(details.metadata["ticket"], "PAY-1412");

    // An override wins over a kill switch too.
    assert!(client.bool("legacy-invoice-pdf", &old_app, false));
    // Other flags are untouched.
    assert!(
        !client
            .bool_details("payments-api-v2", &old_app, false)
            .overridden
    );

    assert_eq!(
        client.overrides(),
        vec![
            Override {
                variable: "SLUICE_FLAG_LEGACY_INVOICE_PDF".into(),
                flag: "legacy-invoice-pdf".into(),
                variant: "on".into()
            },
            Override {
                variable: "SLUICE_FLAG_NEW_CHECKOUT".into(),
                flag: "new-checkout".into(),
                variant: "on".into()
            },
        ]
    );
    assert!(client.override_warnings().is_empty());
}

#[test]
fn unknown_variants_and_flags_are_reported_and_ignored() {
    let client = client_with(&[
        ("SLUICE_FLAG_SEARCH_RANKING", "quantum"),
        ("SLUICE_FLAG_NO_SUCH_FLAG", "on"),
    ]);
    let eu = ContextBuilder::new("eu-1").attr("country", "DE").build();
    let details = client.string_details("search-ranking", &eu, "none");
    assert_eq!(details.value, "bm25");
    assert_eq!(details.reason, Reason::TargetingMatch);
    assert!(!details.overridden);
    assert!(client.overrides().is_empty());

    let warnings = client.override_warnings();
    assert_eq!(
        warnings,
        vec![
            OverrideWarning::UnknownFlag {
                variable: "SLUICE_FLAG_NO_SUCH_FLAG".into(),
                variant: "on".into()
            },
            OverrideWarning::UnknownVariant {
                variable: "SLUICE_FLAG_SEARCH_RANKING".into(),
                flag: "search-ranking".into(),
                variant: "quantum".into(),
                known: vec!["bm25".into(), "hybrid".into(), "learned".into()],
            },
        ]
    );
    assert!(warnings[1].to_string().contains("has no variant `quantum`"));
}

#[test]
fn variable_names_follow_the_key() {
    assert_eq!(
        sluice::override_variable("free-shipping-threshold"),
        "SLUICE_FLAG_FREE_SHIPPING_THRESHOLD"
    );
    let client = client_with(&[("SLUICE_FLAG_FREE_SHIPPING_THRESHOLD", "holiday")]);
    let anyone = ContextBuilder::anonymous().build();
    assert_eq!(client.number("free-shipping-threshold", &anyone, 0.0), 29.0);
}
