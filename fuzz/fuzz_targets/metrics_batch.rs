//! The server's SDK telemetry decoder: a `POST /api/v1/metrics` body, plain or gzip, decoded,
//! validated and its latency sketches merged. The first byte chooses the encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    sluice_server::fuzzing::metrics_body(body, first & 1 == 1);
});
