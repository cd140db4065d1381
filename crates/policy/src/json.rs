//! A JSON tree that keeps key order and rejects duplicate keys, plus a scanner that finds
//! where each statement object sits in the original text.
//!
//! serde_json does the parsing (and its recursion limit bounds nesting); this module only
//! supplies a `Deserialize` target, because `serde_json::Value` silently keeps the last of
//! two equal keys while IAM's grammar says "Individual elements must not contain multiple
//! instances of the same key" (policy.md §2.1).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

/// One JSON value. Numbers keep the text serde_json gives back for them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole document; `None` on any syntax error or duplicate key.
    pub(crate) fn parse(text: &str) -> Option<Json> {
        serde_json::from_str(text).ok()
    }

    pub(crate) fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom("duplicate key"));
            }
            let value = map.next_value::<Json>()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

/// A position in the text: line and column, both 1-based, columns counted in characters.
pub(crate) type Position = (u32, u32);

/// Start (the statement's `{`) and end (just after its `}`) of each statement object, in
/// document order. Runs only on text that [`Json::parse`] accepted; returns `None` if the
/// text does not have the expected shape, which the caller treats as "positions unknown".
pub(crate) fn statement_spans(text: &str) -> Option<Vec<(Position, Position)>> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    scanner.skip_ws();
    scanner.expect(b'{')?;
    loop {
        scanner.skip_ws();
        if scanner.peek()? == b'}' {
            return None;
        }
        let key = scanner.string()?;
        scanner.skip_ws();
        scanner.expect(b':')?;
        scanner.skip_ws();
        if key == "Statement" {
            let mut spans = Vec::new();
            if scanner.peek()? == b'[' {
                scanner.pos += 1;
                loop {
                    scanner.skip_ws();
                    match scanner.peek()? {
                        b']' => break,
                        b',' => scanner.pos += 1,
                        _ => {
                            let start = scanner.pos;
                            scanner.value()?;
                            spans.push((start, scanner.pos));
                        }
                    }
                }
            } else {
                let start = scanner.pos;
                scanner.value()?;
                spans.push((start, scanner.pos));
            }
            return Some(to_positions(text, &spans));
        }
        scanner.value()?;
        scanner.skip_ws();
        if scanner.peek()? == b',' {
            scanner.pos += 1;
        }
    }
}

fn to_positions(text: &str, spans: &[(usize, usize)]) -> Vec<(Position, Position)> {
    let at = |offset: usize| -> Position {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (saturate(line), saturate(column))
    };
    spans
        .iter()
        .map(|&(start, end)| (at(start), at(end)))
        .collect()
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A depth- and string-aware skipper over already-validated JSON text.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Reads a string literal and returns it decoded.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.skip_string()?;
        let raw = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        serde_json::from_str(raw).ok()
    }

    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Skips one value of any kind, nested containers included.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                self.pos += 1;
                let mut depth = 1usize;
                while depth > 0 {
                    match self.peek()? {
                        b'"' => self.skip_string()?,
                        b'{' | b'[' => {
                            depth += 1;
                            self.pos += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.pos += 1;
                        }
                        _ => self.pos += 1,
                    }
                }
                Some(())
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        assert!(Json::parse(r#"{"a":1,"a":2}"#).is_none());
        assert!(Json::parse(r#"{"a":{"b":1,"b":1}}"#).is_none());
        assert!(Json::parse(r#"{"a":[{"b":1},{"b":1}]}"#).is_some());
    }

    #[test]
    fn spans_of_list_and_single_statement() {
        let text = "{\"Version\":\"x\",\n \"Statement\":[ {\"a\":\"}\"} ,\n{\"b\":[1]}]}";
        let spans = statement_spans(text).unwrap();
        assert_eq!(spans, vec![((2, 16), (2, 25)), ((3, 1), (3, 10))]);
        let spans = statement_spans(r#"{"Statement":{"x":1}}"#).unwrap();
        assert_eq!(spans, vec![((1, 14), (1, 21))]);
    }
}
