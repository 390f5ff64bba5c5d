//! OpenFeature: evaluate Sluice flags through the OpenFeature API.
//!
//! Run it with `cargo run -p sluice --example openfeature`. Application code depends only on
//! OpenFeature's client; `SluiceProvider` plugs a Sluice client in behind it.

use open_feature::{EvaluationContext, EvaluationContextFieldValue, OpenFeature, StructValue};
use serde_json::json;
use sluice::openfeature::SluiceProvider;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/flags.yaml");
    let client = sluice::Client::file_builder(path)
        .environment("production")
        .build()?;

    let flags = {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_provider(SluiceProvider::new(client)).await;
        api.create_client()
    };

    let context = EvaluationContext::default()
        .with_targeting_key("ana")
        .with_custom_field("email", "ana@shop.example")
        .with_custom_field("country", "DE")
        .with_custom_field(
            "device",
            EvaluationContextFieldValue::new_struct(
                json!({ "kind": "desktop", "screen_width": 1920 }),
            ),
        );

    // OpenFeature reports failures as errors; the caller supplies the default.
    match flags
        .get_bool_details("new-checkout", Some(&context), None)
        .await
    {
        Ok(details) => println!(
            "new-checkout = {} ({:?}, variant {:?}, ticket {:?})",
            details.value,
            details.reason,
            details.variant,
            details.flag_metadata.values.get("ticket"),
        ),
        Err(error) => println!("new-checkout failed: {error:?}"),
    }

    let ranking = flags
        .get_string_value("search-ranking", Some(&context), None)
        .await
        .unwrap_or_else(|_| "bm25".to_owned());
    println!("search-ranking = {ranking}");

    let threshold = flags
        .get_float_value("free-shipping-threshold", Some(&context), None)
        .await
        .unwrap_or(49.0);
    println!("free-shipping-threshold = {threshold}");

    let widget: StructValue = flags
        .get_struct_value("recommendations-widget", Some(&context), None)
        .await
        .unwrap_or_default();
    println!(
        "recommendations-widget layout = {:?}",
        widget.fields.get("layout")
    );

    // Errors leave the default to the caller.
    let missing = flags
        .get_bool_value("no-such-flag", Some(&context), None)
        .await
        .unwrap_or(false);
    println!("no-such-flag = {missing} (the caller's default)");
    Ok(())
}
