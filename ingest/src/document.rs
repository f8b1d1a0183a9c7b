//! Whole-document inputs: a CSV table with a header, or one JSON array of objects
//! (database and KQL exports). Each element or row becomes a JSON object the
//! format maps like any other record; positions are CSV line numbers, or element
//! numbers for JSON arrays (which have no lines).

use std::io::BufRead;

use serde::Deserializer as _;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// How an input's records are laid out, recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    JsonLines,
    JsonArray,
    /// One JSON object spread over lines: a pretty-printed `{"records": [...]}`
    /// blob, LiteLLM's `{"data": [...]}`, the Log Analytics REST `{"tables": [...]}`.
    JsonDocument,
    Csv,
}

impl Layout {
    /// `[` starts a JSON array; `{` JSON lines, unless the first line is not a
    /// whole JSON value (then one document); anything else is CSV with a header.
    pub fn sniff(head: &[u8]) -> Layout {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let start = head.iter().position(|b| !b.is_ascii_whitespace());
        match start.map(|i| (head[i], &head[i..])) {
            Some((b'[', _)) => Layout::JsonArray,
            None => Layout::JsonLines,
            Some((b'{', rest)) => match rest.iter().position(|&b| b == b'\n') {
                Some(end)
                    if serde_json::from_slice::<serde::de::IgnoredAny>(&rest[..end]).is_err() =>
                {
                    Layout::JsonDocument
                }
                _ => Layout::JsonLines,
            },
            Some(_) => Layout::Csv,
        }
    }
}

/// The records of a whole JSON document: the array under `records`, `data` or
/// `value`; the rows of Log Analytics REST `tables` as objects keyed by column;
/// else the document itself.
pub fn document_records(doc: Value) -> Vec<Value> {
    let Value::Object(mut map) = doc else {
        return match doc {
            Value::Array(items) => items,
            other => vec![other],
        };
    };
    for key in ["records", "Records", "data", "value"] {
        if matches!(map.get(key), Some(Value::Array(_)))
            && let Some(Value::Array(items)) = map.remove(key)
        {
            return items;
        }
    }
    if let Some(Value::Array(tables)) = map.get("tables") {
        let mut rows_out = Vec::new();
        for table in tables {
            let columns: Vec<&str> = table["columns"]
                .as_array()
                .map(|cols| cols.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            for row in table["rows"].as_array().into_iter().flatten() {
                let cells = row.as_array().map(Vec::as_slice).unwrap_or_default();
                let object: Map<String, Value> = columns
                    .iter()
                    .zip(cells)
                    .map(|(name, cell)| ((*name).to_owned(), cell.clone()))
                    .collect();
                rows_out.push(Value::Object(object));
            }
        }
        return rows_out;
    }
    vec![Value::Object(map)]
}

/// Where a record came from, for the quarantine.
#[derive(Debug)]
pub struct Position {
    pub line: u64,
    pub offset: u64,
    pub raw: Vec<u8>,
}

/// Calls `each` for every element of a top-level JSON array, streaming: the array
/// is never held whole. An error of `each` stops the walk and is returned as is;
/// a syntax error in the document is `Err(Err(message))`.
pub fn for_each_array_element<E>(
    reader: impl BufRead,
    mut each: impl FnMut(u64, Value) -> Result<(), E>,
) -> Result<(), Result<E, String>> {
    struct Elements<'f, F> {
        each: &'f mut F,
    }
    impl<'de, F: FnMut(Value) -> Result<(), String>> Visitor<'de> for Elements<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(value) = seq.next_element::<Value>()? {
                (self.each)(value).map_err(A::Error::custom)?;
            }
            Ok(())
        }
    }

    const STOPPED: &str = "\u{0}stopped by the caller";
    let mut failure: Option<E> = None;
    let mut index = 0u64;
    let mut callback = |value: Value| {
        index += 1;
        each(index, value).map_err(|e| {
            failure = Some(e);
            STOPPED.to_owned()
        })
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let outcome = de
        .deserialize_seq(Elements {
            each: &mut callback,
        })
        .and_then(|()| de.end());
    match (outcome, failure) {
        (_, Some(e)) => Err(Ok(e)),
        (Ok(()), None) => Ok(()),
        (Err(e), None) => Err(Err(format!("not a readable JSON array: {e}"))),
    }
}

/// A CSV field: empty is null, anything else stays a string (`007` is an id, not
/// seven); the typed accessors read numbers and booleans out of strings.
pub fn csv_field(field: &str) -> Value {
    if field.is_empty() {
        Value::Null
    } else {
        Value::String(field.to_owned())
    }
}

/// One CSV row as an object keyed by the header.
pub fn csv_row(headers: &csv::StringRecord, row: &csv::StringRecord) -> Value {
    let mut map = Map::with_capacity(headers.len());
    for (name, field) in headers.iter().zip(row.iter()) {
        map.insert(name.to_owned(), csv_field(field));
    }
    Value::Object(map)
}

/// A row as it was, for the quarantine.
pub fn csv_raw(row: &csv::StringRecord) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record(row);
    out.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_recognised() {
        assert_eq!(Layout::sniff(b" [{\"a\":1}]"), Layout::JsonArray);
        assert_eq!(Layout::sniff(b"{\"a\":1}\n{\"a\":2}\n"), Layout::JsonLines);
        assert_eq!(
            Layout::sniff(b"{\n  \"records\": [\n"),
            Layout::JsonDocument
        );
        assert_eq!(
            Layout::sniff(b"\xEF\xBB\xBFrequest_id,startTime\n"),
            Layout::Csv
        );
        assert_eq!(Layout::sniff(b""), Layout::JsonLines);
    }

    #[test]
    fn documents_unwrap_to_their_records() {
        let records: Value = serde_json::from_str(r#"{"records":[{"a":1},{"a":2}]}"#).unwrap();
        assert_eq!(document_records(records).len(), 2);
        let tables: Value = serde_json::from_str(
            r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"CorrelationId","type":"string"},{"name":"PromptTokens","type":"long"}],"rows":[["c-1",10],["c-2",20]]}]}"#,
        )
        .unwrap();
        let rows = document_records(tables);
        assert_eq!(rows[1]["CorrelationId"], "c-2");
        assert_eq!(rows[1]["PromptTokens"], 20);
        let single: Value = serde_json::from_str(r#"{"request_id":"x"}"#).unwrap();
        assert_eq!(document_records(single).len(), 1);
    }

    #[test]
    fn arrays_stream_and_stop_on_the_callers_error() {
        let mut seen = Vec::new();
        let ok: Result<(), Result<String, String>> =
            for_each_array_element(&br#"[{"a":1},{"a":2}]"#[..], |i, v| {
                seen.push((i, v["a"].as_i64()));
                Ok(())
            });
        assert!(ok.is_ok());
        assert_eq!(seen, vec![(1, Some(1)), (2, Some(2))]);

        let stopped =
            for_each_array_element(
                &b"[1,2,3]"[..],
                |i, _| if i == 2 { Err("io") } else { Ok(()) },
            );
        assert_eq!(stopped, Err(Ok("io")));

        let broken = for_each_array_element(&b"[{\"a\":1},"[..], |_, _| Ok::<(), ()>(()));
        assert!(matches!(broken, Err(Err(msg)) if msg.starts_with("not a readable JSON array")));
    }

    #[test]
    fn csv_fields_stay_strings() {
        assert_eq!(csv_field(""), Value::Null);
        assert_eq!(csv_field("007"), Value::from("007"));
        assert_eq!(csv_field("{\"k\":1}"), Value::from("{\"k\":1}"));
    }
}
