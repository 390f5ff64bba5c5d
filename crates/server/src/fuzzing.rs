//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature). Not a public API.

use crate::http::telemetry::{Encoding, read_batch};
use crate::store::telemetry::{sketch, validate_batch};

/// Decodes a `POST /api/v1/metrics` body as the server does (gzip when `gzip`, with its cap
/// on the inflated size), validates it, and merges every latency sketch of a valid batch the
/// way the store merges them into an aggregate. Must never panic, whatever the bytes.
pub fn metrics_body(body: &[u8], gzip: bool) {
    let encoding = if gzip {
        Encoding::Gzip
    } else {
        Encoding::Identity
    };
    let Ok(batch) = read_batch(encoding, body) else {
        return;
    };
    // A clock far ahead, so that only the batch's own content decides its validity.
    if validate_batch(&batch, i64::MAX / 4).is_err() {
        return;
    }
    let mut merged = None;
    for latency in batch.buckets.iter().filter_map(|b| b.latency.as_ref()) {
        match &mut merged {
            None => merged = Some(latency.clone()),
            Some(into) => {
                let _ = sketch::merge(into, latency);
            }
        }
    }
}
