//! Property tests: no flag key, context or override makes evaluation panic.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value};
use sluice::{Client, Context};

use crate::example_flags;

fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::file_builder(example_flags())
            .environment("production")
            .env_vars(Vec::<(String, String)>::new())
            .watch(false)
            .build()
            .unwrap()
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9@._-]{0,12}".prop_map(Value::String),
        Just(Value::String("5.2.0".into())),
        Just(Value::String("2026-12-10T00:00:00Z".into())),
        Just(Value::String("ana@shop.example".into())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(attribute_name(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The names the example's rules read, plus noise.
fn attribute_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("targetingKey".to_owned()),
        Just("email".to_owned()),
        Just("beta_opt_in".to_owned()),
        Just("country".to_owned()),
        Just("app".to_owned()),
        Just("version".to_owned()),
        Just("device".to_owned()),
        Just("screen_width".to_owned()),
        Just("kind".to_owned()),
        Just("session".to_owned()),
        Just("id".to_owned()),
        Just("now".to_owned()),
        "\\PC{0,8}",
    ]
}

fn context() -> impl Strategy<Value = Context> {
    prop::collection::btree_map(attribute_name(), json_value(), 0..8).prop_map(|map| {
        Context::from_value(Value::Object(map.into_iter().collect::<Map<_, _>>())).unwrap()
    })
}

fn flag_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("new-checkout".to_owned()),
        Just("payments-api-v2".to_owned()),
        Just("search-ranking".to_owned()),
        Just("free-shipping-threshold".to_owned()),
        Just("recommendations-widget".to_owned()),
        Just("legacy-invoice-pdf".to_owned()),
        "\\PC{0,24}",
    ]
}

proptest! {
    #[test]
    fn evaluation_never_panics(flag in flag_key(), context in context()) {
        let client = client();
        let _ = client.bool(&flag, &context, false);
        let _ = client.string(&flag, &context, "default");
        let _ = client.number(&flag, &context, 0.5);
        let _ = client.integer(&flag, &context, 3);
        let _ = client.json(&flag, &context, Value::Null);
        let details = client.details(&flag, &context);
        prop_assert_eq!(details.error.is_some(), details.reason == sluice::Reason::Error);
        let typed = client.bool_details(&flag, &context, true);
        if typed.error.is_some() {
            prop_assert!(typed.value);
        }
    }

    #[test]
    fn overrides_never_panic(
        variables in prop::collection::vec(("SLUICE_FLAG_\\PC{0,20}", "\\PC{0,10}"), 0..6),
        flag in flag_key(),
        context in context(),
    ) {
        let client = Client::file_builder(example_flags())
            .env_vars(variables)
            .watch(false)
            .build()
            .unwrap();
        let _ = client.details(&flag, &context);
        let _ = client.override_warnings();
        prop_assert!(client.overrides().len() <= 6);
    }
}
