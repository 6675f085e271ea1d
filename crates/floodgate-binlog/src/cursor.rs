//! A bounds-checked little-endian reader over an event's bytes: every read returns None past
//! the end instead of panicking, so garbage input becomes an error, never a crash.

/// Reads fields from a byte slice, front to back.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    /// An unsigned little-endian integer of `n` (at most 8) bytes.
    pub(crate) fn uint(&mut self, n: usize) -> Option<u64> {
        if n > 8 {
            return None;
        }
        let b = self.bytes(n)?;
        Some(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.uint(2).and_then(|v| u16::try_from(v).ok())
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.uint(4).and_then(|v| u32::try_from(v).ok())
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.uint(8)
    }

    /// The protocol's length-encoded integer (1, 3, 4 or 9 bytes).
    pub(crate) fn packed(&mut self) -> Option<u64> {
        match self.u8()? {
            n @ 0..=250 => Some(u64::from(n)),
            252 => self.uint(2),
            253 => self.uint(3),
            254 => self.uint(8),
            _ => None,
        }
    }

    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }
}

/// `u64` to `usize` without `as`: lengths that do not fit are malformed input.
pub(crate) fn usize_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}
