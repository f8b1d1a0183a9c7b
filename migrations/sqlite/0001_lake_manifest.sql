-- Ingest batches, the lake manifest and the quarantine.
-- A lake file is visible only once its row is here; rows are only ever inserted in
-- the transaction that commits their batch.

CREATE TABLE ingest_batches (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    source_name      TEXT    NOT NULL,
    content_sha256   TEXT    NOT NULL,
    format           TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('writing', 'committed', 'failed', 'abandoned')),
    rows_read        INTEGER NOT NULL DEFAULT 0,
    rows_written     INTEGER NOT NULL DEFAULT 0,
    rows_duplicate   INTEGER NOT NULL DEFAULT 0,
    rows_quarantined INTEGER NOT NULL DEFAULT 0,
    bytes_read       INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    started_at       TEXT    NOT NULL,
    finished_at      TEXT
);

-- The same content commits once, whoever races for it.
CREATE UNIQUE INDEX ingest_batches_committed_content
    ON ingest_batches (content_sha256) WHERE status = 'committed';
CREATE INDEX ingest_batches_status ON ingest_batches (status);

CREATE TABLE lake_files (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id       INTEGER NOT NULL REFERENCES ingest_batches (id),
    table_name     TEXT    NOT NULL,
    partition_date TEXT    NOT NULL,
    path           TEXT    NOT NULL UNIQUE,
    row_count      INTEGER NOT NULL,
    byte_size      INTEGER NOT NULL,
    min_time       TEXT    NOT NULL,
    max_time       TEXT    NOT NULL,
    created_at     TEXT    NOT NULL
);
CREATE INDEX lake_files_table_date ON lake_files (table_name, partition_date);
CREATE INDEX lake_files_batch ON lake_files (batch_id);

-- Lines that could not become rows. Written while the batch runs; they count only
-- once the batch is committed.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id    INTEGER NOT NULL REFERENCES ingest_batches (id),
    line_number INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    raw_line    BLOB    NOT NULL
);
CREATE INDEX quarantine_batch ON quarantine (batch_id, line_number);
