//! Hostile and absurd input: times outside the window, counts no gateway makes,
//! oversized fields, decompression bombs and floods of bad records. Each is
//! quarantined or refused with its reason, and nothing good beside it is lost.

use std::sync::Arc;

use tollgate_ingest::{Format, IngestError, IngestOptions, Limits, NoProgress, ingest_file};
use tollgate_store::testing::TestStore;

use crate::helpers::*;

tollgate_store::backend_tests!(
    times_outside_the_window_are_quarantined_in_every_adapter,
    an_absurd_count_is_quarantined_and_the_good_lines_commit,
    an_oversized_field_is_quarantined_by_name,
    a_gzip_bomb_stops_at_the_content_bound,
    one_giant_csv_field_refuses_the_file_without_reading_it_all,
    a_json_document_past_its_bound_is_refused,
    a_flood_of_bad_records_keeps_only_the_first_reasons,
);

/// Every sample of every adapter with its times moved to `year`, by the forms
/// each writes them in (RFC 3339, `10/1/2026`, Kong's epoch milliseconds).
fn moved_to(sample_name: &str, year: &str, kong_ms: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(sample(sample_name)).unwrap();
    let moved = text
        .replace("2026-", &format!("{year}-"))
        .replace("/2026", &format!("/{year}"));
    // Kong's started_at (and balancer times) are epoch milliseconds of 2026.
    let mut out = String::new();
    let mut rest = moved.as_str();
    while let Some(at) = rest.find("17908") {
        out.push_str(&rest[..at]);
        let digits = rest[at..].chars().take_while(char::is_ascii_digit).count();
        out.push_str(kong_ms);
        rest = &rest[at + digits..];
    }
    out.push_str(rest);
    out.into_bytes()
}

async fn times_outside_the_window_are_quarantined_in_every_adapter(store: TestStore) {
    // 0001-01-01 and 9999-12-31 broke every report; 2030 moved the budget period.
    let years = [
        ("0001", "0"),
        ("9999", "253402300799000"),
        ("2030", "1893456000000"),
    ];
    for (name, format) in SAMPLES {
        let options = IngestOptions {
            format,
            ..IngestOptions::default()
        };
        for (year, kong_ms) in years {
            let path = write(
                store.dir.path(),
                &format!("{year}-{}", name.replace('/', "-")),
                &moved_to(name, year, kong_ms),
            );
            let report = ingest_file(&store, &path, &options, Arc::new(NoProgress))
                .await
                .unwrap_or_else(|e| panic!("{name} in {year}: {e}"));
            let c = report.counts;
            assert_eq!(c.written, 0, "{name} in {year}: {c:?}");
            assert!(
                c.reconciles() && c.quarantined > 0,
                "{name} in {year}: {c:?}"
            );
            let reasons = store.db.quarantined_lines(report.batch_id).await.unwrap();
            assert!(
                reasons
                    .iter()
                    .any(|q| q.reason.contains("the accepted window")),
                "{name} in {year}: {:?}",
                reasons.iter().map(|q| &q.reason).collect::<Vec<_>>()
            );
        }
        // The same sample as it is still commits (or is a duplicate of the
        // sample of the same calls in another export form).
        let report = ingest_file(&store, &sample(name), &options, Arc::new(NoProgress))
            .await
            .unwrap();
        let c = report.counts;
        assert!(c.written + c.duplicate > 0, "{name}: {c:?}");
    }
    // Nothing of those years reached the lake.
    for table in [
        "requests",
        "token_usage",
        "token_metrics",
        "dlp_hits",
        "billed_costs",
    ] {
        let sql = format!(
            "SELECT COUNT(*) FROM {table} WHERE time < TIMESTAMP '2000-01-01T00:00:00Z' OR time > TIMESTAMP '2029-01-01T00:00:00Z'"
        );
        assert_eq!(scalar(&store, &sql).await, 0, "{table}");
    }
}

async fn an_absurd_count_is_quarantined_and_the_good_lines_commit(store: TestStore) {
    let huge = line("huge", "2026-10-01T10:00:00Z").replace(
        r#""prompt_tokens":10"#,
        r#""prompt_tokens":9223372036854775000"#,
    );
    let input = lines(&[
        line("good-1", "2026-10-01T10:00:00Z"),
        huge.clone(),
        huge.replace("huge", "huge-2"),
        line("good-2", "2026-10-01T10:00:01Z"),
    ]);
    let path = write(store.dir.path(), "counts.jsonl", &input);
    let report = ingest(&store, &path).await.unwrap();
    let c = report.counts;
    assert_eq!((c.read, c.written, c.quarantined), (4, 2, 2));
    let reasons = store.db.quarantined_lines(report.batch_id).await.unwrap();
    assert_eq!(reasons[0].line_number, 2);
    assert_eq!(
        reasons[0].reason,
        "field `prompt_tokens`: 9223372036854775000 is more than the 1000000000 tokens a request may count"
    );
    // The rollups of that hour add up what was committed, without overflow.
    store.catch_up_rollups().await.unwrap();
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(SUM(prompt_tokens) AS BIGINT) FROM token_usage"
        )
        .await,
        20
    );
}

async fn an_oversized_field_is_quarantined_by_name(store: TestStore) {
    let agent = "a".repeat(5000);
    let long = line("long", "2026-10-01T10:00:00Z").replace(
        r#""subscription":"sub-a""#,
        &format!(r#""subscription":"sub-a","agent":"{agent}""#),
    );
    let input = lines(&[long, line("fine", "2026-10-01T10:00:00Z")]);
    let path = write(store.dir.path(), "fields.jsonl", &input);
    let report = ingest(&store, &path).await.unwrap();
    assert_eq!((report.counts.written, report.counts.quarantined), (1, 1));
    let reasons = store.db.quarantined_lines(report.batch_id).await.unwrap();
    assert_eq!(
        reasons[0].reason,
        "field `agent`: 5000 bytes, more than the 4096 it may hold"
    );
    assert!(reasons[0].raw_line.len() <= tollgate_ingest::QUARANTINE_RAW_BYTES);
}

fn gzip(content: &[u8]) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(content).unwrap();
    enc.finish().unwrap()
}

fn small_limits() -> Limits {
    Limits {
        max_record_bytes: 1 << 20,
        max_document_bytes: 1 << 20,
        max_content_bytes: 16 << 20,
        max_quarantine_rows: 10,
        ..Limits::default()
    }
}

async fn a_gzip_bomb_stops_at_the_content_bound(store: TestStore) {
    // 24 MiB of one line in 24 KB of gzip, against a 16 MiB bound.
    let bomb = gzip(&vec![b'a'; 24 << 20]);
    assert!(bomb.len() < 100_000);
    let path = write(store.dir.path(), "bomb.jsonl.gz", &bomb);
    let options = IngestOptions {
        limits: small_limits(),
        ..IngestOptions::default()
    };
    let err = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::TooLarge { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("the content after decompression is larger than 16777216 bytes")
            && message.contains("nothing from this file was committed"),
        "{message}"
    );
    assert_eq!(request_rows(&store).await, 0);
}

async fn one_giant_csv_field_refuses_the_file_without_reading_it_all(store: TestStore) {
    // LiteLLM CSV whose second row's request_id is 12 MiB (the attack used 512 MiB).
    let header = "request_id,call_type,spend,total_tokens,prompt_tokens,completion_tokens,startTime,endTime,model,status\n";
    let good = "chatcmpl-1,acompletion,0.01,30,20,10,2026-10-01 09:00:00.250,2026-10-01 09:00:01.100,gpt-4o,success\n";
    let mut csv = format!("{header}{good}").into_bytes();
    csv.extend(std::iter::repeat_n(b'x', 12 << 20));
    csv.extend_from_slice(b",acompletion,0.01,30,20,10,2026-10-01 09:00:00.250,2026-10-01 09:00:01.100,gpt-4o,success\n");
    let path = write(store.dir.path(), "spend.csv.gz", &gzip(&csv));
    let options = IngestOptions {
        format: Format::LiteLlm,
        limits: small_limits(),
        ..IngestOptions::default()
    };
    let err = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("one CSV row is larger than 1048576 bytes"),
        "{message}"
    );
    assert_eq!(request_rows(&store).await, 0);
}

async fn a_json_document_past_its_bound_is_refused(store: TestStore) {
    // A pretty-printed envelope (read whole) of 2 MiB against a 1 MiB bound.
    let record = r#"{"time": "2026-10-01T09:15:02Z", "category": "GatewayLogs", "correlationId": "c-1", "properties": {"responseCode": 200}}"#;
    let mut doc = String::from("{\n \"records\": [\n");
    while doc.len() < 2 << 20 {
        doc.push_str(record);
        doc.push_str(",\n");
    }
    doc.push_str(record);
    doc.push_str("\n ]\n}\n");
    let path = write(store.dir.path(), "envelope.json", doc.as_bytes());
    let options = IngestOptions {
        format: Format::Apim,
        limits: small_limits(),
        ..IngestOptions::default()
    };
    let err = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a JSON document read whole is larger than 1048576 bytes"),
        "{err}"
    );
}

async fn a_flood_of_bad_records_keeps_only_the_first_reasons(store: TestStore) {
    // `[],` repeated: every element a record with nothing in it (the attack's
    // 64 KB gzip made 22 million quarantine rows and a 1.4 GB state database).
    let mut array = String::from("[");
    for _ in 0..100_000 {
        array.push_str("[],");
    }
    array.push_str("[]]");
    let path = write(store.dir.path(), "flood.json.gz", &gzip(array.as_bytes()));
    let options = IngestOptions {
        format: Format::LiteLlm,
        limits: small_limits(),
        ..IngestOptions::default()
    };
    let report = ingest_file(&store, &path, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    let c = report.counts;
    assert_eq!((c.read, c.written), (100_001, 0));
    assert!(c.reconciles());
    let kept = store.db.quarantined_lines(report.batch_id).await.unwrap();
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].line_number, 1);
}
