//! A Server-Sent Events parser: bytes in, complete events out, as the WHATWG spec reads them.
//!
//! It is incremental and owns no I/O: feed it whatever chunks the network delivers, split
//! anywhere (inside a line, between a CR and its LF, inside a UTF-8 sequence), and it yields
//! each event once its terminating blank line has arrived. Lines end in LF, CRLF or a lone CR.
//! Comment lines (`:` first), such as the server's heartbeats, produce nothing. A line or an
//! event larger than the parser's limit is an error, so a broken upstream cannot make the
//! client buffer without bound.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` field, or `message` when the event had none.
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
    /// The last `id:` seen on the stream so far, as the spec's last event ID.
    pub(crate) id: Option<String>,
}

/// A line or event grew past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge {
    pub(crate) limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an event on the stream is larger than {} bytes",
            self.limit
        )
    }
}

/// The parser's state between chunks.
#[derive(Debug)]
pub(crate) struct Parser {
    limit: usize,
    /// The current line, without its terminator.
    line: Vec<u8>,
    /// The previous chunk ended in CR, so a leading LF finishes nothing.
    after_cr: bool,
    /// Whether the byte-order mark check at the very start has been made.
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl Parser {
    /// A parser that refuses lines and events over `limit` bytes.
    pub(crate) fn new(limit: usize) -> Parser {
        Parser {
            limit,
            line: Vec::new(),
            after_cr: false,
            started: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
        }
    }

    /// Consumes `bytes`, appending every event they complete to `events`.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), TooLarge> {
        if !self.started {
            // The stream may start with a UTF-8 byte-order mark, possibly split across chunks.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let seen = self.line.len();
            let take = (BOM.len() - seen).min(bytes.len());
            if bytes[..take] == BOM[seen..seen + take] {
                if seen + take < BOM.len() {
                    self.line.extend_from_slice(&bytes[..take]);
                    return Ok(());
                }
                self.line.clear();
                bytes = &bytes[take..];
            } else {
                // Not a BOM after all: what was held back is ordinary text.
                let held = std::mem::take(&mut self.line);
                self.started = true;
                self.feed(&held, events)?;
            }
            self.started = true;
        }
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            match bytes
                .iter()
                .position(|&byte| byte == b'\n' || byte == b'\r')
            {
                Some(end) => {
                    self.push(&bytes[..end])?;
                    self.after_cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, events)?;
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.push(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), TooLarge> {
        if self.line.len() + bytes.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<Event>) -> Result<(), TooLarge> {
        if line.is_empty() {
            self.dispatch(events);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (name, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
                self.data.push_str(&value);
                self.data.push('\n');
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            // `retry` and unknown fields are ignored: the client keeps its own backoff.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        events.push(Event {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::new(LIMIT);
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut events).unwrap();
        }
        events
    }

    fn parse(text: &str) -> Vec<Event> {
        parse_chunks(&[text.as_bytes()])
    }

    fn event(kind: &str, data: &str, id: Option<&str>) -> Event {
        Event {
            event: kind.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    /// The same events whichever two places the text is cut at.
    fn check_every_split(text: &str, expected: &[Event]) {
        let bytes = text.as_bytes();
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                let chunks = [&bytes[..first], &bytes[first..second], &bytes[second..]];
                assert_eq!(
                    parse_chunks(&chunks),
                    expected,
                    "split at {first} and {second}"
                );
            }
        }
        let single_bytes: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_chunks(&single_bytes), expected, "byte by byte");
    }

    #[test]
    fn a_put_event_with_an_id() {
        let text = "event: put\nid: 7\ndata: {\"version\":7}\n\n";
        check_every_split(text, &[event("put", "{\"version\":7}", Some("7"))]);
    }

    #[test]
    fn frames_split_anywhere_give_the_same_events() {
        let text = "event: put\r\nid: 1\r\ndata: a\r\n\r\n: keep-alive\r\n\r\nevent: put\rid: 2\rdata: b\r\rdata: c\n\n";
        check_every_split(
            text,
            &[
                event("put", "a", Some("1")),
                event("put", "b", Some("2")),
                event("message", "c", Some("2")),
            ],
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let text = "data: {\ndata:  \"a\": 1\ndata\ndata: }\n\n";
        check_every_split(text, &[event("message", "{\n \"a\": 1\n\n}", None)]);
    }

    #[test]
    fn comments_and_heartbeats_produce_nothing() {
        assert_eq!(parse(":\n\n: ping\n\n:\r\n\r\n"), Vec::new());
        // A comment inside an event does not end it.
        assert_eq!(
            parse("event: put\n: ping\ndata: x\n\n"),
            vec![event("put", "x", None)]
        );
    }

    #[test]
    fn crlf_cr_and_lf_all_end_lines() {
        let expected = vec![event("put", "x", Some("3"))];
        assert_eq!(parse("event: put\r\nid: 3\r\ndata: x\r\n\r\n"), expected);
        assert_eq!(parse("event: put\rid: 3\rdata: x\r\r"), expected);
        assert_eq!(parse("event: put\nid: 3\ndata: x\n\n"), expected);
        // A CR at the end of one chunk and its LF at the start of the next are one line end.
        assert_eq!(
            parse_chunks(&[
                b"event: put\r",
                b"\nid: 3\r",
                b"\ndata: x\r",
                b"\n\r",
                b"\n"
            ]),
            expected
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_type_is_forgotten() {
        assert_eq!(
            parse("event: put\n\ndata: x\n\n"),
            vec![event("message", "x", None)]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        assert_eq!(parse("event: put\ndata: x\n"), Vec::new());
        assert_eq!(parse("event: put\ndata: x"), Vec::new());
    }

    #[test]
    fn fields_without_a_space_or_a_colon() {
        assert_eq!(
            parse("event:put\nid:9\ndata:x\n\n"),
            vec![event("put", "x", Some("9"))]
        );
        // Only one leading space is removed.
        assert_eq!(parse("data:  x\n\n"), vec![event("message", " x", None)]);
        // `data` alone is an empty data line; unknown fields and `retry` are ignored.
        assert_eq!(
            parse("retry: 10\nfoo: bar\ndata\n\n"),
            vec![event("message", "", None)]
        );
    }

    #[test]
    fn the_last_event_id_persists_and_an_id_with_nul_is_ignored() {
        assert_eq!(
            parse("id: 1\ndata: a\n\ndata: b\n\nid: 2\0\ndata: c\n\nid\ndata: d\n\n"),
            vec![
                event("message", "a", Some("1")),
                event("message", "b", Some("1")),
                event("message", "c", Some("1")),
                event("message", "d", Some("")),
            ]
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let expected = vec![event("message", "x", None)];
        assert_eq!(parse("\u{feff}data: x\n\n"), expected);
        assert_eq!(
            parse_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]),
            expected
        );
        // Something that only starts like a BOM is kept: here it spoils the field name.
        assert_eq!(parse_chunks(&[b"\xEF", b"data: x\n\n"]), Vec::new());
        assert_eq!(
            parse_chunks(&[b"\xEF\xBB", b"\ndata: x\n\n"]),
            vec![event("message", "x", None)]
        );
        // Only at the very start.
        assert_eq!(
            parse("data: x\n\n\u{feff}data: y\n\n"),
            vec![event("message", "x", None)]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            parse_chunks(&[b"data: a\xFFb\n\n"]),
            vec![event("message", "a\u{fffd}b", None)]
        );
    }

    #[test]
    fn oversized_lines_and_events_are_refused() {
        let mut parser = Parser::new(16);
        let mut events = Vec::new();
        assert_eq!(
            parser.feed(&[b'x'; 17], &mut events),
            Err(TooLarge { limit: 16 })
        );
        let mut parser = Parser::new(16);
        assert_eq!(
            parser.feed(b"data: 12345678\ndata: 12345678\n", &mut events),
            Err(TooLarge { limit: 16 })
        );
        assert!(events.is_empty());
    }
}
