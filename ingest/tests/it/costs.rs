//! Cost exports (`billed_costs`): the same bill as CSV, gzip CSV and Parquet
//! gives the same rows; the format is recognised; a broken file commits
//! nothing and a bad line is quarantined naming its field.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use tollgate_ingest::{Format, IngestError, IngestOptions, NoProgress, ingest_file};
use tollgate_store::testing::TestStore;

use crate::helpers::{csv_of, ingest_as, sample, scalar, write};

tollgate_store::backend_tests!(
    csv_gzip_and_parquet_exports_give_the_same_lines,
    a_broken_parquet_file_commits_nothing,
    a_parquet_file_past_its_bounds_commits_nothing,
    absurd_amounts_are_quarantined_naming_the_field,
);

const LINES: &str = "SELECT CAST(time AS VARCHAR) AS time, currency, meter, resource_id, \
    CAST(quantity AS VARCHAR) AS quantity, unit, CAST(billed_cost AS VARCHAR) AS billed, \
    CAST(effective_cost AS VARCHAR) AS effective, CAST(list_cost AS VARCHAR) AS list \
    FROM billed_costs ORDER BY time, meter, billed";

fn gzip(content: &[u8]) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(content).unwrap();
    enc.finish().unwrap()
}

/// The FOCUS sample's good lines as Azure writes a Parquet export: typed
/// columns (times as timestamps, amounts as doubles).
fn focus_parquet() -> Vec<u8> {
    let text = std::fs::read_to_string(sample("reconcile/focus-costs.csv")).unwrap();
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let header = csv.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = csv
        .records()
        .map(Result::unwrap)
        .filter(|r| r.get(0) != Some("abc"))
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let time = |name: &str| -> ArrayRef {
        let i = column(name);
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| {
                chrono::DateTime::parse_from_rfc3339(&r[i])
                    .unwrap()
                    .timestamp_micros()
            }))
            .with_timezone("UTC"),
        )
    };
    let number = |name: &str| -> ArrayRef {
        let i = column(name);
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r[i].parse::<f64>().ok()),
        ))
    };
    let text_of = |name: &str| -> ArrayRef {
        let i = column(name);
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| Some(r[i].to_owned())),
        ))
    };
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for name in header.iter() {
        let (kind, array) = match name {
            "ChargePeriodStart" | "ChargePeriodEnd" => (timestamp.clone(), time(name)),
            "BilledCost" | "EffectiveCost" | "ListCost" | "ConsumedQuantity"
            | "PricingQuantity" | "ListUnitPrice" => (DataType::Float64, number(name)),
            _ => (DataType::Utf8, text_of(name)),
        };
        fields.push(Field::new(name, kind, true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

async fn csv_gzip_and_parquet_exports_give_the_same_lines(store: TestStore) {
    let csv_text = std::fs::read(sample("reconcile/focus-costs.csv")).unwrap();
    let plain = ingest_as(&store, &sample("reconcile/focus-costs.csv"), Format::Auto).await;
    assert_eq!(
        (plain.counts.written, plain.counts.quarantined),
        (11, 1),
        "{plain}"
    );
    let expected = csv_of(&store, LINES).await;
    assert!(
        expected.contains("gpt-4o 0806 Inp glbl 1M Tokens"),
        "{expected}"
    );
    assert_eq!(
        expected.lines().count(),
        12,
        "a header and 11 lines: {expected}"
    );

    for (name, bytes) in [
        ("focus.csv.gz", gzip(&csv_text)),
        ("focus.parquet", focus_parquet()),
    ] {
        let other = TestStore::sqlite().await;
        let path = write(other.dir.path(), name, &bytes);
        let report = ingest_as(&other, &path, Format::Auto).await;
        assert_eq!(report.counts.written, 11, "{name}: {report}");
        assert_eq!(csv_of(&other, LINES).await, expected, "{name}");
        // The same lines again, in any form, are duplicates.
        let again = write(store.dir.path(), name, &bytes);
        let report = ingest_as(&store, &again, Format::AzureCost).await;
        assert_eq!(report.counts.duplicate, 11, "{name}: {report}");
    }
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM billed_costs").await,
        11
    );
}

async fn a_broken_parquet_file_commits_nothing(store: TestStore) {
    let mut bytes = focus_parquet();
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    let path = write(store.dir.path(), "broken.parquet", &bytes);
    let options = IngestOptions {
        format: Format::AzureCost,
        ..IngestOptions::default()
    };
    let error = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(error, IngestError::Unparseable { .. }), "{error}");
    assert!(error.to_string().contains("broken.parquet"), "{error}");
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM billed_costs").await, 0);
}

async fn absurd_amounts_are_quarantined_naming_the_field(store: TestStore) {
    let header = "BilledCost,BillingCurrency,ChargePeriodStart,ConsumedQuantity,x_SkuMeterName";
    let input = format!(
        "{header}\n\
         1.5,USD,2026-10-01T00:00:00Z,1000,gpt-4o 0806 Inp glbl 1M Tokens\n\
         1e40,USD,2026-10-01T00:00:00Z,1000,gpt-4o 0806 Inp glbl 1M Tokens\n\
         2,USD,2026-10-01T00:00:00Z,-1e30,gpt-4o 0806 Inp glbl 1M Tokens\n\
         2,US$,2026-10-01T00:00:00Z,1,gpt-4o 0806 Inp glbl 1M Tokens\n\
         2,USD,2026-10-01T00:00:00Z,1,{}\n",
        "x".repeat(5000)
    );
    let path = write(store.dir.path(), "absurd.csv", input.as_bytes());
    let report = ingest_as(&store, &path, Format::AzureCost).await;
    assert_eq!(
        (report.counts.written, report.counts.quarantined),
        (1, 4),
        "{report}"
    );
    let reasons: Vec<String> = store
        .db
        .quarantined_lines(report.batch_id)
        .await
        .unwrap()
        .into_iter()
        .map(|q| format!("{}: {}", q.line_number, q.reason))
        .collect();
    for (line, field) in [
        (3, "BilledCost"),
        (4, "ConsumedQuantity"),
        (5, "BillingCurrency"),
        (6, "meter"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(&format!("{line}: ")) && r.contains(field)),
            "line {line} should name {field}: {reasons:?}"
        );
    }
}

/// Decoded Parquet is held to the document bound (a dictionary page can
/// expand far past the file's size) and each row to the record bound.
async fn a_parquet_file_past_its_bounds_commits_nothing(store: TestStore) {
    let path = write(store.dir.path(), "focus.parquet", &focus_parquet());
    for (limits, bound) in [
        (
            tollgate_ingest::Limits {
                max_document_bytes: 1_000,
                ..tollgate_ingest::Limits::default()
            },
            "max_document_bytes",
        ),
        (
            tollgate_ingest::Limits {
                max_record_bytes: 100,
                ..tollgate_ingest::Limits::default()
            },
            "max_record_bytes",
        ),
    ] {
        let options = IngestOptions {
            format: Format::AzureCost,
            limits,
            ..IngestOptions::default()
        };
        let error = ingest_file(&store, &path, &options, Arc::new(NoProgress))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(bound), "{error}");
    }
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM billed_costs").await, 0);
}
