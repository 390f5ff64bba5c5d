//! A real OpenFeature client against the server: the `open-feature` SDK with the
//! `open-feature-ofrep` provider, evaluating boolean, string, integer, float and object flags
//! created through the admin API.
//!
//! `open-feature-ofrep` 0.1.2 reports reason `STATIC` for every successful evaluation,
//! whatever the response says, so each reason is also checked on the wire, in the OFREP
//! response the provider read.

use open_feature::provider::FeatureProvider as _;
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::helpers::{TestApp, boolean_flag, spawn_app};

/// Creates one flag of each type.
async fn create_flags(app: &TestApp) {
    app.create_flag("checkout", boolean_flag()).await;
    app.create_flag(
        "banner",
        json!({
            "type": "string",
            "variants": {"welcome": "Welcome!", "hallo": "Hallo!"},
            "default_variant": "welcome",
            "rules": [{"when": [{"attribute": "country", "op": "eq", "value": "DE"}], "serve": "hallo"}]
        }),
    )
    .await;
    app.create_flag(
        "max-items",
        json!({
            "type": "number",
            "variants": {"few": 10, "many": 50},
            "default_variant": "few",
            "rules": [{"when": [{"attribute": "plan", "op": "eq", "value": "pro"}], "serve": "many"}]
        }),
    )
    .await;
    app.create_flag(
        "discount",
        json!({
            "type": "number",
            "variants": {"standard": 0.15, "none": 0.0},
            "default_variant": "standard"
        }),
    )
    .await;
    app.create_flag(
        "layout",
        json!({
            "type": "object",
            "variants": {
                "carousel": {"layout": "carousel", "items": 8, "show_prices": true},
                "grid": {"layout": "grid", "items": 12, "show_prices": false}
            },
            "default_variant": "carousel",
            "rules": [{"when": [{"attribute": "screen_width", "op": "gte", "value": 1440}], "serve": "grid"}]
        }),
    )
    .await;
}

/// The reason the server gave on the wire for `key` in `context`.
async fn wire_reason(app: &TestApp, token: &str, key: &str, context: Value) -> String {
    let (status, body) = app.ofrep(token, key, context).await;
    assert!(status.is_success(), "{key}: {status} {body}");
    body["reason"].as_str().unwrap().to_owned()
}

/// Asserts what the client reported as the reason: the server's, or the `STATIC` that
/// `open-feature-ofrep` 0.1.2 always reports.
fn assert_reason(client: Option<EvaluationReason>, wire: &str, expected: &str) {
    assert_eq!(wire, expected, "the server's reason");
    let expected = match expected {
        "STATIC" => EvaluationReason::Static,
        "DEFAULT" => EvaluationReason::Default,
        "TARGETING_MATCH" => EvaluationReason::TargetingMatch,
        "SPLIT" => EvaluationReason::Split,
        "DISABLED" => EvaluationReason::Disabled,
        other => EvaluationReason::Other(other.to_owned()),
    };
    let client = client.unwrap();
    assert!(
        client == expected || client == EvaluationReason::Static,
        "the client reported {client:?}; the server said {expected:?}"
    );
}

#[tokio::test]
async fn the_openfeature_ofrep_provider_evaluates_every_type() {
    let app = spawn_app().await;
    create_flags(&app).await;
    let token = app.token("client", Some("production")).await;

    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let provider = OfrepProvider::new(OfrepOptions {
        base_url: app.address.clone(),
        headers,
        ..OfrepOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(provider.metadata().name, "ofrep");
    // The OpenFeature API is a process-wide singleton: a named provider keeps this test's
    // server to this test's client.
    let name = format!("sluice-{}", app.address);
    let client = {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_named_provider(&name, provider).await;
        api.create_named_client(&name)
    };

    // Boolean, with targeting and without.
    let pro = EvaluationContext::default()
        .with_targeting_key("user-1")
        .with_custom_field("plan", "pro");
    let details = client
        .get_bool_details("checkout", Some(&pro), None)
        .await
        .unwrap();
    assert!(details.value);
    assert_eq!(details.variant.as_deref(), Some("on"));
    let wire = wire_reason(
        &app,
        &token,
        "checkout",
        json!({"targetingKey": "user-1", "plan": "pro"}),
    )
    .await;
    assert_reason(details.reason, &wire, "TARGETING_MATCH");

    let free = EvaluationContext::default()
        .with_targeting_key("user-2")
        .with_custom_field("plan", "free");
    let details = client
        .get_bool_details("checkout", Some(&free), None)
        .await
        .unwrap();
    assert!(!details.value);
    assert_eq!(details.variant.as_deref(), Some("off"));
    let wire = wire_reason(
        &app,
        &token,
        "checkout",
        json!({"targetingKey": "user-2", "plan": "free"}),
    )
    .await;
    assert_reason(details.reason, &wire, "DEFAULT");

    // String.
    let german = EvaluationContext::default()
        .with_targeting_key("user-3")
        .with_custom_field("country", "DE");
    let details = client
        .get_string_details("banner", Some(&german), None)
        .await
        .unwrap();
    assert_eq!(details.value, "Hallo!");
    assert_eq!(details.variant.as_deref(), Some("hallo"));
    let wire = wire_reason(
        &app,
        &token,
        "banner",
        json!({"targetingKey": "user-3", "country": "DE"}),
    )
    .await;
    assert_reason(details.reason, &wire, "TARGETING_MATCH");
    assert_eq!(
        client
            .get_string_value("banner", Some(&free), None)
            .await
            .unwrap(),
        "Welcome!"
    );

    // Integer.
    let details = client
        .get_int_details("max-items", Some(&pro), None)
        .await
        .unwrap();
    assert_eq!(details.value, 50);
    assert_eq!(details.variant.as_deref(), Some("many"));
    let wire = wire_reason(
        &app,
        &token,
        "max-items",
        json!({"targetingKey": "user-1", "plan": "pro"}),
    )
    .await;
    assert_reason(details.reason, &wire, "TARGETING_MATCH");
    assert_eq!(
        client
            .get_int_value("max-items", Some(&free), None)
            .await
            .unwrap(),
        10
    );

    // Float, from a flag without rules.
    let details = client
        .get_float_details("discount", None, None)
        .await
        .unwrap();
    assert!(
        (details.value - 0.15).abs() < f64::EPSILON,
        "{}",
        details.value
    );
    assert_eq!(details.variant.as_deref(), Some("standard"));
    let wire = wire_reason(&app, &token, "discount", json!({})).await;
    assert_reason(details.reason, &wire, "STATIC");

    // Object.
    let wide = EvaluationContext::default()
        .with_targeting_key("user-4")
        .with_custom_field("screen_width", 1920_i64);
    let details = client
        .get_struct_details::<open_feature::StructValue>("layout", Some(&wide), None)
        .await
        .unwrap();
    let fields = &details.value.fields;
    assert_eq!(fields["layout"].as_str(), Some("grid"));
    assert_eq!(fields["items"].as_i64(), Some(12));
    assert_eq!(fields["show_prices"].as_bool(), Some(false));
    assert_eq!(details.variant.as_deref(), Some("grid"));
    let wire = wire_reason(
        &app,
        &token,
        "layout",
        json!({"targetingKey": "user-4", "screen_width": 1920}),
    )
    .await;
    assert_reason(details.reason, &wire, "TARGETING_MATCH");
    let narrow = client
        .get_struct_value::<open_feature::StructValue>("layout", Some(&free), None)
        .await
        .unwrap();
    assert_eq!(narrow.fields["layout"].as_str(), Some("carousel"));

    // A missing flag: FLAG_NOT_FOUND, and the caller serves its own default.
    let error = client
        .get_bool_details("no-such-flag", Some(&pro), None)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound, "{error:?}");
    let value = client
        .get_bool_value("no-such-flag", Some(&pro), None)
        .await
        .unwrap_or(true);
    assert!(value, "the caller's default");
    let value = client
        .get_string_value("no-such-flag", None, None)
        .await
        .unwrap_or_else(|_| "caller default".to_owned());
    assert_eq!(value, "caller default");
}
