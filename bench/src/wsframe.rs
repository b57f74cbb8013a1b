//! WebSocket frame headers (RFC 6455 §5.2), shared by the bench's client (`rawws`) and the
//! reference forwarder, which includes this file as a module of its own.

/// Appends a final frame's header: FIN and `opcode`, the mask bit when `masked`, and `len` in
/// its shortest form (the caller appends the masking key, if any, and the payload).
pub fn push_header(out: &mut Vec<u8>, opcode: u8, len: usize, masked: bool) {
    let mask_bit = if masked { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// The payload length of the frame starting at `buf[0]`, and the header's length up to (not
/// including) any masking key; `None` until the whole length field is buffered.
pub fn payload_len(buf: &[u8]) -> Option<(usize, usize)> {
    match *buf.get(1)? & 0x7f {
        126 => Some((
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        )),
        127 => Some((
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        )),
        n => Some((n as usize, 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_back_in_all_three_length_forms() {
        for (len, header) in [(125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut out = Vec::new();
            push_header(&mut out, 0x1, len, len % 2 == 0);
            assert_eq!(out.len(), header);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80 != 0, len % 2 == 0, "mask bit for {len}");
            assert_eq!(payload_len(&out), Some((len, header)));
            assert_eq!(
                payload_len(&out[..header - 1]),
                None,
                "incomplete length for {len}"
            );
        }
    }
}
