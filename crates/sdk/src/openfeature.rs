//! An OpenFeature provider over a [`Client`], for applications that code against OpenFeature.
//!
//! The provider translates, and nothing more: OpenFeature's evaluation context becomes a
//! Sluice [`Context`], and Sluice's evaluation becomes OpenFeature's resolution details. The
//! one mismatch is defaults. Sluice's accessors take the caller's default and serve it on any
//! failure; an OpenFeature provider is never told the default, so every case where Sluice
//! would serve it (an error, or a disabled flag with no off variant) becomes an
//! [`EvaluationError`], and OpenFeature's client falls back to the caller's default.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use open_feature::{EvaluationContext, OpenFeature};
//! use sluice::openfeature::SluiceProvider;
//!
//! let client = sluice::Client::from_file("flags.yaml")?;
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(SluiceProvider::new(client)).await;
//! let flags = api.create_client();
//! let context = EvaluationContext::default().with_targeting_key("user-1");
//! let enabled = flags
//!     .get_bool_value("new-checkout", Some(&context), None)
//!     .await
//!     .unwrap_or(false);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, FlagMetadataValue, StructValue,
};
use serde_json::{Map, Number, Value};
use sluice_core::{Context, Reason, TARGETING_KEY};

use crate::{Client, Details, ErrorCode, Status};

/// A Sluice [`Client`] as an OpenFeature provider.
///
/// Flag metadata carries the flag's own metadata (scalar values only), plus, when they
/// apply, `sluice.rule` (the deciding rule's name, or its index), `sluice.segment`,
/// `sluice.prerequisite` and `sluice.overridden` (`true` when a `SLUICE_FLAG_*` variable
/// forced the variant).
#[derive(Debug, Clone)]
pub struct SluiceProvider {
    client: Client,
    metadata: ProviderMetadata,
}

impl SluiceProvider {
    /// A provider that evaluates through `client`.
    pub fn new(client: Client) -> SluiceProvider {
        SluiceProvider {
            client,
            metadata: ProviderMetadata::new("sluice"),
        }
    }

    /// The client behind the provider.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[open_feature::async_trait]
impl FeatureProvider for SluiceProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        match self.client.status() {
            Status::NotReady => ProviderStatus::NotReady,
            Status::Ready => ProviderStatus::Ready,
            Status::Stale => ProviderStatus::STALE,
            Status::Error => ProviderStatus::Error,
        }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let context = to_context(evaluation_context);
        resolution(self.client.bool_details(flag_key, &context, false))
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        let context = to_context(evaluation_context);
        resolution(self.client.integer_details(flag_key, &context, 0))
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        let context = to_context(evaluation_context);
        resolution(self.client.number_details(flag_key, &context, 0.0))
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        let context = to_context(evaluation_context);
        resolution(self.client.string_details(flag_key, &context, ""))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        evaluation_context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        let context = to_context(evaluation_context);
        let details = self
            .client
            .json_details(flag_key, &context, Value::Object(Map::new()));
        let Details { value, .. } = &details;
        let structure = match value {
            Value::Object(fields) => to_struct(fields),
            _ => StructValue::default(),
        };
        resolution(details).map(|resolved| ResolutionDetails {
            value: structure,
            variant: resolved.variant,
            reason: resolved.reason,
            flag_metadata: resolved.flag_metadata,
        })
    }
}

/// Turns Sluice's details into OpenFeature's, or into an error whenever the caller's default
/// would be served.
fn resolution<T>(details: Details<T>) -> EvaluationResult<ResolutionDetails<T>> {
    if let Some(code) = details.error {
        let message = details
            .error_message
            .unwrap_or_else(|| code.as_str().to_owned());
        let code = match code {
            ErrorCode::ProviderNotReady => EvaluationErrorCode::ProviderNotReady,
            ErrorCode::FlagNotFound => EvaluationErrorCode::FlagNotFound,
            ErrorCode::TypeMismatch => EvaluationErrorCode::TypeMismatch,
            ErrorCode::ParseError => EvaluationErrorCode::ParseError,
            ErrorCode::TargetingKeyMissing => EvaluationErrorCode::TargetingKeyMissing,
            ErrorCode::InvalidContext => EvaluationErrorCode::InvalidContext,
            _ => EvaluationErrorCode::General(message.clone()),
        };
        return Err(EvaluationError {
            code,
            message: Some(message),
        });
    }
    if details.variant.is_none() {
        // Served nothing without an error: a disabled flag without an off variant.
        return Err(EvaluationError {
            code: EvaluationErrorCode::General(format!(
                "flag `{}` is {} and serves no variant; the caller's default applies",
                details.flag,
                details.reason.as_str()
            )),
            message: Some(format!(
                "flag `{}` serves no variant ({})",
                details.flag,
                details.reason.as_str()
            )),
        });
    }
    let flag_metadata = flag_metadata(&details);
    Ok(ResolutionDetails {
        value: details.value,
        variant: details.variant,
        reason: Some(reason(details.reason)),
        flag_metadata: Some(flag_metadata),
    })
}

fn reason(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Static => EvaluationReason::Static,
        Reason::TargetingMatch => EvaluationReason::TargetingMatch,
        Reason::Split => EvaluationReason::Split,
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::Default => EvaluationReason::Default,
        Reason::Error => EvaluationReason::Error,
    }
}

fn flag_metadata<T>(details: &Details<T>) -> FlagMetadata {
    let mut metadata = FlagMetadata::default();
    for (key, value) in &details.metadata {
        let scalar = match value {
            Value::Bool(flag) => FlagMetadataValue::Bool(*flag),
            Value::String(text) => FlagMetadataValue::String(text.clone()),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => FlagMetadataValue::Int(integer),
                None => FlagMetadataValue::Float(number.as_f64().unwrap_or(f64::NAN)),
            },
            Value::Null | Value::Array(_) | Value::Object(_) => continue,
        };
        metadata.add_value(key.clone(), scalar);
    }
    if let Some(rule) = &details.rule {
        match &rule.name {
            Some(name) => metadata.add_value("sluice.rule", name.clone()),
            None => {
                metadata.add_value("sluice.rule", i64::try_from(rule.index).unwrap_or(i64::MAX))
            }
        }
    }
    if let Some(segment) = &details.segment {
        metadata.add_value("sluice.segment", segment.clone());
    }
    if let Some(prerequisite) = &details.prerequisite {
        metadata.add_value("sluice.prerequisite", prerequisite.clone());
    }
    if details.overridden {
        metadata.add_value("sluice.overridden", true);
    }
    metadata
}

/// OpenFeature's evaluation context as a Sluice context: the targeting key under
/// `targetingKey`, and each field as JSON.
///
/// Date-times become Unix seconds, which the `before` and `after` operators read. Structures
/// are `Arc<dyn Any>` in OpenFeature's Rust SDK, so only those whose type is known here are
/// kept: `serde_json::Value`, a `serde_json::Map`, OpenFeature's `StructValue` and `Value`, a
/// map of [`EvaluationContextFieldValue`]s, or a Sluice [`Context`]. Others, and non-finite
/// floats, are left out, so rules see them as missing.
pub fn to_context(context: &EvaluationContext) -> Context {
    let mut attributes = Map::new();
    for (name, field) in &context.custom_fields {
        if let Some(value) = field_to_json(field) {
            attributes.insert(name.clone(), value);
        }
    }
    if let Some(key) = &context.targeting_key {
        attributes.insert(TARGETING_KEY.to_owned(), Value::String(key.clone()));
    }
    Context::from_value(Value::Object(attributes)).unwrap_or_default()
}

fn field_to_json(field: &EvaluationContextFieldValue) -> Option<Value> {
    match field {
        EvaluationContextFieldValue::Bool(flag) => Some(Value::Bool(*flag)),
        EvaluationContextFieldValue::Int(integer) => Some(Value::from(*integer)),
        EvaluationContextFieldValue::Float(float) => Number::from_f64(*float).map(Value::Number),
        EvaluationContextFieldValue::String(text) => Some(Value::String(text.clone())),
        EvaluationContextFieldValue::DateTime(time) => {
            let nanos = time.unix_timestamp_nanos();
            if nanos % 1_000_000_000 == 0 {
                Some(Value::from(time.unix_timestamp()))
            } else {
                Number::from_f64(nanos as f64 / 1e9).map(Value::Number)
            }
        }
        EvaluationContextFieldValue::Struct(any) => struct_to_json(any),
    }
}

fn struct_to_json(any: &Arc<dyn std::any::Any + Send + Sync>) -> Option<Value> {
    let any = any.as_ref();
    if let Some(value) = any.downcast_ref::<Value>() {
        return Some(value.clone());
    }
    if let Some(map) = any.downcast_ref::<Map<String, Value>>() {
        return Some(Value::Object(map.clone()));
    }
    if let Some(structure) = any.downcast_ref::<StructValue>() {
        return Some(struct_value_to_json(structure));
    }
    if let Some(value) = any.downcast_ref::<open_feature::Value>() {
        return of_value_to_json(value);
    }
    if let Some(fields) = any.downcast_ref::<HashMap<String, EvaluationContextFieldValue>>() {
        let object = fields
            .iter()
            .filter_map(|(name, field)| Some((name.clone(), field_to_json(field)?)))
            .collect();
        return Some(Value::Object(object));
    }
    if let Some(context) = any.downcast_ref::<Context>() {
        return Some(Value::Object(context.attributes().clone()));
    }
    None
}

fn struct_value_to_json(structure: &StructValue) -> Value {
    let object = structure
        .fields
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), of_value_to_json(value)?)))
        .collect();
    Value::Object(object)
}

fn of_value_to_json(value: &open_feature::Value) -> Option<Value> {
    match value {
        open_feature::Value::Bool(flag) => Some(Value::Bool(*flag)),
        open_feature::Value::Int(integer) => Some(Value::from(*integer)),
        open_feature::Value::Float(float) => Number::from_f64(*float).map(Value::Number),
        open_feature::Value::String(text) => Some(Value::String(text.clone())),
        open_feature::Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(of_value_to_json).collect(),
        )),
        open_feature::Value::Struct(structure) => Some(struct_value_to_json(structure)),
    }
}

/// A JSON object as OpenFeature's structure. OpenFeature has no null: null fields and array
/// items are left out.
pub fn to_struct(object: &Map<String, Value>) -> StructValue {
    let mut structure = StructValue::default();
    for (name, value) in object {
        if let Some(value) = json_to_of_value(value) {
            structure.add_field(name.clone(), value);
        }
    }
    structure
}

fn json_to_of_value(value: &Value) -> Option<open_feature::Value> {
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(open_feature::Value::Bool(*flag)),
        Value::Number(number) => Some(match number.as_i64() {
            Some(integer) => open_feature::Value::Int(integer),
            None => open_feature::Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(text) => Some(open_feature::Value::String(text.clone())),
        Value::Array(items) => Some(open_feature::Value::Array(
            items.iter().filter_map(json_to_of_value).collect(),
        )),
        Value::Object(fields) => Some(open_feature::Value::Struct(to_struct(fields))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contexts_carry_the_key_fields_and_known_structures() {
        let context = EvaluationContext::default()
            .with_targeting_key("user-1")
            .with_custom_field("plan", "pro")
            .with_custom_field("seats", 12)
            .with_custom_field("ratio", 0.5)
            .with_custom_field("beta", true)
            .with_custom_field("nan", f64::NAN)
            .with_custom_field(
                "app",
                EvaluationContextFieldValue::new_struct(json!({ "version": "5.3.0" })),
            )
            .with_custom_field(
                "device",
                EvaluationContextFieldValue::new_struct(
                    StructValue::default()
                        .with_field("kind", "tv")
                        .with_field("width", 1920),
                ),
            )
            .with_custom_field("opaque", EvaluationContextFieldValue::new_struct(42_u8))
            .with_custom_field(
                "at",
                EvaluationContextFieldValue::DateTime(time_from_unix(1_780_000_000)),
            );
        let context = to_context(&context);
        assert_eq!(
            Value::Object(context.attributes().clone()),
            json!({
                "targetingKey": "user-1",
                "plan": "pro",
                "seats": 12,
                "ratio": 0.5,
                "beta": true,
                "app": { "version": "5.3.0" },
                "device": { "kind": "tv", "width": 1920 },
                "at": 1_780_000_000,
            })
        );
    }

    fn time_from_unix(seconds: i64) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn objects_become_structures_without_nulls() {
        let object =
            json!({ "a": 1, "b": 2.5, "c": null, "d": [1, null, "x"], "e": { "f": true } });
        let structure = to_struct(object.as_object().unwrap());
        assert_eq!(structure.fields.len(), 4);
        assert_eq!(structure.fields["a"], open_feature::Value::Int(1));
        assert_eq!(structure.fields["b"], open_feature::Value::Float(2.5));
        assert_eq!(
            structure.fields["d"],
            open_feature::Value::Array(vec![
                open_feature::Value::Int(1),
                open_feature::Value::String("x".into())
            ])
        );
    }
}
