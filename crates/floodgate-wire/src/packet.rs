//! Packet framing: a 3-byte length and a sequence number before each payload, payloads of
//! 16 MiB - 1 or more split over several packets.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::WireError;

/// The largest payload one packet carries; a packet this long continues in the next.
pub(crate) const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// The largest logical payload accepted (the server's own `max_allowed_packet` ceiling is
/// 1 GiB): a stream that claims more is refused instead of growing a buffer without end.
const MAX_LOGICAL: usize = 1 << 30;

/// Read-ahead size: big enough that a socket read fetches many rows at once.
const READ_AHEAD: usize = 256 << 10;

/// Where the current payload lives.
#[derive(Clone, Copy)]
enum Current {
    None,
    /// `buf[at..at + len]`: valid until the next read.
    Buf {
        at: usize,
        len: usize,
    },
    /// Reassembled from several packets into `big`.
    Big,
}

/// Reads and writes framed packets on a byte stream, reading ahead into one buffer so a
/// payload is handed out as a slice of it: no copy and no allocation per packet.
pub(crate) struct Packets<S> {
    io: S,
    buf: Vec<u8>,
    /// First unread byte of `buf`.
    start: usize,
    /// End of the bytes read into `buf`.
    end: usize,
    big: Vec<u8>,
    current: Current,
    seq: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Packets<S> {
    pub(crate) fn new(io: S) -> Self {
        Packets::resume(io, 0)
    }

    /// Packets over `io`, the next one numbered `seq`: an exchange that continues on a new
    /// stream (the login, after the TLS handshake).
    pub(crate) fn resume(io: S, seq: u8) -> Self {
        Packets { io, buf: vec![0; READ_AHEAD], start: 0, end: 0, big: Vec::new(), current: Current::None, seq }
    }

    /// The stream, and the sequence number of the next packet, to continue on another stream
    /// layered over it. Bytes read ahead and not consumed would be lost, or worse: bytes a man
    /// in the middle sent in clear before the TLS handshake, that would read as if they came
    /// through it. So there must be none.
    pub(crate) fn into_stream(self) -> Result<(S, u8), WireError> {
        if self.start != self.end {
            return Err(WireError::Protocol(format!(
                "{} bytes arrived before the TLS handshake, unasked",
                self.end - self.start
            )));
        }
        Ok((self.io, self.seq))
    }

    /// A command starts a new exchange: its first packet has sequence number 0.
    pub(crate) fn reset_sequence(&mut self) {
        self.seq = 0;
    }

    /// The payload of the packet read last; empty before the first.
    pub(crate) fn payload(&self) -> &[u8] {
        match self.current {
            Current::None => &[],
            Current::Buf { at, len } => &self.buf[at..at + len],
            Current::Big => &self.big,
        }
    }

    /// Reads the next logical packet; `payload()` then returns it.
    pub(crate) async fn read(&mut self) -> Result<(), WireError> {
        let (at, len) = self.read_one().await?;
        if len < MAX_PAYLOAD {
            if self.big.capacity() > 4 * MAX_PAYLOAD {
                // One huge value should not pin its memory for the rest of the dump.
                self.big = Vec::new();
            }
            self.current = Current::Buf { at, len };
            return Ok(());
        }
        self.big.clear();
        self.big.extend_from_slice(&self.buf[at..at + len]);
        loop {
            let (at, len) = self.read_one().await?;
            if self.big.len() + len > MAX_LOGICAL {
                return Err(WireError::Protocol(format!("a packet of more than {MAX_LOGICAL} bytes")));
            }
            self.big.extend_from_slice(&self.buf[at..at + len]);
            if len < MAX_PAYLOAD {
                break;
            }
        }
        self.current = Current::Big;
        Ok(())
    }

    /// One physical packet: its payload's offset in `buf` and its length.
    async fn read_one(&mut self) -> Result<(usize, usize), WireError> {
        self.current = Current::None;
        self.fill(4).await?;
        let h = &self.buf[self.start..self.start + 4];
        let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
        let seq = h[3];
        if seq != self.seq {
            return Err(WireError::Protocol(format!("packet out of order: sequence {seq}, expected {}", self.seq)));
        }
        self.seq = self.seq.wrapping_add(1);
        self.fill(4 + len).await?;
        let at = self.start + 4;
        self.start = at + len;
        Ok((at, len))
    }

    /// Reads until `need` unread bytes are in `buf`, moving them to its front or growing it
    /// when they would not fit. Invalidates `payload()`.
    async fn fill(&mut self, need: usize) -> Result<(), WireError> {
        while self.end - self.start < need {
            if self.buf.len() - self.start < need {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < need {
                    self.buf.resize(need.max(READ_AHEAD), 0);
                }
            } else if self.start == self.end {
                // Nothing unread: start over at the front so reads stay large.
                self.start = 0;
                self.end = 0;
            }
            let n = self.io.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(WireError::Closed);
            }
            self.end += n;
        }
        if self.buf.len() > 2 * READ_AHEAD && need <= READ_AHEAD && self.start == 0 && self.end <= READ_AHEAD {
            // Back to the normal size after a packet that needed more.
            self.buf.truncate(READ_AHEAD);
            self.buf.shrink_to_fit();
        }
        Ok(())
    }

    /// Writes one logical packet, split as the protocol requires, and flushes.
    pub(crate) async fn write(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let mut out = Vec::with_capacity(payload.len() + 8);
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_PAYLOAD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
            out.push(self.seq);
            self.seq = self.seq.wrapping_add(1);
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            // A payload that fills a packet exactly is ended by an empty one.
            if n < MAX_PAYLOAD {
                break;
            }
        }
        self.io.write_all(&out).await?;
        self.io.flush().await?;
        Ok(())
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Frames `payloads` as a server would, numbering from `seq`.
    pub(crate) fn frame(payloads: &[Vec<u8>], mut seq: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            let mut rest = &p[..];
            loop {
                let n = rest.len().min(MAX_PAYLOAD);
                out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
                out.push(seq);
                seq = seq.wrapping_add(1);
                out.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if n < MAX_PAYLOAD {
                    break;
                }
            }
        }
        out
    }

    fn packets(bytes: Vec<u8>) -> Packets<tokio::io::Join<std::io::Cursor<Vec<u8>>, tokio::io::Sink>> {
        Packets::new(tokio::io::join(std::io::Cursor::new(bytes), tokio::io::sink()))
    }

    fn read_all(bytes: Vec<u8>) -> Result<Vec<Vec<u8>>, WireError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut p = packets(bytes);
            let mut out = Vec::new();
            loop {
                match p.read().await {
                    Ok(()) => out.push(p.payload().to_vec()),
                    Err(WireError::Closed) => return Ok(out),
                    Err(e) => return Err(e),
                }
            }
        })
    }

    #[test]
    fn a_payload_over_16_mib_is_reassembled() {
        let big: Vec<u8> = (0..MAX_PAYLOAD + 10).map(|i| i as u8).collect();
        let exact = vec![7u8; MAX_PAYLOAD];
        let payloads = vec![b"small".to_vec(), big, exact, Vec::new(), b"after".to_vec()];
        assert_eq!(read_all(frame(&payloads, 0)).unwrap(), payloads);
    }

    #[test]
    fn out_of_order_and_truncated_packets_are_errors() {
        let framed = frame(&[b"one".to_vec()], 1);
        assert!(matches!(read_all(framed), Err(WireError::Protocol(m)) if m.contains("out of order")));
        let mut framed = frame(&[b"one".to_vec(), b"two".to_vec()], 0);
        framed.truncate(framed.len() - 1);
        // The first packet is whole; the second ends early: the stream closed mid-packet.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut p = packets(framed);
            p.read().await.unwrap();
            assert_eq!(p.payload(), b"one");
            assert!(matches!(p.read().await, Err(WireError::Closed)));
        });
    }

    #[test]
    fn writes_split_and_number_packets() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (client, mut server) = tokio::io::duplex(64 << 20);
            let mut p = Packets::new(client);
            let payload = vec![1u8; MAX_PAYLOAD];
            p.write(&payload).await.unwrap();
            drop(p);
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, frame(&[payload], 0));
        });
    }

    proptest! {
        #[test]
        fn framing_round_trips(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..40)) {
            prop_assert_eq!(read_all(frame(&payloads, 0)).unwrap(), payloads);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_all(bytes);
        }
    }
}
