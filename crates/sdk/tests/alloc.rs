//! The SDK's typed accessors make no heap allocation per evaluation on the success path,
//! with telemetry on or off, in file mode and in server mode: counting an exposure and noting
//! the active variant allocate nothing, and neither does recording an error against it.
//! (Error paths, such as an unknown flag, may allocate their message, as in core.)
//!
//! Allocations are counted per thread by a global allocator, so the in-process server and
//! the client's own thread, which allocate freely, do not disturb the count.

// `GlobalAlloc` is an unsafe trait, and implementing it is the only way to count allocations.
// The implementation below only forwards to the system allocator; nothing else here is unsafe.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "it/harness.rs"]
mod harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use serde_json::json;
use sluice::{Client, Context, ContextBuilder};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only a const-initialised thread-local `Cell`,
// which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `alloc`'s contract, which is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` came from this allocator, which is `System`; the rest is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// A static flag and one with a segment, a semver condition and a 10% split.
fn flags() -> serde_json::Value {
    json!({
        "segments": {
            "staff": {"when": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}]}
        },
        "flags": {
            "static": {"type": "boolean", "variants": {"on": true, "off": false}, "default_variant": "on"},
            "targeted": {
                "type": "boolean",
                "variants": {"on": true, "off": false},
                "default_variant": "off",
                "rules": [{
                    "when": [
                        {"segment": "staff"},
                        {"attribute": "app.version", "op": "semver_lt", "value": "2.0.0"}
                    ],
                    "split": [{"variant": "on", "weight": 10000}, {"variant": "off", "weight": 90000}]
                }]
            },
            "ratio": {"type": "number", "variants": {"low": 0.1, "high": 0.9}, "default_variant": "high"}
        }
    })
}

fn contexts() -> Vec<Context> {
    (0..100)
        .map(|i| {
            let email = if i % 3 == 0 {
                "x@elsewhere.org"
            } else {
                "x@example.com"
            };
            ContextBuilder::new(format!("user-{i}"))
                .attr("email", email)
                .attr("app", json!({"version": "1.4.2"}))
                .build()
        })
        .collect()
}

/// Evaluates 10,000 times and returns the allocations made, after a warm-up that fills this
/// thread's caches.
fn evaluate(client: &Client, contexts: &[Context]) -> (usize, u64) {
    let mut on = 0;
    for context in contexts {
        on += u64::from(client.bool("targeted", context, false));
    }
    let before = allocations();
    for round in 0..100 {
        for context in contexts {
            on += u64::from(client.bool("static", context, false));
            on += u64::from(client.bool("targeted", context, false));
            on += u64::from(client.number("ratio", context, 0.5) > 0.5);
            if round % 10 == 0 {
                client.record_error("targeted");
            }
        }
    }
    (allocations() - before, on)
}

#[test]
fn typed_evaluation_does_not_allocate() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("flags.json");
    std::fs::write(&path, flags().to_string()).unwrap();
    let file = Client::file_builder(&path)
        .env_vars(Vec::<(String, String)>::new())
        .watch(false)
        .build()
        .unwrap();

    let server = harness::TestServer::start();
    let (status, body) = server.import(&flags());
    assert!(status.is_success(), "{body}");
    let (_, token) = server.server_token("production");
    let build = |telemetry: bool| {
        Client::builder()
            .server(server.url())
            .token(&token)
            .env_vars(Vec::<(String, String)>::new())
            .telemetry(telemetry)
            .build()
            .unwrap()
    };
    let with_telemetry = build(true);
    let without_telemetry = build(false);
    with_telemetry.wait_ready(Duration::from_secs(10)).unwrap();
    without_telemetry
        .wait_ready(Duration::from_secs(10))
        .unwrap();

    let contexts = contexts();
    for (name, client) in [
        ("file", &file),
        ("server, telemetry", &with_telemetry),
        ("server, no telemetry", &without_telemetry),
    ] {
        let (allocated, on) = evaluate(client, &contexts);
        assert_eq!(allocated, 0, "{name}: {allocated} allocations");
        // Static and ratio serve every time: the work was done.
        assert!(on >= 20_000, "{name}: {on}");
    }
    // The exposures were counted all the same.
    assert!(with_telemetry.flush_telemetry(Duration::from_secs(10)));
    let (_, metrics) = server.get("/api/v1/flags/static/metrics?env=production");
    assert_eq!(metrics["totals"]["on"]["exposures"], 10_000, "{metrics}");
}
