//! Building an evaluation context: a targeting key plus attributes.
//!
//! The context type itself is core's [`Context`], re-exported, so a context built here is the
//! one the engine reads, with no conversion. This builder is a convenience over
//! `Context::with_key(..).set(..)`, which works just as well.

use serde_json::Value;
use sluice_core::Context;

/// Builds a [`Context`].
///
/// ```
/// use sluice::ContextBuilder;
/// use serde_json::json;
///
/// let context = ContextBuilder::new("user-1")
///     .attr("plan", "pro")
///     .attr("app", json!({ "version": "5.3.0" }))
///     .build();
/// assert_eq!(context.targeting_key(), Some("user-1"));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ContextBuilder {
    context: Context,
}

impl ContextBuilder {
    /// A context for the subject with this targeting key, usually a user or session id.
    pub fn new(targeting_key: impl Into<String>) -> ContextBuilder {
        ContextBuilder {
            context: Context::with_key(targeting_key),
        }
    }

    /// A context with no targeting key. Rules still match its attributes, but splits by
    /// targeting key serve the caller's default with `TARGETING_KEY_MISSING`.
    pub fn anonymous() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// Sets an attribute, replacing any earlier value. Objects nest: rules reach into them
    /// with dotted paths such as `app.version`.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> ContextBuilder {
        self.context = self.context.set(name, value);
        self
    }

    /// Sets the evaluation time in Unix seconds, for flagd rules that read `$flagd.timestamp`.
    pub fn at(mut self, unix_seconds: i64) -> ContextBuilder {
        self.context = self.context.at(unix_seconds);
        self
    }

    /// The context.
    pub fn build(self) -> Context {
        self.context
    }
}

impl From<ContextBuilder> for Context {
    fn from(builder: ContextBuilder) -> Context {
        builder.build()
    }
}
