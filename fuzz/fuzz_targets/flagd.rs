//! flagd documents and their JSON Logic targeting: the input is the `targeting` of a flag
//! (and, when it is an object with `$evaluators`, shared evaluators too), evaluated for a
//! few contexts. Nothing may panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sluice_core::{Context, Format, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(targeting) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let document = json!({
        "$evaluators": {"shared": targeting.clone()},
        "flags": {
            "f": {
                "state": "ENABLED",
                "variants": {"a": "a", "b": "b", "c": "c"},
                "defaultVariant": "a",
                "targeting": targeting,
            },
            "g": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "shared"}, "on", "off"]},
            },
        },
    });
    let Ok(source) = Source::parse(Some("fuzz.flagd.json"), &document.to_string(), Format::Json)
    else {
        return;
    };
    let Ok(engine) = source.compile(None) else {
        return;
    };
    let contexts = [
        Context::with_key("user-1"),
        Context::with_key("user-2")
            .set("email", "ada@example.com")
            .set("version", "1.2.3")
            .set("n", 7),
        Context::new(),
    ];
    for context in &contexts {
        for evaluation in engine.evaluate_all(context) {
            std::hint::black_box(evaluation);
        }
    }
});
