//! The flag file parser and compiler, YAML and JSON: any text gives flags or errors with
//! paths, never a panic; whatever compiles evaluates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::{Context, Format, Source};

fuzz_target!(|text: &str| {
    let context = Context::with_key("user-1").set("email", "ada@example.com");
    for format in [Format::Yaml, Format::Json] {
        let Ok(source) = Source::parse(Some("fuzz"), text, format) else {
            continue;
        };
        for environment in [None, Some("production"), Some("staging")] {
            if let Ok(engine) = source.compile(environment) {
                for evaluation in engine.evaluate_all(&context) {
                    std::hint::black_box(evaluation);
                }
            }
        }
    }
});
