//! Just enough of row images to find the unique-key values a row change touches: each
//! column's length from its type and the table map's metadata, the NULL bitmap, v1 and v2
//! rows events. Values are never interpreted, only sliced.

use crate::cursor::{usize_of, Cursor};
use crate::event::{packed_len, Rows, RowsKind};

/// A table map event: which table a table id stands for, and its column types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    /// Id the following rows events use.
    pub table_id: u64,
    /// Database name.
    pub db: String,
    /// Table name.
    pub table: String,
    /// Per column: (type code, metadata byte 0, metadata byte 1).
    pub columns: Vec<(u8, u8, u8)>,
}

impl TableMap {
    /// Parses a table map body (header and checksum removed).
    pub fn parse(body: &[u8], post_header_len: usize) -> Option<TableMap> {
        let mut c = Cursor::new(body);
        let table_id = if post_header_len == 6 { u64::from(c.u32()?) } else { c.uint(6)? };
        c.skip(2)?; // flags
        let db = name(&mut c)?;
        let table = name(&mut c)?;
        let n = packed_len(&mut c)?;
        let types = c.bytes(n)?.to_vec();
        let meta_len = packed_len(&mut c)?;
        let mut meta = Cursor::new(c.bytes(meta_len)?);
        let mut columns = Vec::with_capacity(n);
        for &t in &types {
            let (m0, m1) = match meta_bytes(t) {
                0 => (0, 0),
                1 => (meta.u8()?, 0),
                _ => (meta.u8()?, meta.u8()?),
            };
            columns.push((t, m0, m1));
        }
        Some(TableMap { table_id, db, table, columns })
    }
}

fn name(c: &mut Cursor<'_>) -> Option<String> {
    let len = usize::from(c.u8()?);
    let s = String::from_utf8_lossy(c.bytes(len)?).into_owned();
    c.skip(1)?;
    Some(s)
}

/// Bytes of table-map metadata per column type.
fn meta_bytes(t: u8) -> usize {
    match t {
        // FLOAT, DOUBLE, BLOB, GEOMETRY, JSON, TIMESTAMP2, DATETIME2, TIME2
        4 | 5 | 252 | 255 | 245 | 17 | 18 | 19 => 1,
        // VARCHAR, BIT, NEWDECIMAL, VAR_STRING, STRING, ENUM, SET
        15 | 16 | 246 | 253 | 254 | 247 | 248 => 2,
        _ => 0,
    }
}

/// Length of one stored value of a column, length prefix included; None for a type this
/// reader does not know (the caller then falls back to a table-level conflict).
fn value_len(col: (u8, u8, u8), data: &[u8]) -> Option<usize> {
    let (t, m0, m1) = col;
    let le = |n: usize| -> Option<usize> { usize_of(Cursor::new(data).uint(n)?) };
    Some(match t {
        1 | 13 => 1,
        2 => 2,
        9 | 10 | 11 | 14 => 3,
        3 | 7 => 4,
        8 | 12 => 8,
        4 => usize::from(m0).max(4),
        5 => usize::from(m0).max(8),
        6 => 0,
        17 => 4 + usize::from(m0).div_ceil(2),
        18 => 5 + usize::from(m0).div_ceil(2),
        19 => 3 + usize::from(m0).div_ceil(2),
        15 | 253 => {
            let max = u16::from_le_bytes([m0, m1]);
            if max > 255 {
                2 + le(2)?
            } else {
                1 + le(1)?
            }
        }
        16 => usize::from(m1) + usize::from(m0 > 0),
        246 => decimal_len(m0, m1)?,
        247 | 248 => usize::from(m1),
        254 => string_len(m0, m1, data)?,
        252 | 255 | 245 => {
            let n = usize::from(m0);
            if !(1..=4).contains(&n) {
                return None;
            }
            n + le(n)?
        }
        _ => return None,
    })
}

fn string_len(m0: u8, m1: u8, data: &[u8]) -> Option<usize> {
    // Field_string::save_field_metadata folds two high bits of the length into the type byte.
    let (real_type, max_len) = if m0 & 0x30 != 0x30 {
        (m0 | 0x30, usize::from(m1) | ((usize::from(m0 & 0x30) ^ 0x30) << 4))
    } else {
        (m0, usize::from(m1))
    };
    if real_type == 247 || real_type == 248 {
        return Some(usize::from(m1));
    }
    let mut c = Cursor::new(data);
    if max_len > 255 {
        Some(2 + usize_of(c.uint(2)?)?)
    } else {
        Some(1 + usize::from(c.u8()?))
    }
}

fn decimal_len(precision: u8, scale: u8) -> Option<usize> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let intg = usize::from(precision.checked_sub(scale)?);
    let frac = usize::from(scale);
    Some(intg / 9 * 4 + DIG2BYTES[intg % 9] + frac / 9 * 4 + DIG2BYTES[frac % 9])
}

/// One row image: per column, Some(value bytes), or None when NULL or not in the image.
pub type Image<'a> = Vec<Option<&'a [u8]>>;

/// Columns present in an image (a minimal row image leaves some out).
pub type Present = Vec<bool>;

/// Splits a rows event body into row images, with which columns each image carries. None
/// when the bytes do not fit the table map (undecodable: the caller locks the table).
pub fn images<'a>(body: &'a [u8], rows: &Rows, map: &TableMap) -> Option<Vec<(Present, Image<'a>)>> {
    if rows.compressed {
        return None;
    }
    let mut c = Cursor::new(body.get(rows.body_start..)?);
    let n = packed_len(&mut c)?;
    if n != map.columns.len() {
        return None;
    }
    let bitmap_len = n.div_ceil(8);
    let present_before = bits(c.bytes(bitmap_len)?, n);
    let present_after =
        if rows.kind == RowsKind::Update { bits(c.bytes(bitmap_len)?, n) } else { present_before.clone() };
    let mut out = Vec::new();
    while !c.rest().is_empty() {
        // A row of no bytes (an image with no column present) could repeat forever: a real
        // event never holds one, so the event is undecodable.
        let before = c.rest().len();
        let first = if rows.kind == RowsKind::Update { &present_before } else { &present_after };
        out.push((first.clone(), image(&mut c, first, map)?));
        if rows.kind == RowsKind::Update {
            out.push((present_after.clone(), image(&mut c, &present_after, map)?));
        }
        if c.rest().len() == before {
            return None;
        }
    }
    Some(out)
}

fn bits(bytes: &[u8], n: usize) -> Vec<bool> {
    (0..n).map(|i| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)).collect()
}

fn image<'a>(c: &mut Cursor<'a>, present: &[bool], map: &TableMap) -> Option<Image<'a>> {
    let count = present.iter().filter(|&&p| p).count();
    let nulls = c.bytes(count.div_ceil(8))?;
    let mut out = Vec::with_capacity(present.len());
    let mut k = 0usize;
    for (i, &p) in present.iter().enumerate() {
        if !p {
            out.push(None);
            continue;
        }
        let is_null = nulls.get(k / 8).is_some_and(|b| b & (1 << (k % 8)) != 0);
        k += 1;
        if is_null {
            out.push(None);
            continue;
        }
        let len = value_len(*map.columns.get(i)?, c.rest())?;
        out.push(Some(c.bytes(len)?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(columns: Vec<(u8, u8, u8)>) -> TableMap {
        TableMap { table_id: 1, db: "d".into(), table: "t".into(), columns }
    }

    /// Found by the fuzzer (fuzz/regressions/binlog_reader/zero-byte-rows): an image with no
    /// column present takes no bytes, and the split looped forever, allocating as it went.
    #[test]
    fn rows_of_no_bytes_are_undecodable_not_endless() {
        let m = map(vec![(3, 0, 0)]);
        let rows = Rows { table_id: 1, kind: RowsKind::Write, flags: 0, compressed: false, body_start: 0 };
        // 1 column, present bitmap all clear, then a byte no image can consume.
        assert_eq!(images(&[1, 0b0, 7], &rows, &m), None);
    }

    #[test]
    fn splits_int_varchar_rows_with_nulls() {
        // columns: INT, VARCHAR(20) nullable; two rows: (1,'ab') and (2,NULL)
        let m = map(vec![(3, 0, 0), (15, 20, 0)]);
        let mut body = vec![2u8, 0b11];
        body.extend([0b00, 1, 0, 0, 0, 2, b'a', b'b']);
        body.extend([0b10, 2, 0, 0, 0]);
        let rows = Rows { table_id: 1, kind: RowsKind::Write, flags: 1, compressed: false, body_start: 0 };
        let imgs = images(&body, &rows, &m).unwrap();
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[0].1, vec![Some(&[1u8, 0, 0, 0][..]), Some(&[2u8, b'a', b'b'][..])]);
        assert_eq!(imgs[1].1, vec![Some(&[2u8, 0, 0, 0][..]), None]);
    }

    #[test]
    fn update_has_two_images_per_row() {
        let m = map(vec![(8, 0, 0)]);
        let mut body = vec![1u8, 1, 1];
        body.extend([0, 5, 0, 0, 0, 0, 0, 0, 0]);
        body.extend([0, 6, 0, 0, 0, 0, 0, 0, 0]);
        let rows = Rows { table_id: 1, kind: RowsKind::Update, flags: 1, compressed: false, body_start: 0 };
        let imgs = images(&body, &rows, &m).unwrap();
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[1].1[0], Some(&[6u8, 0, 0, 0, 0, 0, 0, 0][..]));
    }

    #[test]
    fn decimal_and_string_lengths() {
        assert_eq!(decimal_len(10, 2), Some(4 + 1));
        assert_eq!(decimal_len(20, 10), Some(4 + 1 + 4 + 1));
        // CHAR(10) utf8mb4 = 40 bytes max: type byte 254, length 40.
        assert_eq!(string_len(254, 40, &[3, b'a', b'b', b'c']), Some(4));
        // ENUM stored in 1 byte.
        assert_eq!(string_len(247, 1, &[]), Some(1));
    }

    #[test]
    fn truncated_image_is_none_not_a_panic() {
        let m = map(vec![(8, 0, 0)]);
        let body = vec![1u8, 1, 0, 5, 0];
        let rows = Rows { table_id: 1, kind: RowsKind::Write, flags: 1, compressed: false, body_start: 0 };
        assert!(images(&body, &rows, &m).is_none());
    }
}
