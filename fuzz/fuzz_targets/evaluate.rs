//! The evaluator with arbitrary contexts: every flag of the example file, every accessor,
//! for a context made of the input. Evaluation never fails and never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sluice_core::{Context, Engine, Format, Source};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let text = include_str!("../../examples/flags.yaml");
        match Source::parse(Some("flags.yaml"), text, Format::Yaml)
            .and_then(|source| source.compile(Some("production")))
        {
            Ok(engine) => engine,
            Err(errors) => panic!("the example flags do not compile: {errors}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(context) = Context::from_value(value) else {
        return;
    };
    let engine = engine();
    for evaluation in engine.evaluate_all(&context) {
        std::hint::black_box(evaluation);
    }
    for key in engine.keys() {
        std::hint::black_box(engine.boolean(key, &context, false));
        std::hint::black_box(engine.string(key, &context, "x"));
        std::hint::black_box(engine.number(key, &context, 0.5));
        std::hint::black_box(engine.evaluate(key, &context));
    }
});
