//! JMAP push over EventSource (RFC 8620 §7.3): the stream is read by a task that turns its
//! events into wake-ups. Push is only ever a wake-up — every wake runs the same
//! `Email/changes` from the cursor — so a frame lost here costs latency, never mail.

use tokio::sync::mpsc;

use crate::domain::ports::PushEvent;

/// Wake-ups buffered between the stream and the watcher: a burst beyond this is one wake
/// anyway.
const CHANNEL: usize = 16;

/// The longest event we hold while waiting for its end; a server sending more is not an
/// EventSource (the stream is then dropped and reopened).
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// One server-sent event: its type (`message` when unnamed) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// An incremental `text/event-stream` parser (the WHATWG rules we need: `event`, `data`,
/// comments, CRLF/LF/CR line ends, a blank line dispatching).
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: String,
    data: Vec<String>,
    /// The previous chunk ended in CR: a LF starting this one belongs to it.
    after_cr: bool,
}

/// The stream sent something that is no event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized;

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    ///
    /// # Errors
    /// [`Oversized`] when one line grows past the limit.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, Oversized> {
        let mut events = Vec::new();
        let mut bytes = chunk;
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while let Some(end) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.pending.extend_from_slice(&bytes[..end]);
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
            if bytes[end] == b'\r' && end + 1 == bytes.len() {
                self.after_cr = true;
            }
            bytes = &bytes[end + if crlf { 2 } else { 1 }..];
        }
        self.pending.extend_from_slice(bytes);
        let held = self.pending.len() + self.data.iter().map(String::len).sum::<usize>();
        if held > MAX_EVENT_BYTES {
            return Err(Oversized);
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return None;
            }
            let event = std::mem::take(&mut self.event);
            return Some(SseEvent {
                event: if event.is_empty() {
                    "message".to_owned()
                } else {
                    event
                },
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// What one event means for the watcher: a state change is a wake, a ping only says the
/// stream is alive; anything else is ignored.
fn wake_of(event: &SseEvent) -> Option<PushEvent> {
    match event.event.as_str() {
        "state" => Some(PushEvent::Changed),
        "ping" => Some(PushEvent::Ping),
        _ => None,
    }
}

/// Reads `response` in a task and sends its wake-ups; the channel closes when the stream
/// ends, fails or turns out not to be an event stream, and the task stops as soon as the
/// receiver is dropped.
pub fn pump(mut response: reqwest::Response) -> mpsc::Receiver<PushEvent> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::select! {
                () = tx.closed() => return,
                chunk = response.chunk() => chunk,
            };
            let Ok(Some(chunk)) = chunk else { return };
            let Ok(events) = parser.feed(&chunk) else {
                tracing::info!("push stream sent an oversized event; reopening");
                return;
            };
            for wake in events.iter().filter_map(wake_of) {
                // Full means wakes are already queued: this one adds nothing.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(wake) {
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        chunks.iter().flat_map(|c| p.feed(c).unwrap()).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_across_chunks_and_line_ends() {
        let state = r#"{"@type":"StateChange","changed":{"u1":{"Email":"s2"}}}"#;
        assert_eq!(
            all(&[
                b"event: state\r\nda",
                format!("ta: {state}\r\n\r").as_bytes(),
                b"\n: a comment\n\nevent: ping\ndata: {\"interval\":30}\n\n",
                b"event:state\rdata:a\rdata:b\r\r",
            ]),
            vec![
                ev("state", state),
                ev("ping", "{\"interval\":30}"),
                ev("state", "a\nb"),
            ]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_unknown_fields_are_ignored() {
        assert_eq!(
            all(&[b"event: state\n\nid: 7\nretry: 10\ndata: x\n\n"]),
            vec![ev("message", "x")]
        );
    }

    #[test]
    fn a_stream_that_never_ends_a_line_is_refused() {
        let mut p = SseParser::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.feed(&big), Err(Oversized));
    }

    #[test]
    fn only_states_wake_and_pings_keep_alive() {
        assert_eq!(wake_of(&ev("state", "{}")), Some(PushEvent::Changed));
        assert_eq!(wake_of(&ev("ping", "{}")), Some(PushEvent::Ping));
        assert_eq!(wake_of(&ev("message", "{}")), None);
    }
}
