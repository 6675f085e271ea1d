//! JSON as Shell's rapidjson `PrettyWriter` prints it: keys in insertion order, 4-space
//! indent, `[]`/`{}` for empty containers, no trailing newline, non-ASCII kept as UTF-8.

/// A JSON value whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(String),
    UInt(u64),
    Bool(bool),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn strs<S: AsRef<str>>(items: &[S]) -> Json {
        Json::Arr(items.iter().map(|s| Json::str(s.as_ref())).collect())
    }

    /// Pretty text, byte-for-byte what rapidjson writes.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        write_value(self, 0, &mut out);
        out
    }
}

/// An object builder, so call sites read in the file's key order.
#[derive(Debug, Default)]
pub struct Obj(Vec<(String, Json)>);

impl Obj {
    pub fn new() -> Obj {
        Obj(Vec::new())
    }

    pub fn put(mut self, key: &str, value: Json) -> Obj {
        self.0.push((key.to_string(), value));
        self
    }

    pub fn push(&mut self, key: &str, value: Json) {
        self.0.push((key.to_string(), value));
    }

    pub fn build(self) -> Json {
        Json::Obj(self.0)
    }
}

fn indent(level: usize, out: &mut String) {
    for _ in 0..level {
        out.push_str("    ");
    }
}

fn write_value(value: &Json, level: usize, out: &mut String) {
    match value {
        Json::Str(s) => write_string(s, out),
        Json::UInt(n) => out.push_str(&n.to_string()),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Arr(items) if items.is_empty() => out.push_str("[]"),
        Json::Obj(members) if members.is_empty() => out.push_str("{}"),
        Json::Arr(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(level + 1, out);
                write_value(item, level + 1, out);
            }
            out.push('\n');
            indent(level, out);
            out.push(']');
        }
        Json::Obj(members) => {
            out.push_str("{\n");
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(level + 1, out);
                write_string(key, out);
                out.push_str(": ");
                write_value(item, level + 1, out);
            }
            out.push('\n');
            indent(level, out);
            out.push('}');
        }
    }
}

/// rapidjson's escaping: `"` `\` and control characters; `/` and non-ASCII stay as they are.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn pretty_layout() {
        let doc = Obj::new()
            .put("a", Json::strs(&["x", "y"]))
            .put("e", Json::Arr(vec![]))
            .put("o", Obj::new().build())
            .put("n", Obj::new().put("k\n\"/\u{1}", Json::UInt(7)).put("b", Json::Bool(false)).build())
            .build();
        assert_eq!(
            doc.pretty(),
            "{\n    \"a\": [\n        \"x\",\n        \"y\"\n    ],\n    \"e\": [],\n    \"o\": {},\n    \"n\": {\n        \"k\\n\\\"/\\u0001\": 7,\n        \"b\": false\n    }\n}"
        );
    }
}
