//! The OpenFeature provider, driven through `open_feature::OpenFeature`'s client API.

use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationErrorCode, EvaluationReason,
    FlagMetadataValue, OpenFeature, StructValue, Value,
};
use serde_json::json;
use sluice::Client;
use sluice::openfeature::SluiceProvider;

const FLAGS: &str = r#"
segments:
  staff:
    when: [{ attribute: email, op: ends_with, value: "@example.com" }]
flags:
  checkout:
    type: boolean
    variants: { "on": true, "off": false }
    default_variant: "off"
    metadata: { ticket: PAY-1, weight: 3, ratio: 0.5, public: true }
    rules:
      - name: staff
        when: [{ segment: staff }]
        serve: "on"
      - name: old apps
        when: [{ attribute: app.version, op: semver_lt, value: "2.0.0" }]
        serve: "off"
      - split:
          - { variant: "on", weight: 50000 }
          - { variant: "off", weight: 50000 }
  theme:
    type: string
    variants: { light: light, dark: dark }
    default_variant: light
    rules:
      - when: [{ attribute: device.kind, op: eq, value: tv }]
        serve: dark
  page-size:
    type: number
    variants: { small: 10, large: 100 }
    default_variant: small
    rules:
      - when: [{ attribute: seats, op: gte, value: 50 }]
        serve: large
  sample-rate:
    type: number
    variants: { low: 0.01, high: 0.25 }
    default_variant: high
  layout:
    type: object
    variants:
      grid: { columns: 3, dense: false, title: "Grid", sizes: [1, 2.5], note: null }
    default_variant: grid
  retired:
    type: boolean
    variants: { "on": true }
    default_variant: "on"
    enabled: false
"#;

#[tokio::test]
async fn the_provider_evaluates_every_type_through_openfeature() {
    let (_dir, _path, client) = crate::client_for(FLAGS);
    let provider = SluiceProvider::new(client.clone());
    assert_eq!(provider.status(), ProviderStatus::Ready);
    assert_eq!(provider.metadata().name, "sluice");

    let flags = {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_named_provider("sluice-it", provider).await;
        api.create_named_client("sluice-it")
    };

    let staff = EvaluationContext::default()
        .with_targeting_key("ana")
        .with_custom_field("email", "ana@example.com");
    let details = flags
        .get_bool_details("checkout", Some(&staff), None)
        .await
        .unwrap();
    assert!(details.value);
    assert_eq!(details.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(details.variant.as_deref(), Some("on"));
    let metadata = &details.flag_metadata.values;
    assert_eq!(
        metadata["ticket"],
        FlagMetadataValue::String("PAY-1".into())
    );
    assert_eq!(metadata["weight"], FlagMetadataValue::Int(3));
    assert_eq!(metadata["ratio"], FlagMetadataValue::Float(0.5));
    assert_eq!(metadata["public"], FlagMetadataValue::Bool(true));
    assert_eq!(
        metadata["sluice.rule"],
        FlagMetadataValue::String("staff".into())
    );
    assert_eq!(
        metadata["sluice.segment"],
        FlagMetadataValue::String("staff".into())
    );

    // Nested structures reach rules through dotted paths.
    let old_app = EvaluationContext::default()
        .with_targeting_key("bo")
        .with_custom_field(
            "app",
            EvaluationContextFieldValue::new_struct(json!({ "version": "1.4.0" })),
        );
    let details = flags
        .get_bool_details("checkout", Some(&old_app), None)
        .await
        .unwrap();
    assert!(!details.value);
    assert_eq!(
        details.flag_metadata.values["sluice.rule"],
        FlagMetadataValue::String("old apps".into())
    );

    let split = EvaluationContext::default().with_targeting_key("cy");
    let details = flags
        .get_bool_details("checkout", Some(&split), None)
        .await
        .unwrap();
    assert_eq!(details.reason, Some(EvaluationReason::Split));
    assert_eq!(
        details.flag_metadata.values["sluice.rule"],
        FlagMetadataValue::Int(2)
    );

    let tv = EvaluationContext::default().with_custom_field(
        "device",
        EvaluationContextFieldValue::new_struct(StructValue::default().with_field("kind", "tv")),
    );
    assert_eq!(
        flags
            .get_string_value("theme", Some(&tv), None)
            .await
            .unwrap(),
        "dark"
    );
    assert_eq!(
        flags.get_string_value("theme", None, None).await.unwrap(),
        "light"
    );

    let big = EvaluationContext::default().with_custom_field("seats", 80);
    assert_eq!(
        flags
            .get_int_value("page-size", Some(&big), None)
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        flags.get_int_value("page-size", None, None).await.unwrap(),
        10
    );

    let details = flags
        .get_float_details("sample-rate", None, None)
        .await
        .unwrap();
    assert_eq!(details.value, 0.25);
    assert_eq!(details.reason, Some(EvaluationReason::Static));

    let layout: StructValue = flags.get_struct_value("layout", None, None).await.unwrap();
    assert_eq!(layout.fields["columns"], Value::Int(3));
    assert_eq!(layout.fields["dense"], Value::Bool(false));
    assert_eq!(layout.fields["title"], Value::String("Grid".into()));
    assert_eq!(
        layout.fields["sizes"],
        Value::Array(vec![Value::Int(1), Value::Float(2.5)])
    );
    assert!(!layout.fields.contains_key("note"));
}

#[tokio::test]
async fn failures_become_openfeature_errors() {
    let (_dir, _path, client) = crate::client_for(FLAGS);
    let provider = SluiceProvider::new(client);
    let anonymous = EvaluationContext::default();

    let error = provider
        .resolve_bool_value("missing", &anonymous)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::FlagNotFound);
    assert!(error.message.unwrap().contains("missing"));

    let keyed = EvaluationContext::default().with_targeting_key("dee");
    let error = provider
        .resolve_int_value("checkout", &keyed)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch);
    let error = provider
        .resolve_int_value("sample-rate", &anonymous)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch);
    let error = provider
        .resolve_struct_value("theme", &anonymous)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TypeMismatch);

    let error = provider
        .resolve_bool_value("checkout", &anonymous)
        .await
        .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::TargetingKeyMissing);

    // A disabled flag with no off variant serves nothing: the caller's default applies.
    let error = provider
        .resolve_bool_value("retired", &anonymous)
        .await
        .unwrap_err();
    assert!(
        matches!(error.code, EvaluationErrorCode::General(_)),
        "{error:?}"
    );

    // Integers resolve as floats too.
    let details = provider
        .resolve_float_value("page-size", &anonymous)
        .await
        .unwrap();
    assert_eq!(details.value, 10.0);
}

#[tokio::test]
async fn overrides_are_marked_in_flag_metadata() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.yaml");
    std::fs::write(&path, FLAGS).unwrap();
    let client = Client::file_builder(&path)
        .env_vars([("SLUICE_FLAG_THEME", "dark")])
        .watch(false)
        .build()
        .unwrap();
    let provider = SluiceProvider::new(client);
    let details = provider
        .resolve_string_value("theme", &EvaluationContext::default())
        .await
        .unwrap();
    assert_eq!(details.value, "dark");
    assert_eq!(details.reason, Some(EvaluationReason::Static));
    let metadata = details.flag_metadata.unwrap();
    assert_eq!(
        metadata.values["sluice.overridden"],
        FlagMetadataValue::Bool(true)
    );
}
