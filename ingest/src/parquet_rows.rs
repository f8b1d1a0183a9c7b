//! Parquet inputs (cost exports come as Parquet as well as CSV), read row by
//! row as JSON objects of their cells' text, so one parser serves both: a row
//! is what a CSV row would be, numbered from 1.

use std::path::Path;

use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use crate::limits::Limits;
use crate::{IngestError, Result};

/// Rows decoded at a time: bounds memory whatever the file's row groups.
const BATCH_ROWS: usize = 4096;

/// Calls `each(row number, row)` for every row of the Parquet file at `path`.
pub(crate) fn for_each_row(
    path: &Path,
    limits: &Limits,
    mut each: impl FnMut(u64, &Value) -> Result<()>,
) -> Result<()> {
    let unreadable = |message: String| IngestError::Unparseable {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| IngestError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
    let rows = builder.metadata().file_metadata().num_rows();
    let columns = builder.schema().fields().len();
    // Each cell becomes text: bound what a file may expand to, as for gzip.
    let cells = u64::try_from(rows.saturating_mul(columns as i64)).unwrap_or(0);
    if cells.saturating_mul(16) > limits.max_content_bytes {
        return Err(unreadable(format!(
            "{rows} rows of {columns} columns is more than [ingest.limits] max_content_bytes allows"
        )));
    }
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
    let options = FormatOptions::default();
    let mut number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(format!("row {}: {e}", number + 1)))?;
        // The footer's counts can lie and a dictionary page can expand: the
        // decoded rows are held to the whole-document bound, batch by batch.
        let decoded = batch.get_array_memory_size() as u64;
        if decoded > limits.max_document_bytes {
            return Err(unreadable(format!(
                "rows {}..{} decode to {decoded} bytes, more than [ingest.limits] max_document_bytes",
                number + 1,
                number + batch.num_rows() as u64
            )));
        }
        let schema = batch.schema();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| unreadable(format!("a column cannot be read as text: {e}")))?;
        for row in 0..batch.num_rows() {
            number += 1;
            let mut object = Map::new();
            let mut bytes = 0;
            for (i, column) in batch.columns().iter().enumerate() {
                if column.is_null(row) {
                    continue;
                }
                let text = formatters[i].value(row).to_string();
                bytes += text.len();
                object.insert(schema.field(i).name().clone(), Value::String(text));
            }
            if bytes > limits.max_record_bytes {
                return Err(unreadable(format!(
                    "row {number} is {bytes} bytes of text, more than [ingest.limits] max_record_bytes"
                )));
            }
            each(number, &Value::Object(object))?;
        }
    }
    Ok(())
}
