//! Row encoding of Shell's `Dialect_dump_writer` (default, csv, tsv, csv-unix) and the
//! `.idx` offsets of `Dump_writer`.

/// Data file dialects this writer can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Shell's default: TSV without enclosures, `\n` lines.
    Default,
    /// `dialect: "csv"`.
    Csv,
    /// `dialect: "tsv"` (quoted, `\r\n` lines; still extension `tsv`).
    Tsv,
    /// `dialect: "csv-unix"` (every non-NULL field quoted).
    CsvUnix,
}

impl Dialect {
    pub fn terminated_by(self) -> u8 {
        match self {
            Dialect::Default | Dialect::Tsv => b'\t',
            Dialect::Csv | Dialect::CsvUnix => b',',
        }
    }

    pub fn enclosed_by(self) -> Option<u8> {
        match self {
            Dialect::Default => None,
            _ => Some(b'"'),
        }
    }

    pub fn optionally_enclosed(self) -> bool {
        matches!(self, Dialect::Csv | Dialect::Tsv)
    }

    pub fn escaped_by(self) -> u8 {
        b'\\'
    }

    pub fn lines_terminated_by(self) -> &'static [u8] {
        match self {
            Dialect::Default | Dialect::CsvUnix => b"\n",
            Dialect::Csv | Dialect::Tsv => b"\r\n",
        }
    }

    /// Extension before any compression suffix.
    pub fn extension(self) -> &'static str {
        match self {
            Dialect::Default | Dialect::Tsv => "tsv",
            Dialect::Csv | Dialect::CsvUnix => "csv",
        }
    }

    /// The `dialect` option value, as recorded in `@.json` options.
    pub fn option_name(self) -> Option<&'static str> {
        match self {
            Dialect::Default => None,
            Dialect::Csv => Some("csv"),
            Dialect::Tsv => Some("tsv"),
            Dialect::CsvUnix => Some("csv-unix"),
        }
    }

    pub fn parse(s: &str) -> Option<Dialect> {
        match s {
            "default" => Some(Dialect::Default),
            "csv" => Some(Dialect::Csv),
            "tsv" => Some(Dialect::Tsv),
            "csv-unix" => Some(Dialect::CsvUnix),
            _ => None,
        }
    }
}

/// How one result column is written, decided from its result-set type as Shell does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Numbers: raw, and `inf`/`nan`-like text becomes NULL.
    None,
    /// `TO_BASE64` output: line breaks dropped, nothing escaped.
    Base64,
    /// Everything else, byte by byte.
    Full,
}

/// Per-column writing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRule {
    pub escape: Escape,
    /// Shell's `is_string_type` of the result column (quoted under `OPTIONALLY ENCLOSED`).
    pub string_type: bool,
}

impl FieldRule {
    /// `string_type`: the result column is a string/temporal/enum/set/json/geometry type;
    /// `number`: not a string type and not BIT; `base64`: selected through TO_BASE64.
    pub fn new(string_type: bool, number: bool, base64: bool) -> FieldRule {
        let escape = if number {
            Escape::None
        } else if base64 {
            Escape::Base64
        } else {
            Escape::Full
        };
        FieldRule { escape, string_type }
    }
}

/// Appends one encoded row (with its line terminator) to `out`.
pub fn encode_row(dialect: Dialect, rules: &[FieldRule], values: &[Option<&[u8]>], out: &mut Vec<u8>) {
    for (idx, (rule, value)) in rules.iter().zip(values).enumerate() {
        if idx > 0 {
            out.push(dialect.terminated_by());
        }
        encode_field(dialect, *rule, *value, out);
    }
    out.extend_from_slice(dialect.lines_terminated_by());
}

fn looks_like_non_number(v: &[u8]) -> bool {
    v.first().is_some_and(u8::is_ascii_alphabetic) || (v.len() > 1 && v[0] == b'-' && v[1].is_ascii_alphabetic())
}

fn encode_field(dialect: Dialect, rule: FieldRule, value: Option<&[u8]>, out: &mut Vec<u8>) {
    let value = match value {
        Some(v) if rule.escape == Escape::None && looks_like_non_number(v) => None,
        v => v,
    };
    let Some(value) = value else {
        out.push(dialect.escaped_by());
        out.push(b'N');
        return;
    };
    let quote = dialect.enclosed_by().filter(|_| !dialect.optionally_enclosed() || rule.string_type);
    if let Some(q) = quote {
        out.push(q);
    }
    match rule.escape {
        Escape::None => out.extend_from_slice(value),
        Escape::Base64 => strip_base64_breaks(value, out),
        Escape::Full => full_escape(dialect, value, out),
    }
    if let Some(q) = quote {
        out.push(q);
    }
}

/// Server `TO_BASE64` breaks lines every 76 characters; Shell drops the breaks (8.0.22+).
pub fn strip_base64_breaks(value: &[u8], out: &mut Vec<u8>) {
    out.extend(value.iter().copied().filter(|&b| b != b'\n'));
}

/// The escaping of `Dialect_dump_writer::store_field`: control characters by name, then the
/// escape character, the field terminator, the first line-terminator byte and the enclosure.
pub fn full_escape(dialect: Dialect, value: &[u8], out: &mut Vec<u8>) {
    let esc = dialect.escaped_by();
    for &b in value {
        let named = match b {
            0 => Some(b'0'),
            8 => Some(b'b'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            0x1A => Some(b'Z'),
            _ if b == esc
                || b == dialect.terminated_by()
                || b == dialect.lines_terminated_by()[0]
                || Some(b) == dialect.enclosed_by() =>
            {
                Some(b)
            }
            _ => None,
        };
        match named {
            Some(n) => {
                out.push(esc);
                out.push(n);
            }
            None => out.push(b),
        }
    }
}

/// Distance between `.idx` offsets: Shell writes one after the row that reaches 1 MiB.
pub const IDX_EVERY: u64 = 1024 * 1024;

/// The `.idx` offsets of one data file, as `Dump_writer` computes them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdxCadence {
    total: u64,
    since: u64,
    offsets: Vec<u64>,
}

impl IdxCadence {
    /// Records one row of `bytes` encoded bytes.
    pub fn row(&mut self, bytes: u64) {
        self.total += bytes;
        self.since += bytes;
        if self.since >= IDX_EVERY {
            self.offsets.push(self.total);
            // the remainder is kept, not reset: offsets drift towards exact MiB multiples
            self.since %= IDX_EVERY;
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The sidecar's bytes: every offset then the total, each big-endian u64.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * (self.offsets.len() + 1));
        for v in self.offsets.iter().chain(std::iter::once(&self.total)) {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const TEXT: FieldRule = FieldRule { escape: Escape::Full, string_type: true };
    const NUM: FieldRule = FieldRule { escape: Escape::None, string_type: false };
    const B64: FieldRule = FieldRule { escape: Escape::Base64, string_type: true };

    fn row(d: Dialect, rules: &[FieldRule], values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_row(d, rules, values, &mut out);
        out
    }

    #[test]
    fn default_dialect_escapes_every_special_byte() {
        let v: &[u8] = b"a\0b\x08c\nd\re\tf\x1Ag\\h\"i,j";
        assert_eq!(row(Dialect::Default, &[TEXT], &[Some(v)]), b"a\\0b\\bc\\nd\\re\\tf\\Zg\\\\h\"i,j\n");
    }

    #[test]
    fn null_empty_and_literal_null() {
        let out = row(Dialect::Default, &[TEXT, TEXT, TEXT], &[None, Some(b""), Some(b"NULL")]);
        assert_eq!(out, b"\\N\t\tNULL\n");
        assert_eq!(row(Dialect::Csv, &[TEXT, NUM], &[None, None]), b"\\N,\\N\r\n");
    }

    #[test]
    fn numbers_raw_and_inf_nan_null() {
        let out =
            row(Dialect::Default, &[NUM, NUM, NUM, NUM], &[Some(b"-1.5e10"), Some(b"inf"), Some(b"-nan"), Some(b"-")]);
        assert_eq!(out, b"-1.5e10\t\\N\t\\N\t-\n");
    }

    #[test]
    fn base64_breaks_stripped_and_not_escaped() {
        let b64 = b"QUJD\nREVG\n";
        assert_eq!(row(Dialect::Default, &[B64], &[Some(b64)]), b"QUJDREVG\n");
        assert_eq!(row(Dialect::Csv, &[B64], &[Some(b64)]), b"\"QUJDREVG\"\r\n");
    }

    #[test]
    fn csv_quotes_strings_only_and_escapes_comma_and_quote() {
        let out = row(Dialect::Csv, &[NUM, TEXT], &[Some(b"12"), Some(b"a,\"b\"\r")]);
        assert_eq!(out, b"12,\"a\\,\\\"b\\\"\\r\"\r\n");
        let out = row(Dialect::Tsv, &[NUM, TEXT], &[Some(b"12"), Some(b"a,b\t")]);
        assert_eq!(out, b"12\t\"a,b\\t\"\r\n");
    }

    #[test]
    fn csv_unix_quotes_every_non_null_field() {
        let out = row(Dialect::CsvUnix, &[NUM, TEXT, TEXT], &[Some(b"12"), Some(b"x"), None]);
        assert_eq!(out, b"\"12\",\"x\",\\N\n");
    }

    #[test]
    fn idx_cadence_keeps_the_remainder() {
        let mut idx = IdxCadence::default();
        idx.row(700_000);
        idx.row(700_000); // 1_400_000 >= 1 MiB: emit, since = 351_424
        idx.row(700_000); // 1_051_424 >= 1 MiB: emit again thanks to the remainder
        idx.row(10);
        let bytes = idx.finish();
        let values: Vec<u64> = bytes.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect();
        assert_eq!(values, vec![1_400_000, 2_100_000, 2_100_010]);
        assert_eq!(IdxCadence::default().finish(), vec![0u8; 8]);
    }

    #[test]
    fn idx_duplicate_final_value_when_last_row_emits() {
        let mut idx = IdxCadence::default();
        idx.row(IDX_EVERY);
        let values: Vec<u64> = idx.finish().chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect();
        assert_eq!(values, vec![IDX_EVERY, IDX_EVERY]);
    }
}
