use std::collections::HashSet;
use std::sync::Arc;

use tollgate_ingest::{IngestError, IngestOptions, NoProgress, Outcome, ingest_file};
use tollgate_store::schema::REQUESTS;
use tollgate_store::testing::TestStore;

use crate::helpers::*;

tollgate_store::backend_tests!(
    sample_ingests_and_answers_sql,
    reingesting_the_same_file_changes_nothing,
    duplicates_across_files_and_within_a_file_are_counted,
    each_bad_line_kind_is_quarantined_with_its_line_number,
    truncated_gzip_commits_nothing,
    gzip_input_ingests,
    empty_file_commits_an_empty_batch,
    bom_crlf_and_missing_final_newline,
    unreadable_file_fails_clearly,
    uncommitted_batch_is_invisible_and_gc_removes_it,
    interrupted_batch_is_completed_by_the_next_ingest,
    concurrent_overlapping_ingests_never_double_a_request,
    a_conflict_with_other_rows_commits_without_a_second_pass,
    a_conflict_with_the_same_rows_deduplicates_again,
    small_buffers_split_files_without_changing_totals,
    a_file_appended_to_mid_ingest_commits_nothing,
    token_usage_is_deduplicated_apart_from_its_request,
    gc_never_removes_files_of_a_batch_still_writing,
    a_data_dir_with_glob_characters_is_a_path,
    auto_format_ingests_gzip_and_refuses_the_unknown,
);

async fn sample_ingests_and_answers_sql(store: TestStore) {
    let report = ingest(&store, &sample_path()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Committed);
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (16, 14, 1, 1)
    );
    assert!(c.reconciles());

    assert_eq!(request_rows(&store).await, 14);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM token_usage").await, 12);
    // The view keeps requests without tokens (the 429, the cache hit).
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM usage").await, 14);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM usage WHERE status_code = 429 AND prompt_tokens IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(SUM(prompt_tokens) AS BIGINT) FROM usage"
        )
        .await,
        2 * (6 * 1000 + 113 * 15)
    );
    // Partitioned by date: two dates, each file sorted by time.
    let summary = store.db.lake_summary().await.unwrap();
    let dates: HashSet<_> = summary.iter().map(|r| r.partition_date.as_str()).collect();
    assert_eq!(dates, HashSet::from(["2026-10-01", "2026-10-02"]));

    let quarantined = store.db.quarantined_lines(report.batch_id).await.unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].line_number, 16);
    assert!(quarantined[0].reason.contains("prompt_tokens"));
}

async fn reingesting_the_same_file_changes_nothing(store: TestStore) {
    let first = ingest(&store, &sample_path()).await.unwrap();
    let files_before = store.db.lake_files(REQUESTS).await.unwrap().len();
    let again = ingest(&store, &sample_path()).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyIngested);
    assert_eq!(again.batch_id, first.batch_id);
    assert_eq!(again.counts, first.counts);
    assert_eq!(request_rows(&store).await, 14);
    assert_eq!(
        store.db.lake_files(REQUESTS).await.unwrap().len(),
        files_before
    );
    // A second handle, as another process would see it.
    let other = store.reopen().await;
    assert_eq!(request_rows(&other).await, 14);
}

async fn duplicates_across_files_and_within_a_file_are_counted(store: TestStore) {
    let t = "2026-10-05T10:00:00Z";
    let a = write(
        store.dir.path(),
        "a.jsonl",
        &lines(&[line("r1", t), line("r2", t), line("r3", t)]),
    );
    // r2 and r3 were already in a; r4 comes twice in b itself.
    let b = write(
        store.dir.path(),
        "b.jsonl",
        &lines(&[
            line("r2", t),
            line("r3", t),
            line("r4", t),
            line("r4", t),
            line("r5", t),
        ]),
    );
    ingest(&store, &a).await.unwrap();
    let report = ingest(&store, &b).await.unwrap();
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (5, 2, 3, 0)
    );
    assert_eq!(request_rows(&store).await, 5);
    assert_eq!(
        scalar(&store, "SELECT COUNT(DISTINCT request_id) FROM requests").await,
        5
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM token_usage").await, 5);

    // The same id on another date is another partition's business.
    let c_file = write(
        store.dir.path(),
        "c.jsonl",
        &lines(&[line("r1", "2026-10-06T10:00:00Z")]),
    );
    assert_eq!(ingest(&store, &c_file).await.unwrap().counts.written, 1);
}

async fn each_bad_line_kind_is_quarantined_with_its_line_number(store: TestStore) {
    let t = "2026-10-05T10:00:00Z";
    let input = [
        line("good-1", t),
        "{\"request_id\": \"x\", \"time\": ".to_owned(),
        r#"{"time":"2026-10-05T10:00:00Z","status_code":200}"#.to_owned(),
        r#"{"request_id":"neg","time":"2026-10-05T10:00:00Z","status_code":200,"prompt_tokens":-4}"#.to_owned(),
        r#"{"request_id":"nan","time":"2026-10-05T10:00:00Z","status_code":200,"completion_tokens":"lots"}"#.to_owned(),
        r#"{"request_id":"when","time":"05/10/2026 10:00","status_code":200}"#.to_owned(),
        String::new(),
        line("good-2", t),
    ];
    let path = write(store.dir.path(), "bad.jsonl", &lines(&input));
    let report = ingest(&store, &path).await.unwrap();
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (7, 2, 0, 5)
    );
    assert_eq!(request_rows(&store).await, 2);

    let q = store.db.quarantined_lines(report.batch_id).await.unwrap();
    let got: Vec<(i64, &str)> = q
        .iter()
        .map(|q| (q.line_number, q.reason.as_str()))
        .collect();
    let expected = [
        (2, "broken JSON"),
        (3, "missing field `request_id`"),
        (4, "field `prompt_tokens`: negative value -4"),
        (5, "field `completion_tokens`"),
        (6, "field `time`"),
    ];
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((line_no, reason), (want_line, want_reason)) in got.iter().zip(expected) {
        assert_eq!(*line_no, want_line);
        assert!(reason.contains(want_reason), "line {line_no}: {reason}");
    }
    assert_eq!(q[0].raw_line, input[1].as_bytes());
    let offset_of_line_2 = input[0].len() as i64 + 1;
    assert_eq!(q[0].byte_offset, offset_of_line_2);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn truncated_gzip_commits_nothing(store: TestStore) {
    let many: Vec<String> = (0..5000)
        .map(|i| line(&format!("r{i}"), "2026-10-05T10:00:00Z"))
        .collect();
    let gz = gzip(&lines(&many));
    let path = write(store.dir.path(), "cut.jsonl.gz", &gz[..gz.len() * 2 / 3]);
    let err = ingest(&store, &path).await.unwrap_err();
    assert!(matches!(err, IngestError::Read { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("cut.jsonl.gz") && message.contains("truncated"),
        "{message}"
    );
    assert!(
        message.contains("nothing from this file was committed"),
        "{message}"
    );
    assert_eq!(request_rows(&store).await, 0);
    let batches = store.db.recent_batches(10).await.unwrap();
    assert_eq!(batches[0].status, "failed");
    assert!(
        batches[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("truncated")
    );
}

async fn gzip_input_ingests(store: TestStore) {
    let data = std::fs::read(sample_path()).unwrap();
    let path = write(store.dir.path(), "sample.log", &gzip(&data));
    let c = ingest(&store, &path).await.unwrap().counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (16, 14, 1, 1)
    );
}

async fn empty_file_commits_an_empty_batch(store: TestStore) {
    let path = write(store.dir.path(), "empty.jsonl", b"");
    let report = ingest(&store, &path).await.unwrap();
    assert_eq!(report.outcome, Outcome::Committed);
    assert_eq!(report.counts.read, 0);
    assert_eq!(report.files, 0);
    assert_eq!(request_rows(&store).await, 0);
    assert_eq!(
        ingest(&store, &path).await.unwrap().outcome,
        Outcome::AlreadyIngested
    );
}

async fn bom_crlf_and_missing_final_newline(store: TestStore) {
    let t = "2026-10-05T10:00:00Z";
    let mut data = b"\xEF\xBB\xBF".to_vec();
    data.extend(format!("{}\r\n{}\r\n{}", line("a", t), line("b", t), line("c", t)).bytes());
    let path = write(store.dir.path(), "windows.jsonl", &data);
    let c = ingest(&store, &path).await.unwrap().counts;
    assert_eq!((c.read, c.written, c.quarantined), (3, 3, 0));
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM requests WHERE request_id IN ('a', 'b', 'c')"
        )
        .await,
        3
    );
}

async fn unreadable_file_fails_clearly(store: TestStore) {
    let missing = store.dir.path().join("nope.jsonl");
    let err = ingest(&store, &missing).await.unwrap_err();
    assert!(err.to_string().contains("nope.jsonl: cannot open"), "{err}");
    assert!(store.db.recent_batches(1).await.unwrap().is_empty());
}

async fn uncommitted_batch_is_invisible_and_gc_removes_it(store: TestStore) {
    let (batch_id, file) = write_without_commit(&store, "crashed.jsonl").await;
    assert!(store.lake.absolute(&file.path).exists());

    assert_eq!(
        request_rows(&store).await,
        0,
        "an uncommitted file must not be read"
    );
    let young = store
        .gc(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((young.files_removed, young.files_kept_young), (0, 1));
    assert!(
        store.lake.absolute(&file.path).exists(),
        "grace protects running batches"
    );

    let report = store.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(report.files_removed, 1);
    assert!(!store.lake.absolute(&file.path).exists());
    assert_eq!(
        store.db.batch(batch_id).await.unwrap().unwrap().status,
        "abandoned"
    );
}

async fn interrupted_batch_is_completed_by_the_next_ingest(store: TestStore) {
    // A process died after writing this file's Parquet but before its commit.
    let path = sample_path();
    let batch_id = store
        .db
        .begin_batch(&path.display().to_string(), "partial", "canonical")
        .await
        .unwrap();
    let mut buffer = tollgate_ingest::record::LakeBuffers::default();
    for raw in std::fs::read_to_string(&path).unwrap().lines().take(5) {
        let record = tollgate_ingest::canonical::parse_line(raw.as_bytes()).unwrap();
        buffer.push_request(&record.request.unwrap());
    }
    let (_, _, requests) = buffer.drain(batch_id).unwrap().remove(0);
    store
        .lake
        .write_file(REQUESTS, "2026-10-01", batch_id, &requests)
        .unwrap();

    let report = ingest(&store, &path).await.unwrap();
    assert_eq!(
        report.counts.written, 14,
        "the orphan's rows are not duplicates"
    );
    assert_eq!(request_rows(&store).await, 14);
    let removed = store.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(removed.files_removed, 1);
    assert_eq!(request_rows(&store).await, 14);
}

async fn concurrent_overlapping_ingests_never_double_a_request(store: TestStore) {
    let t = "2026-10-07T09:00:00Z";
    let mut paths = Vec::new();
    for f in 0..4 {
        // Each file shares half its ids with the next.
        let ids: Vec<String> = (f * 50..f * 50 + 100)
            .map(|i| line(&format!("r{i}"), t))
            .collect();
        paths.push(write(
            store.dir.path(),
            &format!("c{f}.jsonl"),
            &lines(&ids),
        ));
    }
    let handles: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let store = store.store.clone();
            tokio::spawn(async move {
                ingest_file(&store, &p, &IngestOptions::default(), Arc::new(NoProgress)).await
            })
        })
        .collect();
    let mut written = 0;
    let mut duplicate = 0;
    for h in handles {
        let c = h.await.unwrap().unwrap().counts;
        written += c.written;
        duplicate += c.duplicate;
    }
    assert_eq!(written, 250);
    assert_eq!(duplicate, 150);
    assert_eq!(request_rows(&store).await, 250);
    assert_eq!(
        scalar(&store, "SELECT COUNT(DISTINCT request_id) FROM requests").await,
        250
    );
}

/// Progress that, at the first bytes of a pass, ingests another file to its commit:
/// a concurrent batch committing between this batch's watermark and its commit.
struct CommitsAnotherFirst {
    store: tollgate_store::Store,
    other: std::path::PathBuf,
    started: std::sync::atomic::AtomicBool,
    bytes: std::sync::atomic::AtomicU64,
}

impl tollgate_ingest::Progress for CommitsAnotherFirst {
    fn advance(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
        if !self.started.swap(true, Ordering::SeqCst) {
            let other =
                tokio::runtime::Handle::current().block_on(ingest(&self.store, &self.other));
            assert_eq!(other.unwrap().outcome, Outcome::Committed);
        }
    }
}

/// Ingests the ids `ours` while a batch of `theirs` (same date) commits first;
/// returns our counts and how many passes our batch made over its file.
async fn ingest_racing(
    store: &TestStore,
    ours: &[String],
    theirs: &[String],
) -> (tollgate_store::state::BatchCounts, u64) {
    let file = |name: &str, ids: &[String]| {
        let body: Vec<String> = ids
            .iter()
            .map(|id| line(id, "2026-10-08T09:00:00Z"))
            .collect();
        write(store.dir.path(), name, &lines(&body))
    };
    let (ours, theirs) = (file("ours.jsonl", ours), file("theirs.jsonl", theirs));
    let progress = Arc::new(CommitsAnotherFirst {
        store: store.store.clone(),
        other: theirs,
        started: Default::default(),
        bytes: Default::default(),
    });
    let report = ingest_file(store, &ours, &IngestOptions::default(), progress.clone())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Committed);
    let read = progress.bytes.load(std::sync::atomic::Ordering::SeqCst);
    (
        report.counts,
        read / std::fs::metadata(&ours).unwrap().len(),
    )
}

fn ids(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

async fn a_conflict_with_other_rows_commits_without_a_second_pass(store: TestStore) {
    let (counts, passes) = ingest_racing(&store, &ids("a", 0..100), &ids("b", 0..50)).await;
    assert_eq!((counts.written, counts.duplicate), (100, 0));
    assert_eq!(passes, 1);
    assert_eq!(request_rows(&store).await, 150);
}

async fn a_conflict_with_the_same_rows_deduplicates_again(store: TestStore) {
    let (counts, passes) = ingest_racing(&store, &ids("a", 0..100), &ids("a", 50..150)).await;
    assert_eq!((counts.written, counts.duplicate), (50, 50));
    assert_eq!(passes, 2, "a second pass after the conflict");
    assert_eq!(
        scalar(&store, "SELECT COUNT(DISTINCT request_id) FROM requests").await,
        150
    );
    assert_eq!(request_rows(&store).await, 150);
}

async fn small_buffers_split_files_without_changing_totals(store: TestStore) {
    let options = IngestOptions {
        max_buffered_rows: 3,
        ..IngestOptions::default()
    };
    let report = ingest_file(&store, &sample_path(), &options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(report.files > 4, "{} files", report.files);
    assert_eq!(request_rows(&store).await, 14);
    assert_eq!(
        scalar(&store, "SELECT COUNT(DISTINCT request_id) FROM requests").await,
        14
    );
}

/// Appends a line to the file when the ingest starts reading it, as a log writer
/// that is still running would.
struct AppendOnStart(std::path::PathBuf);

impl tollgate_ingest::Progress for AppendOnStart {
    fn start(&self, _source: &str, _total_bytes: u64) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.0)
            .unwrap();
        writeln!(f, "{}", line("late", "2026-10-05T10:00:00Z")).unwrap();
    }
}

async fn a_file_appended_to_mid_ingest_commits_nothing(store: TestStore) {
    let t = "2026-10-05T10:00:00Z";
    let path = write(
        store.dir.path(),
        "growing.jsonl",
        &lines(&[line("a", t), line("b", t)]),
    );
    let progress = Arc::new(AppendOnStart(path.clone()));
    let err = ingest_file(&store, &path, &IngestOptions::default(), progress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IngestError::ChangedDuringIngest { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("growing.jsonl: changed while being ingested"),
        "{err}"
    );
    assert_eq!(request_rows(&store).await, 0);
    assert_eq!(
        store.db.recent_batches(1).await.unwrap()[0].status,
        "failed"
    );
    // Once complete, the file ingests normally.
    assert_eq!(ingest(&store, &path).await.unwrap().counts.written, 3);
}

async fn token_usage_is_deduplicated_apart_from_its_request(store: TestStore) {
    // First the gateway's view of r1 (no tokens), then a fuller record of it.
    let bare = r#"{"request_id":"r1","time":"2026-10-05T10:00:00Z","status_code":200}"#.to_owned();
    let first = write(store.dir.path(), "bare.jsonl", &lines(&[bare]));
    let full = write(
        store.dir.path(),
        "full.jsonl",
        &lines(&[
            line("r1", "2026-10-05T10:00:00Z"),
            line("r1", "2026-10-05T10:00:00Z"),
        ]),
    );
    ingest(&store, &first).await.unwrap();
    let c = ingest(&store, &full).await.unwrap().counts;
    // The token usage was new (written); the repeat of the whole record was not.
    assert_eq!((c.read, c.written, c.duplicate), (2, 1, 1));
    assert_eq!(request_rows(&store).await, 1);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM token_usage").await, 1);
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(SUM(prompt_tokens) AS BIGINT) FROM usage"
        )
        .await,
        10
    );
}

async fn gc_never_removes_files_of_a_batch_still_writing(store: TestStore) {
    let (batch_id, file) = write_without_commit(&store, "slow.jsonl").await;
    // The file looks two hours old (another clock, or a long ingest) ...
    let path = store.lake.absolute(&file.path);
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    // ... but its batch started a moment ago and is still writing.
    let report = store
        .gc(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.files_removed, report.files_kept_young), (0, 1));
    assert!(path.exists());
    assert_eq!(
        store.db.batch(batch_id).await.unwrap().unwrap().status,
        "writing"
    );
}

async fn a_data_dir_with_glob_characters_is_a_path(store: TestStore) {
    let config = tollgate_store::StoreConfig {
        database_url: store.config.database_url.clone(),
        ..tollgate_store::StoreConfig::embedded(store.dir.path().join("lake [eu]?*"))
    };
    let odd = tollgate_store::Store::open(&config).await.unwrap();
    ingest(&odd, &sample_path()).await.unwrap();
    assert_eq!(request_rows(&odd).await, 14);
}

/// Begins a batch and writes one request file for it, as an ingest that has not
/// committed (yet, or ever) would leave it.
async fn write_without_commit(
    store: &TestStore,
    source: &str,
) -> (i64, tollgate_store::state::NewLakeFile) {
    use tollgate_ingest::record::{LakeBuffers, RequestRecord};
    let batch_id = store
        .db
        .begin_batch(source, source, "canonical")
        .await
        .unwrap();
    let mut buffer = LakeBuffers::default();
    buffer.push_request(&RequestRecord {
        time_us: 1_790_000_000_000_000,
        request_id: format!("{source}-row"),
        status_code: 200,
        ..Default::default()
    });
    let (_, _, requests) = buffer.drain(batch_id).unwrap().remove(0);
    let file = store
        .lake
        .write_file(REQUESTS, "2026-09-21", batch_id, &requests)
        .unwrap();
    (batch_id, file)
}

#[test]
fn auto_detection_recognises_every_sample() {
    use tollgate_ingest::Format;
    for (name, want) in crate::helpers::SAMPLES {
        let bytes = std::fs::read(crate::helpers::sample(name)).unwrap();
        assert_eq!(Format::detect(&bytes), Some(want), "{name}");
    }
    for junk in [&b"hello,world\n1,2\n"[..], b"{\"x\":1}\n", b"", b"<xml/>"] {
        assert_eq!(
            Format::detect(junk),
            None,
            "{}",
            String::from_utf8_lossy(junk)
        );
    }
}

async fn auto_format_ingests_gzip_and_refuses_the_unknown(store: TestStore) {
    use tollgate_ingest::Format;
    let auto = IngestOptions {
        format: Format::Auto,
        ..IngestOptions::default()
    };
    let kong = std::fs::read(crate::helpers::sample("kong-ai-logs.jsonl")).unwrap();
    let path = write(store.dir.path(), "kong.log.gz", &gzip(&kong));
    let report = ingest_file(&store, &path, &auto, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.counts.written, 4);
    assert_eq!(
        store
            .db
            .batch(report.batch_id)
            .await
            .unwrap()
            .unwrap()
            .format,
        "kong"
    );

    // An empty export (a quiet hour) has no format to find: an empty batch.
    let empty = write(store.dir.path(), "quiet-hour.json", b"\n");
    let report = ingest_file(&store, &empty, &auto, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(
        (report.outcome, report.counts.read),
        (Outcome::Committed, 0)
    );

    // Content committed before under an explicit format stays "already ingested".
    let canonical = IngestOptions::default();
    // Auto cannot place this line (canonical would quarantine it); it was
    // committed as a canonical batch all the same.
    let odd = write(store.dir.path(), "odd.jsonl", b"{\"request_id\":\"o\"}\n");
    ingest_file(&store, &odd, &canonical, Arc::new(NoProgress))
        .await
        .unwrap();
    let again = ingest_file(&store, &odd, &auto, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(again.outcome, tollgate_ingest::Outcome::AlreadyIngested);

    let junk = write(store.dir.path(), "notes.txt", b"shopping list\nmilk\n");
    let err = ingest_file(&store, &junk, &auto, Arc::new(NoProgress))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("notes.txt: not a format Tollgate recognises"),
        "{message}"
    );
    assert!(
        message.contains("canonical, apim, kong, litellm"),
        "{message}"
    );
    assert!(
        store
            .db
            .recent_batches(5)
            .await
            .unwrap()
            .iter()
            .all(|b| b.source_name != junk.display().to_string())
    );
}
