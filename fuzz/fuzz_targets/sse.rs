//! The SDK's live-stream (server-sent events) parser: any bytes, split into any chunks, give
//! the same events as when fed whole, or the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the chunk sizes; the rest is the stream.
    let split = usize::from(data.first().copied().unwrap_or(0) % 16).min(data.len());
    let (splits, stream) = data.split_at(split);
    sluice::fuzzing::sse(stream, splits);
});
