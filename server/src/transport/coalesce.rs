//! A write-coalescing layer under the WebSocket codec.
//!
//! tungstenite writes each frame separately when its own write buffer is off, and keeps the
//! capacity of its largest batch forever when it is on, which costs every idle connection
//! kilobytes. This layer gathers the frames of one batch into one buffer, writes them with as few
//! syscalls as the socket allows, and frees the buffer after each flush, so an idle connection
//! holds no write buffer at all.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Above this many buffered bytes, a write first pushes the buffer to the socket.
const HIGH_WATER: usize = 64 * 1024;

/// Wraps a socket; reads pass through, writes are gathered until flushed.
pub struct Coalesce<T> {
    inner: T,
    buf: Vec<u8>,
    written: usize,
}

impl<T> Coalesce<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }

    /// The wrapped socket.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped socket, mutably (for the close: shutting it down, draining it). Bytes gathered
    /// and not flushed are not written by writes made on it directly.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Appends one server-to-client text frame around `payload`.
    pub fn push_text_frame(&mut self, payload: &[u8]) {
        self.push_frame(0x1, payload);
    }

    /// Appends one final, unmasked server-to-client frame with `opcode` around `payload`: the
    /// header is at most ten bytes, so these frames go out without passing through the codec's
    /// own buffer. They are whole frames, so they never split one the codec wrote.
    pub fn push_frame(&mut self, opcode: u8, payload: &[u8]) {
        let len = payload.len();
        self.buf.reserve(len + 10);
        self.buf.push(0x80 | opcode); // FIN
        if len < 126 {
            self.buf.push(len as u8);
        } else if len <= u16::MAX as usize {
            self.buf.push(126);
            self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.buf.push(127);
            self.buf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.buf.extend_from_slice(payload);
    }

    /// Bytes gathered and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Drained: give the memory back rather than keep it for an idle connection.
        self.buf = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::Coalesce;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn gathers_writes_until_flushed_and_frees_the_buffer() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut c = Coalesce::new(a);
        c.write_all(b"hello ").await.unwrap();
        c.write_all(b"world").await.unwrap();
        assert_eq!(c.buf.len(), 11);
        c.flush().await.unwrap();
        assert_eq!(c.buf.capacity(), 0);
        let mut got = [0u8; 11];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn text_frames_carry_the_three_length_forms() {
        use hyper_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
        use hyper_tungstenite::tungstenite::Message;
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut c = Coalesce::new(a);
        let sizes = [0usize, 1, 125, 126, 65_535, 65_536, 200_000];
        let payloads: Vec<String> = sizes
            .iter()
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        for p in &payloads {
            c.push_text_frame(p.as_bytes());
        }
        c.flush().await.unwrap();
        // A real client codec must read them back as the same text messages.
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let mut client =
            tokio_tungstenite::WebSocketStream::from_raw_socket(b, Role::Client, Some(config))
                .await;
        use futures_util::StreamExt;
        for p in &payloads {
            match client.next().await.unwrap().unwrap() {
                Message::Text(t) => assert_eq!(t.as_str(), p.as_str()),
                other => panic!("expected text, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_large_batch_goes_out_in_order() {
        let (a, mut b) = tokio::io::duplex(4096);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            b.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut c = Coalesce::new(a);
        let mut expected = Vec::new();
        for i in 0..2000u32 {
            let chunk = format!("{i:08}").repeat(10);
            expected.extend_from_slice(chunk.as_bytes());
            c.write_all(chunk.as_bytes()).await.unwrap();
        }
        c.shutdown().await.unwrap();
        drop(c);
        assert_eq!(reader.await.unwrap(), expected);
    }
}
