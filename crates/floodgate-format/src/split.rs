//! Splits SQL text into statements, incrementally, the way the `mysql` client does.
//!
//! The splitter is a byte-level state machine fed in pieces of any size: the statements it
//! finds do not depend on how the input was cut into reads (a property test checks this).
//! It understands single-, double- and backtick-quoted text with every escape, `--`, `#`
//! and `/* */` comments, conditional comments (`/*!40101 ... */`, `/*M!100101 ... */`) whose
//! content is SQL, and the client's `DELIMITER` command.
//!
//! Two dialects decide where a statement ends:
//! * [`Terminator::Delimiter`]: at the current delimiter (`;` unless `DELIMITER` changed it)
//!   outside quotes and comments, as `mysql < dump.sql` does.
//! * [`Terminator::SemicolonNewline`]: at a `;` that ends a line, as myloader does. mydumper
//!   writes routine and trigger bodies with `; ` inside, so this is the only rule under
//!   which its files split correctly.

use std::io::Read;

/// Where statements end; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    /// The `mysql` client's rule, with `DELIMITER` support.
    Delimiter,
    /// myloader's rule: `;` followed by a line end.
    SemicolonNewline,
}

/// One statement, without its delimiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Byte offset of the statement's first byte in the (decompressed) input.
    pub offset: u64,
    /// The statement text, trimmed of surrounding whitespace.
    pub text: Vec<u8>,
    /// False for text left at the end of the input without a delimiter.
    pub terminated: bool,
}

/// A problem in the SQL text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The input ended inside a quoted string, identifier or comment.
    #[error("the input ends inside {what} that starts at byte {start}: it is truncated, or not SQL")]
    Unterminated {
        /// "a '...' string", "a /* comment */", ...
        what: &'static str,
        /// Where it starts.
        start: u64,
    },
    /// A statement is larger than the configured limit ([`StatementLimit`]).
    #[error("the statement at byte {start} is larger than {limit} bytes ({read} bytes read without its end)")]
    TooLarge {
        /// Where it starts.
        start: u64,
        /// The limit.
        limit: usize,
        /// Bytes of it read when the limit was passed.
        read: u64,
    },
    /// A `DELIMITER` command with no delimiter.
    #[error("DELIMITER command without a delimiter at byte {at}")]
    BadDelimiter {
        /// Where the command is.
        at: u64,
    },
}

/// The largest statement accepted, and what set that size. A statement is held whole in
/// memory on its way to the server, so an endless one (a damaged or hostile file with no
/// delimiter for gigabytes) must be refused at a size the memory budget can hold; and the
/// target refuses one larger than its `max_allowed_packet` anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementLimit {
    /// The size in bytes.
    pub bytes: usize,
    /// What set it, for the error that names it.
    pub set_by: LimitSetBy,
}

/// What set a [`StatementLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSetBy {
    /// Its share of `--memory-budget` (bytes) with this many loader connections.
    MemoryBudget {
        /// The budget, in bytes.
        budget: usize,
        /// Loader connections.
        loaders: usize,
    },
    /// The target's `max_allowed_packet`.
    MaxAllowedPacket,
}

impl StatementLimit {
    /// The share of `budget` one statement may take with `loaders` connections:
    /// `budget / (2 × loaders + 4)`. Each loader may hold a statement twice (its text and its
    /// LOAD DATA rows), and the splitter, the batch handed on, the chunk queue and the
    /// packet being sent once each (docs/DECISIONS.md, "The largest statement").
    pub fn for_budget(budget: usize, loaders: usize) -> Self {
        let loaders = loaders.max(1);
        StatementLimit { bytes: budget / (2 * loaders + 4), set_by: LimitSetBy::MemoryBudget { budget, loaders } }
    }

    /// The smaller of this limit and the target's `max_allowed_packet`.
    pub fn with_max_allowed_packet(self, packet: u64) -> Self {
        match usize::try_from(packet) {
            Ok(packet) if packet < self.bytes => StatementLimit { bytes: packet, set_by: LimitSetBy::MaxAllowedPacket },
            _ => self,
        }
    }

    /// What the limit is and how to raise it, for an error message.
    pub fn explain(&self) -> String {
        match self.set_by {
            LimitSetBy::MemoryBudget { budget, loaders } => format!(
                "{} bytes, the share of --memory-budget ({} MiB) one statement may take with {loaders} loader \
                 connection(s); if the backup is genuine, raise --memory-budget",
                self.bytes,
                budget >> 20
            ),
            LimitSetBy::MaxAllowedPacket => format!(
                "{} bytes, the target's max_allowed_packet (the server would refuse a larger statement); if the \
                 backup is genuine, raise max_allowed_packet on the target",
                self.bytes
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Quoted(u8),
    LineComment,
    BlockComment,
}

/// The incremental splitter. Feed it bytes with [`Splitter::push`], then call
/// [`Splitter::finish`].
#[derive(Debug)]
pub struct Splitter {
    terminator: Terminator,
    delimiter: Vec<u8>,
    /// Bytes that may change the state in code: quotes, comment starts, `;` and the
    /// delimiter's first byte. Everything else in a VALUES list is skipped in one step.
    special: [bool; 256],
    /// Bytes of the current statement plus not yet scanned input, after `start`.
    buf: Vec<u8>,
    /// Where the current statement begins in `buf`. Bytes before it are done with and are
    /// dropped at the next `push`, not at each statement: with one-row INSERTs a block
    /// holds thousands of statements, and moving the rest of it after each would cost
    /// more than the scan.
    start: usize,
    /// Scan position in `buf`.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    state: State,
    /// Where the current quote or comment started (stream offset), for errors.
    state_start: u64,
    /// Inside `/*! ... */`: the content is code, and `*/` ends it.
    in_conditional: bool,
    /// The current statement has something besides whitespace and comments.
    has_content: bool,
    /// The scan waits for the end of a `DELIMITER` line.
    awaiting_line: bool,
    max_statement: usize,
}

impl Splitter {
    /// A splitter for `terminator`, refusing statements larger than `max_statement` bytes.
    pub fn new(terminator: Terminator, max_statement: usize) -> Self {
        Splitter {
            terminator,
            delimiter: b";".to_vec(),
            special: special_bytes(b';'),
            buf: Vec::new(),
            start: 0,
            pos: 0,
            base: 0,
            state: State::Code,
            state_start: 0,
            in_conditional: false,
            has_content: false,
            awaiting_line: false,
            max_statement,
        }
    }

    /// Adds input and appends every statement it completes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Statement>) -> Result<(), SplitError> {
        self.compact();
        self.append(input);
        self.awaiting_line = false;
        self.scan(false, out)?;
        // Bytes before the scan position belong to the statement; those after it are a few
        // undecided bytes (a delimiter or comment start cut by the read), or a `DELIMITER`
        // line waiting for its end, which counts whole.
        let counted = if self.awaiting_line { self.buf.len() } else { self.pos };
        self.check_size(counted)
    }

    /// Refuses the statement (with its leading comments, which are held with it) when the
    /// bytes from its start to `end` pass the limit. Checked wherever a statement ends and
    /// after every read, so the outcome does not depend on how the input was cut.
    fn check_size(&self, end: usize) -> Result<(), SplitError> {
        let size = end - self.start;
        if size <= self.max_statement {
            return Ok(());
        }
        // Name where its text starts, as a statement's offset does, not its leading comments.
        let lead = leading_noise(&self.buf[self.start..end.min(self.buf.len())]);
        let start = self.base + (self.start + lead) as u64;
        Err(SplitError::TooLarge { start, limit: self.max_statement, read: size as u64 })
    }

    /// Appends `input` to the buffer. The buffer doubles as it grows, but never past the
    /// statement limit plus this input: doubling a buffer of 40 MiB to 80 MiB for a statement
    /// refused at 64 MiB would hold more than the limit promises.
    fn append(&mut self, input: &[u8]) {
        let needed = self.buf.len() + input.len();
        if needed > self.buf.capacity() {
            let ceiling = self.max_statement.saturating_add(input.len());
            let target = self.buf.capacity().saturating_mul(2).min(ceiling).max(needed);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(input);
    }

    /// Ends the input: returns the last statement if text without a delimiter remains, or an
    /// error if the input stops inside a string or comment.
    pub fn finish(mut self, out: &mut Vec<Statement>) -> Result<(), SplitError> {
        self.scan(true, out)?;
        match self.state {
            State::Quoted(q) => {
                let what = match q {
                    b'\'' => "a '...' string",
                    b'"' => "a \"...\" string",
                    _ => "a `...` identifier",
                };
                return Err(SplitError::Unterminated { what, start: self.state_start });
            }
            State::BlockComment => {
                return Err(SplitError::Unterminated { what: "a /* comment */", start: self.state_start })
            }
            State::Code | State::LineComment => {}
        }
        if self.in_conditional {
            return Err(SplitError::Unterminated { what: "a /*! conditional comment */", start: self.state_start });
        }
        let end = self.buf.len();
        self.emit(end, end, false, out)
    }

    /// True when bytes after `at` are needed to decide and the input may still bring them.
    fn short(&self, at: usize, need: usize, eof: bool) -> bool {
        !eof && at + need > self.buf.len()
    }

    fn scan(&mut self, eof: bool, out: &mut Vec<Statement>) -> Result<(), SplitError> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            match self.state {
                State::Quoted(q) => {
                    // Fast path: jump to the next byte that can end or escape the quote.
                    let next = if q == b'`' {
                        memchr::memchr(q, &self.buf[self.pos..])
                    } else {
                        memchr::memchr2(q, b'\\', &self.buf[self.pos..])
                    };
                    match next {
                        Some(0) => {}
                        Some(n) => {
                            self.pos += n;
                            continue;
                        }
                        None => {
                            self.pos = self.buf.len();
                            continue;
                        }
                    }
                    if b == b'\\' && q != b'`' {
                        if self.short(self.pos, 2, eof) {
                            return Ok(());
                        }
                        self.pos += 2;
                        continue;
                    }
                    if b == q {
                        if self.short(self.pos, 2, eof) {
                            return Ok(());
                        }
                        if self.buf.get(self.pos + 1) == Some(&q) {
                            self.pos += 2;
                            continue;
                        }
                        self.state = State::Code;
                    }
                    self.pos += 1;
                }
                State::LineComment => match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    Some(n) => {
                        self.state = State::Code;
                        self.pos += n + 1;
                    }
                    None => self.pos = self.buf.len(),
                },
                State::BlockComment => {
                    if b == b'*' {
                        if self.short(self.pos, 2, eof) {
                            return Ok(());
                        }
                        if self.buf.get(self.pos + 1) == Some(&b'/') {
                            self.state = State::Code;
                            self.pos += 2;
                            continue;
                        }
                    }
                    self.pos += 1;
                }
                State::Code => {
                    // Fast path: bytes that cannot start a quote, comment or delimiter (most of
                    // a VALUES list) only matter once the statement has begun.
                    if self.has_content {
                        let special = &self.special;
                        let plain = self.buf[self.pos..].iter().take_while(|&&c| !special[c as usize]).count();
                        if plain > 0 {
                            self.pos += plain;
                            continue;
                        }
                    }
                    if !self.scan_code(eof, out)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles one position in code. Returns false when it must wait for more input.
    fn scan_code(&mut self, eof: bool, out: &mut Vec<Statement>) -> Result<bool, SplitError> {
        let pos = self.pos;
        let b = self.buf[pos];
        if self.terminator == Terminator::Delimiter && !self.has_content && (b == b'D' || b == b'd') {
            match self.try_delimiter_command(eof)? {
                None => return Ok(false),
                Some(true) => return Ok(true),
                Some(false) => {}
            }
        }
        if let Some(done) = self.try_terminator(eof, out)? {
            return Ok(done);
        }
        let start = self.base + pos as u64;
        match b {
            b'\'' | b'"' | b'`' => {
                self.state = State::Quoted(b);
                self.state_start = start;
                self.has_content = true;
                self.pos += 1;
            }
            b'#' => {
                self.state = State::LineComment;
                self.pos += 1;
            }
            b'-' => {
                if self.short(pos, 3, eof) {
                    return Ok(false);
                }
                let dash = self.buf.get(pos + 1) == Some(&b'-');
                let space = self.buf.get(pos + 2).is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control());
                if dash && space {
                    self.state = State::LineComment;
                    self.pos += 2;
                } else {
                    self.has_content = true;
                    self.pos += 1;
                }
            }
            b'/' => {
                if self.short(pos, 4, eof) {
                    return Ok(false);
                }
                if self.buf.get(pos + 1) == Some(&b'*') {
                    let rest = &self.buf[pos + 2..];
                    if rest.starts_with(b"!") || rest.starts_with(b"M!") {
                        self.in_conditional = true;
                        self.state_start = start;
                        self.has_content = true;
                        self.pos += if rest[0] == b'!' { 3 } else { 4 };
                    } else {
                        self.state = State::BlockComment;
                        self.state_start = start;
                        self.pos += 2;
                    }
                } else {
                    self.has_content = true;
                    self.pos += 1;
                }
            }
            b'*' if self.in_conditional => {
                if self.short(pos, 2, eof) {
                    return Ok(false);
                }
                if self.buf.get(pos + 1) == Some(&b'/') {
                    self.in_conditional = false;
                    self.pos += 2;
                } else {
                    self.pos += 1;
                }
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    self.has_content = true;
                }
                self.pos += 1;
            }
        }
        Ok(true)
    }

    /// Ends the statement if a terminator starts at the scan position.
    /// Returns None when there is none, Some(false) when more input is needed.
    fn try_terminator(&mut self, eof: bool, out: &mut Vec<Statement>) -> Result<Option<bool>, SplitError> {
        let pos = self.pos;
        match self.terminator {
            Terminator::Delimiter => {
                let d = self.delimiter.len();
                let avail = &self.buf[pos..];
                if avail.len() < d && self.delimiter.starts_with(avail) && !eof {
                    return Ok(Some(false));
                }
                if !avail.starts_with(&self.delimiter) {
                    return Ok(None);
                }
                self.emit(pos, pos + d, true, out)?;
                Ok(Some(true))
            }
            Terminator::SemicolonNewline => {
                if self.buf[pos] != b';' {
                    return Ok(None);
                }
                if self.short(pos, 3, eof) {
                    return Ok(Some(false));
                }
                let next = &self.buf[pos + 1..];
                let line_end = next.is_empty() || next[0] == b'\n' || next.starts_with(b"\r\n");
                if !line_end {
                    return Ok(None);
                }
                self.emit(pos, pos + 1, true, out)?;
                Ok(Some(true))
            }
        }
    }

    /// Recognises `DELIMITER x` at the start of a statement.
    /// Returns None to wait for input, Some(true) when consumed, Some(false) when not one.
    fn try_delimiter_command(&mut self, eof: bool) -> Result<Option<bool>, SplitError> {
        const WORD: &[u8] = b"delimiter";
        let pos = self.pos;
        let avail = &self.buf[pos..];
        let n = avail.len().min(WORD.len() + 1);
        if !avail[..n.min(WORD.len())].eq_ignore_ascii_case(&WORD[..n.min(WORD.len())]) {
            return Ok(Some(false));
        }
        if avail.len() <= WORD.len() {
            return Ok(if eof { Some(false) } else { None });
        }
        if !matches!(avail[WORD.len()], b' ' | b'\t') {
            return Ok(Some(false));
        }
        let Some(nl) = avail.iter().position(|&c| c == b'\n') else {
            if eof {
                return self.set_delimiter(avail.len()).map(Some);
            }
            self.awaiting_line = true;
            return Ok(None);
        };
        self.set_delimiter(nl + 1).map(Some)
    }

    fn set_delimiter(&mut self, line_len: usize) -> Result<bool, SplitError> {
        let pos = self.pos;
        self.check_size(pos + line_len)?;
        let line = &self.buf[pos + 9..pos + line_len];
        let token: Vec<u8> =
            line.iter().copied().skip_while(u8::is_ascii_whitespace).take_while(|c| !c.is_ascii_whitespace()).collect();
        if token.is_empty() {
            return Err(SplitError::BadDelimiter { at: self.base + pos as u64 });
        }
        self.special = special_bytes(token[0]);
        self.delimiter = token;
        // The command is not part of any statement: drop it and what preceded it (whitespace
        // and comments only, since the statement had no content).
        self.discard(pos + line_len);
        Ok(true)
    }

    /// Marks everything before `upto` as done: the next statement starts there.
    fn discard(&mut self, upto: usize) {
        self.start = upto;
        self.pos = upto;
    }

    /// Drops the bytes of finished statements from the buffer, and gives back the memory a
    /// large statement left behind once the buffer holds far less.
    fn compact(&mut self) {
        const KEEP: usize = 1 << 20;
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.pos -= self.start;
            self.start = 0;
        }
        if self.buf.capacity() > KEEP && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len().max(KEEP));
        }
    }

    fn emit(
        &mut self,
        end: usize,
        resume: usize,
        terminated: bool,
        out: &mut Vec<Statement>,
    ) -> Result<(), SplitError> {
        self.check_size(end)?;
        if self.has_content {
            let raw = &self.buf[self.start..end];
            let lead = leading_noise(raw);
            let trail = raw[lead..].iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
            out.push(Statement {
                offset: self.base + (self.start + lead) as u64,
                text: raw[lead..raw.len() - trail].to_vec(),
                terminated,
            });
        }
        self.has_content = false;
        self.in_conditional = false;
        self.discard(resume);
        Ok(())
    }
}

fn special_bytes(delimiter_start: u8) -> [bool; 256] {
    let mut table = [false; 256];
    for b in [b'\'', b'"', b'`', b'#', b'-', b'/', b'*', b';', delimiter_start] {
        table[b as usize] = true;
    }
    table
}

/// Length of the whitespace and plain comments before a statement's first token. The
/// `mysql` client drops them too; conditional comments (`/*!`, `/*M!`) are code and stay.
fn leading_noise(raw: &[u8]) -> usize {
    let mut i = 0;
    loop {
        while i < raw.len() && raw[i].is_ascii_whitespace() {
            i += 1;
        }
        let rest = &raw[i..];
        let line_comment = rest.starts_with(b"#")
            || (rest.starts_with(b"--") && rest.get(2).is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()));
        if line_comment {
            match rest.iter().position(|&c| c == b'\n') {
                Some(nl) => i += nl + 1,
                None => return raw.len(),
            }
        } else if rest.starts_with(b"/*M!999999") || rest.starts_with(b"/*!999999") {
            // A version no server reaches: a note to the client (mariadb-dump's sandbox-mode
            // line), never executed.
            match rest.windows(2).skip(2).position(|w| w == b"*/") {
                Some(end) => i += end + 4,
                None => return i,
            }
        } else if rest.starts_with(b"/*") && !rest.starts_with(b"/*!") && !rest.starts_with(b"/*M!") {
            match rest.windows(2).skip(2).position(|w| w == b"*/") {
                Some(end) => i += end + 4,
                None => return i,
            }
        } else {
            return i;
        }
    }
}

/// An error while reading statements from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream failed (or decompression did).
    #[error("read failed after byte {offset}: {source}")]
    Io {
        /// Bytes consumed so far.
        offset: u64,
        /// The cause.
        source: std::io::Error,
    },
    /// The SQL is malformed.
    #[error(transparent)]
    Split(#[from] SplitError),
}

/// Pulls statements from any reader, holding at most one statement plus one read in memory.
pub struct StatementReader<R> {
    reader: R,
    splitter: Option<Splitter>,
    ready: std::collections::VecDeque<Statement>,
    scratch: Vec<Statement>,
    block: Vec<u8>,
    consumed: u64,
}

impl<R: Read> StatementReader<R> {
    /// Reads `reader` with the given dialect and statement size limit.
    pub fn new(reader: R, terminator: Terminator, max_statement: usize) -> Self {
        StatementReader {
            reader,
            splitter: Some(Splitter::new(terminator, max_statement)),
            ready: Default::default(),
            scratch: Vec::new(),
            block: vec![0; 256 * 1024],
            consumed: 0,
        }
    }

    /// Bytes read from the underlying reader so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next statement, or None at the end of the input.
    pub fn next_statement(&mut self) -> Result<Option<Statement>, ReadError> {
        loop {
            if let Some(s) = self.ready.pop_front() {
                return Ok(Some(s));
            }
            let Some(splitter) = self.splitter.as_mut() else {
                return Ok(None);
            };
            let n = loop {
                match self.reader.read(&mut self.block) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(source) => return Err(ReadError::Io { offset: self.consumed, source }),
                }
            };
            self.consumed += n as u64;
            if n == 0 {
                if let Some(s) = self.splitter.take() {
                    s.finish(&mut self.scratch)?;
                }
            } else {
                splitter.push(&self.block[..n], &mut self.scratch)?;
            }
            self.ready.extend(self.scratch.drain(..));
        }
    }
}

impl<R: Read> Iterator for StatementReader<R> {
    type Item = Result<Statement, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_statement().transpose()
    }
}

/// Splits a whole buffer at once (for small files and tests).
pub fn split_all(input: &[u8], terminator: Terminator) -> Result<Vec<Statement>, SplitError> {
    let mut splitter = Splitter::new(terminator, usize::MAX);
    let mut out = Vec::new();
    splitter.push(input, &mut out)?;
    splitter.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(input: &str, t: Terminator) -> Vec<String> {
        split_all(input.as_bytes(), t).unwrap().into_iter().map(|s| String::from_utf8(s.text).unwrap()).collect()
    }

    #[test]
    fn quotes_and_comments_hide_semicolons() {
        let sql = "INSERT INTO t VALUES ('a;b', \"c;\\\"d\", `e;f`);\n-- x; y\n# z;\n/* w; */ SELECT 1;";
        assert_eq!(
            texts(sql, Terminator::Delimiter),
            vec!["INSERT INTO t VALUES ('a;b', \"c;\\\"d\", `e;f`)", "SELECT 1"]
        );
    }

    #[test]
    fn doubled_quotes_and_backslashes() {
        let sql = "SELECT 'it''s;', 'back\\\\';SELECT `a``;b`;";
        assert_eq!(texts(sql, Terminator::Delimiter), vec!["SELECT 'it''s;', 'back\\\\'", "SELECT `a``;b`"]);
    }

    #[test]
    fn conditional_comments_are_code() {
        let sql = "/*!40101 SET NAMES binary*/;\n/*M!100616 SET NOTE_VERBOSITY=0*/;\n";
        assert_eq!(
            texts(sql, Terminator::Delimiter),
            vec!["/*!40101 SET NAMES binary*/", "/*M!100616 SET NOTE_VERBOSITY=0*/"]
        );
    }

    #[test]
    fn comment_only_statements_vanish() {
        assert!(texts("-- nothing\n/* here */\n", Terminator::Delimiter).is_empty());
        assert_eq!(
            texts("/*M!999999\\- enable the sandbox mode */\nSELECT 1;", Terminator::Delimiter),
            vec!["SELECT 1"]
        );
    }

    #[test]
    fn delimiter_blocks() {
        let sql = "DELIMITER ;;\nCREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET @a=1; SET @b=2; END ;;\nDELIMITER ;\nSELECT 1;";
        assert_eq!(
            texts(sql, Terminator::Delimiter),
            vec!["CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW BEGIN SET @a=1; SET @b=2; END", "SELECT 1"]
        );
    }

    #[test]
    fn mydumper_semicolon_newline() {
        let sql = "CREATE PROCEDURE p() BEGIN\n  SELECT 1; \n  SELECT 2; \nEND;\nINSERT INTO t VALUES (\"a;\nb\");\n";
        assert_eq!(
            texts(sql, Terminator::SemicolonNewline),
            vec!["CREATE PROCEDURE p() BEGIN\n  SELECT 1; \n  SELECT 2; \nEND", "INSERT INTO t VALUES (\"a;\nb\")"]
        );
    }

    #[test]
    fn unterminated_string_is_an_error() {
        let err = split_all(b"SELECT 1; INSERT INTO t VALUES ('abc", Terminator::Delimiter).unwrap_err();
        assert_eq!(err, SplitError::Unterminated { what: "a '...' string", start: 32 });
    }

    #[test]
    fn trailing_text_is_marked_unterminated() {
        let out = split_all(b"SELECT 1; SELECT 2", Terminator::Delimiter).unwrap();
        assert!(out[0].terminated);
        assert!(!out[1].terminated);
        assert_eq!(out[1].offset, 10);
    }

    #[test]
    fn too_large_statement() {
        let mut s = Splitter::new(Terminator::Delimiter, 10);
        let err = s.push(b"INSERT INTO t VALUES (1,2,3,4)", &mut Vec::new()).unwrap_err();
        assert!(matches!(err, SplitError::TooLarge { .. }));
    }

    /// An endless statement is refused once it passes the limit, and the buffer never grew
    /// past the limit plus one read on the way (doubling would have reached twice the limit).
    #[test]
    fn an_endless_statement_is_refused_at_the_limit_without_doubling_past_it() {
        let limit = 10 << 20;
        let mut s = Splitter::new(Terminator::Delimiter, limit);
        let mut out = Vec::new();
        s.push(b"SELECT 1;\nINSERT INTO t VALUES ('", &mut out).unwrap();
        let read = vec![b'x'; 100_000];
        let mut largest = 0;
        let err = loop {
            match s.push(&read, &mut out) {
                Ok(()) => largest = largest.max(s.buf.capacity()),
                Err(e) => break e,
            }
        };
        assert!(largest <= limit + read.len(), "the buffer grew to {largest} bytes");
        assert!(
            matches!(err, SplitError::TooLarge { start: 10, limit: l, read } if l == limit && read as usize > limit),
            "{err:?}"
        );
        assert_eq!(out.len(), 1);
    }

    /// After a large statement the buffer gives its memory back.
    #[test]
    fn the_buffer_shrinks_after_a_large_statement() {
        let mut s = Splitter::new(Terminator::Delimiter, usize::MAX);
        let mut out = Vec::new();
        let mut big = b"INSERT INTO t VALUES ('".to_vec();
        big.resize(32 << 20, b'x');
        big.extend_from_slice(b"');\n");
        s.push(&big, &mut out).unwrap();
        s.push(b"SELECT 1;\n", &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert!(s.buf.capacity() <= 1 << 20, "{} bytes kept", s.buf.capacity());
    }

    fn split_in_pieces(input: &[u8], cuts: &[usize], t: Terminator) -> Result<Vec<Statement>, SplitError> {
        split_in_pieces_within(input, cuts, t, usize::MAX)
    }

    fn split_in_pieces_within(
        input: &[u8],
        cuts: &[usize],
        t: Terminator,
        limit: usize,
    ) -> Result<Vec<Statement>, SplitError> {
        let mut s = Splitter::new(t, limit);
        let mut out = Vec::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            s.push(&input[last..c], &mut out)?;
            last = c;
        }
        s.push(&input[last..], &mut out)?;
        s.finish(&mut out)?;
        Ok(out)
    }

    fn sqlish() -> impl Strategy<Value = Vec<u8>> {
        let atoms = prop::sample::select(vec![
            "'",
            "\"",
            "`",
            "\\",
            ";",
            ";\n",
            "\n",
            "--",
            "-- ",
            "#",
            "/*",
            "*/",
            "/*!",
            "/*M!",
            "DELIMITER ;;\n",
            "DELIMITER ;\n",
            ";;",
            "delimiter $$\n",
            "$$",
            "INSERT",
            " ",
            "x",
            "''",
            "\r\n",
        ]);
        prop::collection::vec(atoms, 0..60).prop_map(|v| v.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(input in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = split_all(&input, Terminator::Delimiter);
            let _ = split_all(&input, Terminator::SemicolonNewline);
        }

        /// Whether a statement passes the limit does not depend on how the input was cut
        /// into reads either (the size checked after each read counts only bytes known to
        /// belong to the statement).
        #[test]
        fn reads_do_not_change_what_the_limit_refuses(input in sqlish(), cuts in prop::collection::vec(any::<usize>(), 0..8), limit in 0usize..64) {
            for t in [Terminator::Delimiter, Terminator::SemicolonNewline] {
                let whole = split_in_pieces_within(&input, &[], t, limit);
                let pieces = split_in_pieces_within(&input, &cuts, t, limit);
                match (&whole, &pieces) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "{:?}: whole {:?}, in pieces {:?}", t, whole, pieces),
                }
                if let Ok(statements) = &whole {
                    prop_assert!(statements.iter().all(|s| s.text.len() <= limit));
                }
            }
        }

        #[test]
        fn reads_do_not_change_the_split(input in sqlish(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
            for t in [Terminator::Delimiter, Terminator::SemicolonNewline] {
                let whole = split_all(&input, t);
                let pieces = split_in_pieces(&input, &cuts, t);
                prop_assert_eq!(whole, pieces);
            }
        }
    }
}
