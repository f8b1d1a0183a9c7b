use tollgate_store::StoreError;
use tollgate_store::output::{OutputFormat, write_batches};
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(
    anything_but_a_query_is_refused,
    empty_lake_answers_with_headers
);

async fn anything_but_a_query_is_refused(store: TestStore) {
    let refused = [
        "CREATE TABLE t AS SELECT 1",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp/x'",
        "DROP TABLE requests",
        "INSERT INTO requests SELECT * FROM requests",
        "COPY (SELECT 1) TO '/tmp/tollgate-copy-test.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE VIEW v AS SELECT 1",
    ];
    for sql in refused {
        match store.sql_read_only(sql).await {
            Err(StoreError::NotReadOnly(msg)) => {
                assert!(msg.contains("only queries"), "{sql}: {msg}")
            }
            other => panic!("{sql} was not refused: {other:?}"),
        }
    }
    assert!(!std::path::Path::new("/tmp/tollgate-copy-test.csv").exists());
    // A broken query is an ordinary error, not a refusal.
    let err = store.sql_read_only("SELEC 1").await.unwrap_err();
    assert!(matches!(err, StoreError::Query(_)), "{err}");
}

async fn empty_lake_answers_with_headers(store: TestStore) {
    let result = store
        .sql_read_only("SELECT request_id, prompt_tokens FROM usage")
        .await
        .unwrap();
    assert_eq!(result.num_rows(), 0);
    let mut csv = Vec::new();
    write_batches(OutputFormat::Csv, &result.schema, &result.batches, &mut csv).unwrap();
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "request_id,prompt_tokens\n"
    );
    let mut json = Vec::new();
    write_batches(
        OutputFormat::Json,
        &result.schema,
        &result.batches,
        &mut json,
    )
    .unwrap();
    assert_eq!(String::from_utf8(json).unwrap(), "[]\n");
}
