//! Staged rules of a dry run, YAML and JSON: any text gives a staged override or errors with
//! paths, never a panic; whatever compiles against the seed flags is evaluated beside the
//! served rules and tallied, and the tally drains into a report whose counts add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::dry_run::{Tallies, compile_staged, parse_staged};
use sluice_core::{Context, Document, Format, Source};

const FLAGS: &str = r#"
segments:
  staff: { when: [{ attribute: email, op: ends_with, value: "@example.com" }] }
flags:
  theme:
    type: string
    variants: { classic: classic, modern: modern, bold: bold }
    default_variant: classic
    rules:
      - when: [{ segment: staff }]
        serve: modern
"#;

fuzz_target!(|text: &str| {
    let Ok(Document::Sluice(file)) =
        Source::parse(Some("flags"), FLAGS, Format::Yaml).map(Source::into_document)
    else {
        return;
    };
    let Ok(served) = sluice_core::compile(&file, Some("production")) else {
        return;
    };
    let contexts = [
        Context::with_key("user-1").set("email", "ada@example.com"),
        Context::with_key("user-2").set("country", "DE").set("plan", "pro"),
        Context::new(),
    ];
    let tallies = Tallies::default();
    for format in [Format::Yaml, Format::Json] {
        let Ok(staged) = parse_staged(Some("fuzz"), text, format) else {
            continue;
        };
        let Ok(engine) = compile_staged(&file, "theme", "production", &staged) else {
            continue;
        };
        let flag = tallies.staged(1, "theme", engine);
        for context in &contexts {
            flag.observe(&served.evaluate("theme", context), context, || 0);
        }
    }
    let evaluations: u64 = tallies.take().iter().map(|r| r.evaluations()).sum();
    assert!(evaluations <= 6);
});
