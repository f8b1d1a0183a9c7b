//! Every fact table of the lake is also a Delta table at `<lake>/<table>/`: its
//! Parquet files and a `_delta_log/` of JSON commits, so Spark, Databricks,
//! Fabric, Synapse and delta-rs read exactly the committed rows.
//!
//! The manifest stays the commit point. Publishing follows it: each Delta
//! commit adds the files committed since the table's last one and carries an
//! application transaction (`txn`, app id [`APP_ID`]) whose version is the
//! manifest watermark it reaches. A crash between a manifest commit and its
//! Delta commit is repaired by the next publish, which starts from the last
//! commit's transaction version, so no file is added twice and none is missed.
//! Commits are written with put-if-absent: of two servers publishing at once,
//! one wins the version and the other reads the log again.
//!
//! We write the protocol's commit files ourselves rather than through the
//! `deltalake` crate: the fact tables are append-only (files enter the manifest
//! and never leave it), so a commit is a few JSON lines, while the crate brings
//! its own DataFusion integration and a second copy of the object-store stack
//! into a build that takes minutes already.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use serde_json::{Value, json};

use crate::lake::objects;
use crate::schema::{LAKE_TABLES, schema_of};
use crate::state::LakeFile;
use crate::{Lake, Result, Store, StoreError};

/// The application id of Tollgate's transactions in every Delta log.
pub const APP_ID: &str = "tollgate";
/// The partition column readers see, from each file's `date=` directory.
pub const PARTITION_COLUMN: &str = "date";
/// Tries at a version another writer may take meanwhile.
const ATTEMPTS: usize = 5;

/// The newest commit of a table's log, as last read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub version: u64,
    /// The manifest watermark the table's files reach (the `txn` version).
    pub watermark: i64,
}

/// Each table's head, shared by every clone of the store.
#[derive(Debug, Default)]
pub(crate) struct Heads(Mutex<HashMap<&'static str, Head>>);

impl Heads {
    fn get(&self, table: &'static str) -> Option<Head> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(table)
            .copied()
    }

    fn set(&self, table: &'static str, head: Option<Head>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match head {
            Some(head) => map.insert(table, head),
            None => map.remove(table),
        };
    }
}

/// What one table's publish did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub table: &'static str,
    /// The commit written, or `None` when the table was up to date.
    pub version: Option<u64>,
    pub files_added: usize,
    pub rows_added: i64,
    /// The manifest watermark the table reaches now.
    pub watermark: i64,
}

impl Store {
    /// Publishes to every fact table's Delta log the files committed since its
    /// last commit. Idempotent: a second call with nothing new writes nothing.
    #[tracing::instrument(skip_all, err)]
    /// A table that fails does not stop the others; the first failure is
    /// returned once all were tried.
    pub async fn publish_delta(&self) -> Result<Vec<Published>> {
        let watermark = self.db.manifest_watermark().await?;
        let log = log_store(&self.lake)?;
        let mut published = Vec::new();
        let mut failed = None;
        for table in LAKE_TABLES {
            match self.publish_table(&log, table, watermark).await {
                Ok(done) => published.push(done),
                Err(e) => {
                    tracing::error!(table, error = %e, "publishing to the Delta log failed");
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(published), Err)
    }

    async fn publish_table(
        &self,
        log: &Arc<dyn ObjectStore>,
        table: &'static str,
        watermark: i64,
    ) -> Result<Published> {
        for _ in 0..ATTEMPTS {
            let head = match self.delta_heads.get(table) {
                Some(head) => Some(head),
                None => read_head(log, table).await?,
            };
            let from = head.map_or(0, |h| h.watermark);
            let files = self.db.lake_files_between(table, from, watermark).await?;
            let mut done = Published {
                table,
                version: None,
                files_added: files.len(),
                rows_added: files.iter().map(|f| f.file.row_count).sum(),
                watermark: from.max(watermark),
            };
            if from >= watermark || (files.is_empty() && head.is_some()) {
                done.files_added = 0;
                done.rows_added = 0;
                done.watermark = from;
                return Ok(done);
            }
            let version = head.map_or(0, |h| h.version + 1);
            let body = commit_body(table, version, watermark, &files, Utc::now())?;
            let path = commit_path(table, version);
            let put = log
                .put_opts(
                    &path,
                    PutPayload::from(body.into_bytes()),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            match put {
                Ok(_) => {
                    self.delta_heads
                        .set(table, Some(Head { version, watermark }));
                    tracing::info!(
                        table,
                        version,
                        files = files.len(),
                        watermark,
                        "published to the Delta log"
                    );
                    done.version = Some(version);
                    return Ok(done);
                }
                // Another server took this version: read the log again.
                Err(object_store::Error::AlreadyExists { .. }) => self.delta_heads.set(table, None),
                Err(source) => {
                    return Err(StoreError::Object {
                        path: path.to_string(),
                        source,
                    });
                }
            }
        }
        Err(StoreError::DeltaLog {
            table: table.to_owned(),
            reason: format!("{ATTEMPTS} commits in a row lost to other writers"),
        })
    }
}

/// Where the Delta logs are written: the lake's object store, or for a
/// local lake the file system under its root (put-if-absent either way).
fn log_store(lake: &Lake) -> Result<Arc<dyn ObjectStore>> {
    if let Some(objects) = lake.object_store() {
        return Ok(Arc::clone(objects));
    }
    let root = lake
        .local_root()
        .ok_or_else(|| StoreError::InvalidLakeUrl {
            url: lake.url().to_string(),
            reason: "neither local nor in an object store".into(),
        })?;
    let local = LocalFileSystem::new_with_prefix(root).map_err(|source| StoreError::Object {
        path: root.display().to_string(),
        source,
    })?;
    Ok(Arc::new(local))
}

fn commit_path(table: &str, version: u64) -> Path {
    Path::from(format!("{table}/_delta_log/{version:020}.json"))
}

/// The newest commit of `table`, and the watermark of the newest commit that
/// carries Tollgate's transaction (commits of other writers, an `OPTIMIZE`
/// say, are passed over); `None` for a table never published.
pub async fn read_head(log: &Arc<dyn ObjectStore>, table: &str) -> Result<Option<Head>> {
    let prefix = Path::from(format!("{table}/_delta_log"));
    let listed: Vec<_> = log
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| StoreError::Object {
            path: prefix.to_string(),
            source,
        })?;
    let mut versions: Vec<u64> = listed
        .iter()
        .filter_map(|m| {
            m.location
                .filename()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    let Some(&newest) = versions.first() else {
        return Ok(None);
    };
    for version in versions {
        let path = commit_path(table, version);
        let bytes = objects::get(Arc::clone(log), path.to_string()).await?;
        match txn_version(&bytes) {
            Ok(watermark) => {
                return Ok(Some(Head {
                    version: newest,
                    watermark,
                }));
            }
            Err(Unreadable::Foreign) => continue,
            Err(Unreadable::Broken(reason)) => {
                return Err(StoreError::DeltaLog {
                    table: table.to_owned(),
                    reason: format!("commit {version}: {reason}"),
                });
            }
        }
    }
    Err(StoreError::DeltaLog {
        table: table.to_owned(),
        reason: format!(
            "no commit carries a {APP_ID} transaction: the table was written by someone else"
        ),
    })
}

/// Why a commit gave no watermark.
#[derive(Debug, PartialEq, Eq)]
enum Unreadable {
    /// It is not Tollgate's (no `txn` of ours).
    Foreign,
    Broken(String),
}

/// The version of Tollgate's transaction in one commit file.
fn txn_version(commit: &[u8]) -> std::result::Result<i64, Unreadable> {
    let broken = Unreadable::Broken;
    let text = std::str::from_utf8(commit).map_err(|e| broken(e.to_string()))?;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let action: Value =
            serde_json::from_str(line).map_err(|e| broken(format!("line {}: {e}", n + 1)))?;
        if let Some(txn) = action.get("txn")
            && txn.get("appId").and_then(Value::as_str) == Some(APP_ID)
        {
            return txn
                .get("version")
                .and_then(Value::as_i64)
                .ok_or_else(|| broken(format!("line {}: txn without an integer version", n + 1)));
        }
    }
    Err(Unreadable::Foreign)
}

/// One commit's JSON lines: for version 0 the protocol and the table's
/// metadata, then the commit's info, the transaction and one `add` per file.
fn commit_body(
    table: &str,
    version: u64,
    watermark: i64,
    files: &[LakeFile],
    now: DateTime<Utc>,
) -> Result<String> {
    let now_ms = now.timestamp_millis();
    let mut actions = Vec::with_capacity(files.len() + 4);
    if version == 0 {
        actions.push(json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
        actions.push(json!({"metaData": {
            "id": uuid::Uuid::now_v7().to_string(),
            "name": table,
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema_string(table)?,
            "partitionColumns": [PARTITION_COLUMN],
            "configuration": {},
            "createdTime": now_ms,
        }}));
    }
    actions.push(json!({"commitInfo": {
        "timestamp": now_ms,
        "operation": "WRITE",
        "operationParameters": {"mode": "Append", "partitionBy": format!("[\"{PARTITION_COLUMN}\"]")},
        "isBlindAppend": true,
        "engineInfo": concat!("tollgate/", env!("CARGO_PKG_VERSION")),
    }}));
    actions.push(json!({"txn": {"appId": APP_ID, "version": watermark, "lastUpdated": now_ms}}));
    for file in files {
        actions.push(add_action(table, file, now_ms)?);
    }
    let mut body = String::new();
    for action in actions {
        body.push_str(&action.to_string());
        body.push('\n');
    }
    Ok(body)
}

fn add_action(table: &str, file: &LakeFile, now_ms: i64) -> Result<Value> {
    let rel = file
        .file
        .path
        .strip_prefix(table)
        .and_then(|p| p.strip_prefix('/'))
        .ok_or_else(|| StoreError::DeltaLog {
            table: table.to_owned(),
            reason: format!("manifest path {} is not under the table", file.file.path),
        })?;
    let micros = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let stats = json!({
        "numRecords": file.file.row_count,
        "minValues": {"time": micros(&file.file.min_time)},
        "maxValues": {"time": micros(&file.file.max_time)},
    });
    Ok(json!({"add": {
        "path": rel,
        "partitionValues": {PARTITION_COLUMN: file.file.partition_date},
        "size": file.file.byte_size,
        "modificationTime": now_ms,
        "dataChange": true,
        "stats": stats.to_string(),
    }}))
}

/// The table's schema in the Delta protocol's JSON form, with the partition
/// column last.
fn schema_string(table: &str) -> Result<String> {
    let schema = schema_of(table).ok_or_else(|| StoreError::DeltaLog {
        table: table.to_owned(),
        reason: "not a lake table".into(),
    })?;
    let mut fields = schema
        .fields()
        .iter()
        .map(|f| delta_field(table, f))
        .collect::<Result<Vec<_>>>()?;
    fields
        .push(json!({"name": PARTITION_COLUMN, "type": "date", "nullable": false, "metadata": {}}));
    Ok(json!({"type": "struct", "fields": fields}).to_string())
}

fn delta_field(table: &str, field: &Field) -> Result<Value> {
    let decimal;
    let kind = match field.data_type() {
        // Delta's decimal is a type string with its precision and scale.
        DataType::Decimal128(precision, scale) if *precision <= 38 && *scale >= 0 => {
            decimal = format!("decimal({precision},{scale})");
            decimal.as_str()
        }
        DataType::Utf8 | DataType::LargeUtf8 => "string",
        DataType::Int32 => "integer",
        DataType::Int64 => "long",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Date32 => "date",
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp",
        other => {
            return Err(StoreError::DeltaLog {
                table: table.to_owned(),
                reason: format!(
                    "column {} has type {other}, which has no Delta mapping here",
                    field.name()
                ),
            });
        }
    };
    Ok(json!({"name": field.name(), "type": kind, "nullable": field.is_nullable(), "metadata": {}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NewLakeFile;

    fn file(path: &str, rows: i64) -> LakeFile {
        let t = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        LakeFile {
            id: 7,
            batch_id: 3,
            file: NewLakeFile {
                table_name: "requests".into(),
                partition_date: "2026-09-21".into(),
                path: path.into(),
                row_count: rows,
                byte_size: 1234,
                min_time: t,
                max_time: t,
            },
        }
    }

    #[test]
    fn every_lake_table_has_a_delta_schema() {
        for table in LAKE_TABLES {
            schema_string(table).unwrap();
        }
    }

    #[test]
    fn the_first_commit_carries_protocol_metadata_transaction_and_adds() {
        let files = [file("requests/date=2026-09-21/0000000003-a.parquet", 10)];
        let body = commit_body("requests", 0, 42, &files, Utc::now()).unwrap();
        let actions: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let keys: Vec<&str> = actions
            .iter()
            .map(|a| a.as_object().unwrap().keys().next().unwrap().as_str())
            .collect();
        assert_eq!(keys, ["protocol", "metaData", "commitInfo", "txn", "add"]);
        let add = &actions[4]["add"];
        assert_eq!(add["path"], "date=2026-09-21/0000000003-a.parquet");
        assert_eq!(add["partitionValues"]["date"], "2026-09-21");
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], 10);
        assert_eq!(txn_version(body.as_bytes()), Ok(42));
        let later = commit_body("requests", 1, 43, &files, Utc::now()).unwrap();
        assert!(!later.contains("metaData"), "{later}");
    }

    fn broken(commit: &[u8]) -> String {
        match txn_version(commit) {
            Err(Unreadable::Broken(reason)) => reason,
            other => panic!("not broken: {other:?}"),
        }
    }

    #[test]
    fn a_commit_without_our_transaction_is_foreign_and_bad_json_says_where() {
        let other = txn_version(b"{\"commitInfo\":{\"operation\":\"OPTIMIZE\"}}\n");
        assert_eq!(other, Err(Unreadable::Foreign));
        let e = broken(b"{\"txn\":{\"appId\":\"tollgate\"}}\n");
        assert!(e.contains("line 1: txn without an integer version"), "{e}");
        let e = broken(b"\n{oops\n");
        assert!(e.starts_with("line 2"), "{e}");
    }

    #[tokio::test]
    async fn the_head_passes_over_other_writers_commits() {
        let log: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        assert_eq!(read_head(&log, "requests").await.unwrap(), None);
        let ours = commit_body("requests", 0, 42, &[], Utc::now()).unwrap();
        let theirs = "{\"commitInfo\":{\"operation\":\"OPTIMIZE\"}}\n";
        for (version, body) in [(0, ours.as_str()), (1, theirs)] {
            let payload = PutPayload::from(body.as_bytes().to_vec());
            log.put_opts(
                &commit_path("requests", version),
                payload,
                PutOptions::default(),
            )
            .await
            .unwrap();
        }
        let head = read_head(&log, "requests").await.unwrap();
        assert_eq!(
            head,
            Some(Head {
                version: 1,
                watermark: 42
            })
        );
        let payload = PutPayload::from(theirs.as_bytes().to_vec());
        log.put_opts(
            &commit_path("token_usage", 0),
            payload,
            PutOptions::default(),
        )
        .await
        .unwrap();
        let e = read_head(&log, "token_usage").await.unwrap_err();
        assert!(e.to_string().contains("written by someone else"), "{e}");
    }

    #[test]
    fn a_file_outside_its_table_is_refused() {
        let files = [file("token_usage/date=2026-09-21/x.parquet", 1)];
        let e = commit_body("requests", 0, 1, &files, Utc::now()).unwrap_err();
        assert!(e.to_string().contains("is not under the table"), "{e}");
    }
}
