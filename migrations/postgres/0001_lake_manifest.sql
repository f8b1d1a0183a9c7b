-- Ingest batches, the lake manifest and the quarantine.
-- A lake file is visible only once its row is here; rows are only ever inserted in
-- the transaction that commits their batch.

CREATE TABLE ingest_batches (
    id               BIGSERIAL PRIMARY KEY,
    source_name      TEXT        NOT NULL,
    content_sha256   TEXT        NOT NULL,
    format           TEXT        NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('writing', 'committed', 'failed', 'abandoned')),
    rows_read        BIGINT      NOT NULL DEFAULT 0,
    rows_written     BIGINT      NOT NULL DEFAULT 0,
    rows_duplicate   BIGINT      NOT NULL DEFAULT 0,
    rows_quarantined BIGINT      NOT NULL DEFAULT 0,
    bytes_read       BIGINT      NOT NULL DEFAULT 0,
    error            TEXT,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ
);

-- The same content commits once, whoever races for it.
CREATE UNIQUE INDEX ingest_batches_committed_content
    ON ingest_batches (content_sha256) WHERE status = 'committed';
CREATE INDEX ingest_batches_status ON ingest_batches (status);

CREATE TABLE lake_files (
    id             BIGSERIAL PRIMARY KEY,
    batch_id       BIGINT      NOT NULL REFERENCES ingest_batches (id),
    table_name     TEXT        NOT NULL,
    partition_date TEXT        NOT NULL,
    path           TEXT        NOT NULL UNIQUE,
    row_count      BIGINT      NOT NULL,
    byte_size      BIGINT      NOT NULL,
    min_time       TIMESTAMPTZ NOT NULL,
    max_time       TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX lake_files_table_date ON lake_files (table_name, partition_date);
CREATE INDEX lake_files_batch ON lake_files (batch_id);

-- Lines that could not become rows. Written while the batch runs; they count only
-- once the batch is committed.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    batch_id    BIGINT NOT NULL REFERENCES ingest_batches (id),
    line_number BIGINT NOT NULL,
    byte_offset BIGINT NOT NULL,
    reason      TEXT   NOT NULL,
    raw_line    BYTEA  NOT NULL
);
CREATE INDEX quarantine_batch ON quarantine (batch_id, line_number);
