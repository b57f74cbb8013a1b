//! A minimal WebSocket client for the load generator.
//!
//! The generator receives millions of frames a second on one core, so its own per-frame cost
//! decides how far it can push a server. A general codec pays for things this tool does not
//! need (a zero-filled read buffer per read, waker bookkeeping for a read and a write side,
//! one allocation per message). This client reads into one growing buffer without zeroing it,
//! parses frames in place and hands out borrowed text, masks what it sends as RFC 6455 requires,
//! answers pings, and refuses what a server speaking the protocol never sends (fragmented or
//! masked frames).

use std::ops::Range;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wsframe::{payload_len, push_header};

/// How much the buffer asks the kernel for per read at least.
const READ_CHUNK: usize = 8 * 1024;

/// The largest frame this client accepts.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One frame parsed out of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame; the range is its payload inside the buffer, valid until the next read.
    Text(Range<usize>),
    /// A ping; answer it with [`RawWs::answer_ping`].
    Ping(Range<usize>),
    /// Pong or binary: ignored.
    Other,
    /// The server's close frame.
    Close,
}

/// A WebSocket client connection over a plain TCP stream.
pub struct RawWs {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the next unparsed byte starts.
    start: usize,
    mask_seed: u32,
}

impl RawWs {
    /// Performs the opening handshake on `stream` for `host` and path `/`.
    pub async fn connect(mut stream: TcpStream, host: &str) -> Result<RawWs> {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: aGVyYWxkLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1024);
        let head_end = loop {
            if buf.len() > 16 * 1024 {
                bail!("handshake answer too long");
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("closed during the handshake");
            }
            if let Some(at) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
        };
        let status = std::str::from_utf8(&buf[..head_end]).context("handshake answer")?;
        let first = status.lines().next().unwrap_or_default();
        if !first.starts_with("HTTP/1.1 101") {
            bail!("handshake refused: {first}");
        }
        let accept = status.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-accept")
                .then(|| value.trim().to_owned())
        });
        // base64(SHA-1(key + GUID)) for the fixed key above.
        if accept.as_deref() != Some(EXPECTED_ACCEPT) {
            bail!("handshake answer has a wrong Sec-WebSocket-Accept: {accept:?}");
        }
        Ok(RawWs {
            stream,
            buf,
            start: head_end,
            mask_seed: 0x9e37_79b9,
        })
    }

    /// The payload bytes of a frame returned by [`RawWs::parse`].
    #[cfg(test)]
    pub fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// The text of a frame returned by [`RawWs::parse`] (invalid UTF-8 reads as empty).
    pub fn text(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(&self.buf[range]).unwrap_or_default()
    }

    /// The next complete frame already buffered, if any.
    pub fn parse(&mut self) -> Result<Option<Frame>> {
        let avail = &self.buf[self.start..];
        if avail.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (avail[0], avail[1]);
        if b0 & 0x80 == 0 {
            bail!("fragmented frame (this client does not reassemble)");
        }
        if b1 & 0x80 != 0 {
            bail!("masked frame from the server");
        }
        let Some((len, header)) = payload_len(avail) else {
            return Ok(None);
        };
        if len > MAX_FRAME {
            bail!("frame of {len} bytes");
        }
        if avail.len() < header + len {
            return Ok(None);
        }
        let payload = self.start + header..self.start + header + len;
        self.start += header + len;
        Ok(Some(match b0 & 0x0f {
            0x1 => Frame::Text(payload),
            0x8 => Frame::Close,
            0x9 => Frame::Ping(payload),
            _ => Frame::Other,
        }))
    }

    /// The next text frame, reading and answering pings as needed; `None` once the server
    /// closes. For the setup phases; the run loop parses what is buffered itself so that it can
    /// wait for bytes and its send timer at once.
    pub async fn next_text(&mut self) -> Result<Option<Range<usize>>> {
        loop {
            match self.parse()? {
                Some(Frame::Text(r)) => return Ok(Some(r)),
                Some(Frame::Ping(r)) => self.answer_ping(r).await?,
                Some(Frame::Close) => return Ok(None),
                Some(Frame::Other) => {}
                None => {
                    if !self.fill().await? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Reads more bytes from the socket (after the buffered frames were consumed). Returns false
    /// at the end of the stream.
    pub async fn fill(&mut self) -> Result<bool> {
        if self.start > 0 {
            // Keep only the unparsed tail; usually nothing, so this is a cheap truncate.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// Sends a masked text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.send(0x1, text.as_bytes()).await
    }

    /// Answers a ping whose payload is `range`.
    pub async fn answer_ping(&mut self, range: Range<usize>) -> Result<()> {
        let payload = self.buf[range].to_vec();
        self.send(0xA, &payload).await
    }

    /// Sends a close frame (code 1000) and stops writing.
    pub async fn close(&mut self) -> Result<()> {
        self.send(0x8, &1000u16.to_be_bytes()).await?;
        self.stream.shutdown().await?;
        Ok(())
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        // xorshift: masks only need to vary, not to be secret, for a load generator.
        self.mask_seed ^= self.mask_seed << 13;
        self.mask_seed ^= self.mask_seed >> 17;
        self.mask_seed ^= self.mask_seed << 5;
        let mask = self.mask_seed.to_be_bytes();
        let mut out = Vec::with_capacity(payload.len() + 14);
        push_header(&mut out, opcode, payload.len(), true);
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out).await?;
        Ok(())
    }
}

/// The accept value for the fixed key `aGVyYWxkLWJlbmNoLWtleQ==`.
const EXPECTED_ACCEPT: &str = "1MF1XBEsIPqesilv0PVEoYLx78I=";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_accept_matches_the_key() {
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
            b"aGVyYWxkLWJlbmNoLWtleQ==",
        );
        assert_eq!(accept, EXPECTED_ACCEPT);
    }

    /// A server side made with tungstenite: what this client sends must parse there, and what
    /// it sends back must parse here.
    #[tokio::test]
    async fn talks_to_a_real_websocket_server() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(Message::text("hello")).await.unwrap();
            ws.send(Message::text("x".repeat(70_000))).await.unwrap();
            ws.send(Message::Ping(vec![1, 2, 3].into())).await.unwrap();
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Text(t) => got.push(format!("text:{}", t.as_str())),
                    Message::Pong(p) => got.push(format!("pong:{:?}", p.as_ref())),
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            got
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut ws = RawWs::connect(tcp, &addr.to_string()).await.unwrap();
        let mut texts = Vec::new();
        while texts.len() < 2 {
            match ws.parse().unwrap() {
                Some(Frame::Text(r)) => texts.push(ws.text(r).to_owned()),
                Some(_) => {}
                None => assert!(ws.fill().await.unwrap()),
            }
        }
        assert_eq!(texts[0], "hello");
        assert_eq!(texts[1].len(), 70_000);
        loop {
            match ws.parse().unwrap() {
                Some(Frame::Ping(r)) => {
                    assert_eq!(ws.payload(r.clone()), &[1, 2, 3]);
                    ws.answer_ping(r).await.unwrap();
                    break;
                }
                Some(_) => {}
                None => assert!(ws.fill().await.unwrap()),
            }
        }
        ws.send_text(&"é".repeat(200)).await.unwrap();
        ws.close().await.unwrap();
        let got = server.await.unwrap();
        assert_eq!(
            got,
            vec![
                "pong:[1, 2, 3]".to_owned(),
                format!("text:{}", "é".repeat(200))
            ]
        );
    }
}
