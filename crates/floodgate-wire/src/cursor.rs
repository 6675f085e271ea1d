//! Bounds-checked reading of protocol fields out of one packet's payload.

use crate::WireError;

/// A read position in a payload. Every read checks the length first: a short or lying
/// packet is a `WireError::Protocol` naming what was being read, never a panic.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

/// What a length-encoded string field held.
pub(crate) enum LenencField<'a> {
    Null,
    Bytes(&'a [u8]),
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, at: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.at..).unwrap_or_default();
        self.at = self.data.len();
        rest
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.data.len()).ok_or_else(|| short(what))?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn uint(&mut self, n: usize, what: &str) -> Result<u64, WireError> {
        Ok(self.bytes(n, what)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        // Two bytes always fit.
        Ok(self.uint(2, what)? as u16)
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        Ok(self.uint(4, what)? as u32)
    }

    /// Bytes up to a NUL (consumed) or, if there is none, to the end of the payload: some
    /// servers end the greeting's plugin name with the packet instead of a NUL.
    pub(crate) fn nul_terminated(&mut self) -> &'a [u8] {
        let rest = self.data.get(self.at..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                self.at += n + 1;
                &rest[..n]
            }
            None => self.rest(),
        }
    }

    /// A length-encoded integer; `Ok(None)` for the NULL marker 0xFB.
    pub(crate) fn lenenc_int(&mut self, what: &str) -> Result<Option<u64>, WireError> {
        match self.u8(what)? {
            n @ 0..=0xFA => Ok(Some(u64::from(n))),
            0xFB => Ok(None),
            0xFC => self.uint(2, what).map(Some),
            0xFD => self.uint(3, what).map(Some),
            0xFE => self.uint(8, what).map(Some),
            _ => Err(WireError::Protocol(format!("{what}: 0xFF is not a length"))),
        }
    }

    /// A length-encoded string, or NULL.
    pub(crate) fn lenenc_field(&mut self, what: &str) -> Result<LenencField<'a>, WireError> {
        match self.lenenc_int(what)? {
            None => Ok(LenencField::Null),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| short(what))?;
                self.bytes(n, what).map(LenencField::Bytes)
            }
        }
    }
}

fn short(what: &str) -> WireError {
    WireError::Protocol(format!("{what}: the packet ends early"))
}

/// Appends `n` as a length-encoded integer.
pub(crate) fn put_lenenc_int(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xFA => out.push(n as u8),
        0xFB..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lenenc_round_trips(n in any::<u64>()) {
            let mut buf = Vec::new();
            put_lenenc_int(&mut buf, n);
            let mut c = Cursor::new(&buf);
            prop_assert_eq!(c.lenenc_int("n").unwrap(), Some(n));
            prop_assert!(c.is_empty());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut c = Cursor::new(&data);
            while !c.is_empty() {
                if c.lenenc_field("f").is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn short_reads_name_the_field() {
        let mut c = Cursor::new(&[0xFC, 1]);
        let err = c.lenenc_int("column count").unwrap_err().to_string();
        assert!(err.contains("column count"), "{err}");
        let mut c = Cursor::new(&[3, b'a']);
        assert!(c.lenenc_field("value").is_err());
    }
}
