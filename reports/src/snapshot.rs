//! Month-close snapshot files: the JSON the report is served from and a Parquet
//! copy for finance tools, each checksummed (sha256) so a changed file is noticed
//! instead of served. Files are written under a new name, never over another.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::chargeback::ChargebackRow;
use crate::close::{Snapshot, month_dir};
use crate::{ReportsError, Result};

/// A column's value in a row.
type Pick<T> = fn(&ChargebackRow) -> T;

pub(crate) struct Written {
    pub json_path: PathBuf,
    pub json_sha256: String,
    pub parquet_path: PathBuf,
    pub parquet_sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportsError + '_ {
    move |source| ReportsError::Read {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write(root: &Path, snapshot: &Snapshot) -> Result<Written> {
    let dir = month_dir(root, &snapshot.month);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let stem = format!("chargeback-{}", uuid::Uuid::now_v7());
    let json = serde_json::to_vec_pretty(snapshot)
        .map_err(|e| ReportsError::fault("encoding the snapshot", e))?;
    let parquet = parquet_bytes(&snapshot.month, &snapshot.dimensions, &snapshot.rows)?;
    let json_path = dir.join(format!("{stem}.json"));
    let parquet_path = dir.join(format!("{stem}.parquet"));
    for (path, bytes) in [(&json_path, &json), (&parquet_path, &parquet)] {
        write_new_file(path, bytes)?;
    }
    Ok(Written {
        json_sha256: sha256_hex(&json),
        parquet_sha256: sha256_hex(&parquet),
        json_path,
        parquet_path,
    })
}

/// Writes a file that must not exist yet, synced to disk: snapshots and exports
/// never overwrite anything.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Reads a snapshot, refusing it if its bytes are not the ones closed.
pub(crate) fn read(path: &Path, sha256: &str) -> Result<Snapshot> {
    let bytes = verified(path, sha256)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ReportsError::Integrity(format!("snapshot {} is unreadable: {e}", path.display()))
    })
}

/// The snapshot file's bytes, refused unless they are the ones closed.
pub(crate) fn verified(path: &Path, sha256: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(ReportsError::Integrity(format!(
            "snapshot {} has changed since the month was closed (sha256 {actual}, closed as {sha256})",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Chargeback rows as Parquet: the grouping dimensions, the counts, and the
/// amounts (the previous month's total too) as exact decimals of the currency (`DECIMAL(38, 12)`, pico-units unscaled).
pub fn parquet_bytes(
    month: &str,
    dimensions: &[String],
    rows: &[ChargebackRow],
) -> Result<Vec<u8>> {
    let mut fields = vec![
        Field::new("month", DataType::Utf8, false),
        Field::new("adjusts_month", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![month; rows.len()])),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| r.adjusts.as_deref())
                .collect::<Vec<_>>(),
        )),
    ];
    for (i, name) in dimensions.iter().enumerate() {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(
            rows.iter()
                .map(|r| r.group.get(i).map(String::as_str))
                .collect::<Vec<_>>(),
        )));
    }
    let counts: [(&str, Pick<i64>); 6] = [
        ("requests", |r| r.requests),
        ("prompt_tokens", |r| r.prompt_tokens),
        ("cached_tokens", |r| r.cached_tokens),
        ("completion_tokens", |r| r.completion_tokens),
        ("cache_hits", |r| r.cache_hits),
        ("unpriced_tokens", |r| r.unpriced_tokens),
    ];
    for (name, pick) in counts {
        fields.push(Field::new(name, DataType::Int64, false));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(pick),
        )));
    }
    let amounts: [(&str, Pick<i128>); 7] = [
        ("payg_cost", |r| r.payg_pico),
        ("ptu_cost", |r| r.ptu_pico),
        ("idle_capacity", |r| r.idle_pico),
        ("adjustment", |r| r.adjustment_pico),
        ("total", ChargebackRow::total_pico),
        ("cache_savings", |r| r.cache_savings_pico),
        ("previous_month_total", |r| r.previous_total_pico),
    ];
    let decimal = DataType::Decimal128(38, 12);
    for (name, pick) in amounts {
        fields.push(Field::new(name, decimal.clone(), false));
        let values = Decimal128Array::from_iter_values(rows.iter().map(pick))
            .with_precision_and_scale(38, 12)?;
        columns.push(Arc::new(values));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(bytes)
}
