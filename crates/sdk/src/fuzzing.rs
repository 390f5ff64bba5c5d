//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature). Not a public API.

use crate::server::sse::{Event, Parser};

/// Feeds `data` to the live stream's event parser twice, whole and in chunks whose sizes
/// come from `splits`, and panics unless both give the same events or both fail.
pub fn sse(data: &[u8], splits: &[u8]) {
    const LIMIT: usize = 4096;
    let whole = parse(data, &[data.len()], LIMIT);
    let mut sizes: Vec<usize> = splits.iter().map(|&size| usize::from(size) + 1).collect();
    sizes.push(data.len());
    let chunked = parse(data, &sizes, LIMIT);
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "chunking changed the events"),
        (Err(_), Err(_)) => {}
        _ => panic!("chunking changed the outcome: {whole:?} vs {chunked:?}"),
    }
    if let Ok(events) = whole {
        for event in events {
            assert!(event.data.len() <= LIMIT && event.event.len() <= LIMIT);
        }
    }
}

fn parse(mut data: &[u8], sizes: &[usize], limit: usize) -> Result<Vec<Event>, String> {
    let mut parser = Parser::new(limit);
    let mut events = Vec::new();
    for &size in sizes {
        if data.is_empty() {
            break;
        }
        let (chunk, rest) = data.split_at(size.min(data.len()));
        parser.feed(chunk, &mut events).map_err(|e| e.to_string())?;
        data = rest;
    }
    Ok(events)
}
