//! Transports: thin adapters that turn a socket's bytes into calls on the [`crate::node::Node`]
//! and drain a session's outbox onto the socket. They know nothing of rooms or presence.

/// The response body type every handler answers with.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

pub mod coalesce;
pub mod polling;
pub mod sse;
pub mod websocket;
pub mod woken;

use std::os::fd::RawFd;

/// Makes the next close of `fd` abortive: SO_LINGER with a zero timeout, so closing discards
/// whatever the kernel still holds unsent and answers with a reset, instead of a FIN that the
/// kernel keeps retrying behind megabytes a peer that stopped reading never takes.
pub fn abort_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by the caller; the option value is a valid `linger`
    // and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SO_LINGER failed");
    }
}

/// Bytes the kernel holds for `fd` that the peer has not acknowledged (sent or not), 0 when it
/// cannot tell.
pub fn unsent_bytes(fd: RawFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ on a TCP socket) writes one int through the pointer.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued as *mut libc::c_int) };
    if rc == 0 {
        queued.max(0) as usize
    } else {
        0
    }
}
