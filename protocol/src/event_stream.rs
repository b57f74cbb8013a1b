//! An incremental parser of `text/event-stream` bodies (the Server-Sent Events wire format): one
//! for every consumer in the workspace (the conformance runner and recorder, the load generator,
//! the server's tests). No I/O: feed it bytes as they arrive, get whole events out.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` name, `message` when absent.
    pub event: String,
    /// The `id:` of the event, if it had one.
    pub id: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Feeds bytes in, gets whole events out.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Adds bytes and returns every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A `\r\n` pair counts as one line end; a lone `\r` at the end may be half of one.
            if self.buf[pos] == b'\r' && pos + 1 == self.buf.len() {
                break;
            }
            let skip = if self.buf[pos] == b'\r' && self.buf.get(pos + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buf.drain(..pos + skip).take(pos).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        id: self.id.take(),
                        data: self.data.join("\n"),
                    });
                }
                self.data.clear();
                self.event = None;
                self.id = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.find(':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => self.data.push(value.to_owned()),
                "id" => self.id = Some(value.to_owned()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: connect\r\nda").is_empty());
        let evs = p.push(b"ta: {\"a\":1}\r\n\r\n: comment\n\nid: 7\ndata: x\ndata: y\n\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: "connect".into(),
                    id: None,
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "message".into(),
                    id: Some("7".into()),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
