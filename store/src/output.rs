//! Query results as a table for people, or JSON / CSV for programs.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::writer::{JsonArray, WriterBuilder};

use crate::Result;

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
            let table = arrow::util::pretty::pretty_format_batches(batches)?;
            writeln!(out, "{table}").map_err(arrow::error::ArrowError::from)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in batches {
                writer.write(batch)?;
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
